"""Frame sources: V4L2 cameras, Jetson CSI cameras, GStreamer pipelines, RTSP/HTTP streams, files, folders.

Cameras and streams are live (`grabber.LiveSource`): a thread grabs continuously and the loop takes the
newest frames. Video files and image folders hand out every frame, in order. A video file can also be
replayed as if it were a camera (`realtime=True`), at its own frame rate, dropping what the loop misses.

`check_source` does the cheap checks (the device or file exists, a video file opens, GStreamer is built
in) so a typo is one line before any model is loaded or any output is created; `open_source` starts the
source. A camera or stream that cannot be found or opened at start raises `SourceUnavailable` (exit
status 75, which the systemd unit retries: a USB camera can appear late after boot, an IP camera can
boot slower than the Jetson); every other refusal is a configuration error (exit status 2). Image files
are listed and decoded as the training data are (`data.image_files`): one file gives the same pixels in
training, evaluation and here.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Callable

from ddad_edge.data.image_files import IMAGE_SUFFIXES, list_image_files, read_image
from ddad_edge.errors import DdadError, SourceUnavailable
from ddad_edge.inspect.frame import Dropped, Frame, Grab
from ddad_edge.inspect.grabber import Backoff, LiveSource
from ddad_edge.inspect.jpeg_check import DamagedFrame, open_video_capture
from ddad_edge.inspect.mjpeg_http import open_mjpeg_http
from ddad_edge.inspect.opencv import require_gstreamer
from ddad_edge.lazy_import import import_cv2


class SourceKind(str, Enum):
    """Where frames come from; each is one `ddad-edge run` option."""

    CAMERA = "camera"  # V4L2 device: /dev/videoN or N
    CSI = "csi"  # Jetson CSI camera N through nvarguscamerasrc
    GST = "gst"  # any GStreamer pipeline ending in appsink
    URL = "url"  # rtsp://, http:// (MJPEG: read and checked here; anything else through FFmpeg)
    VIDEO = "video"  # a video file
    IMAGES = "images"  # a folder of images, searched recursively


@dataclass(frozen=True)
class SourceSpec:
    """A frame source as the user named it, with the capture settings that apply to it.

    `width`, `height`, `fps`: requested camera mode (0: the device's default). `realtime`: replay a video
    file at its frame rate through the live grabber. `keep`: frames a live source holds for the loop
    (the batch size). `stall_s`: a live source that delivers nothing this long counts as lost.
    """

    kind: SourceKind
    target: str
    width: int = 0
    height: int = 0
    fps: float = 0.0
    realtime: bool = False
    keep: int = 1
    stall_s: float = 3.0
    backoff: Backoff = Backoff()


def camera_device(target: str) -> tuple[str, int | None]:
    """The device path of `--camera` (`/dev/video2` or `2`) and its index when it is /dev/videoN."""
    path = f"/dev/video{target}" if target.isdigit() else target
    real = os.path.realpath(path)
    match = re.fullmatch(r"/dev/video(\d+)", real)
    return path, (int(match.group(1)) if match else None)


def check_source(spec: SourceSpec) -> None:
    """Cheap checks before anything is loaded; each failure is one DdadError line (SourceUnavailable for a
    camera device that is not there: it may still be on its way)."""
    if spec.kind is SourceKind.CAMERA:
        device, _ = camera_device(spec.target)
        if not os.path.exists(device):
            present = sorted(str(p) for p in Path("/dev").glob("video*")) if Path("/dev").is_dir() else []
            raise SourceUnavailable(f"camera {device} not found: no such device "
                                    f"(video devices here: {', '.join(present) or 'none'}); plug it in, or fix "
                                    "the path (ls /dev/v4l/by-id/ gives names that survive a reboot)")
    elif spec.kind is SourceKind.CSI:
        if not spec.target.isdigit():
            raise DdadError(f"--csi takes a sensor id (0, 1, ...), got {spec.target!r}")
        require_gstreamer(f"--csi {spec.target}")
    elif spec.kind is SourceKind.GST:
        require_gstreamer("--gst")
        if "appsink" not in spec.target:
            raise DdadError("--gst pipeline must end in appsink (for example '... ! videoconvert ! "
                            "video/x-raw,format=BGR ! appsink drop=1 max-buffers=1')")
    elif spec.kind is SourceKind.URL:
        if not re.match(r"^(rtsp|rtsps|http|https|rtmp|udp|tcp)://", spec.target):
            raise DdadError(f"--url {spec.target!r} is not a stream URL (rtsp://..., http://...)")
    elif spec.kind is SourceKind.VIDEO:
        path = Path(spec.target)
        if path.is_dir():
            raise DdadError(f"--video {spec.target} is a folder, not a video file: give a video file in it, "
                            "or --images for a folder of images")
        if not path.is_file():
            raise DdadError(f"video file not found: {spec.target}")
        _check_video_opens(path)
    elif spec.kind is SourceKind.IMAGES:
        path = Path(spec.target)
        if path.is_file():
            raise DdadError(f"--images {spec.target} is a file, not a folder: give its folder ({path.parent}), "
                            "or --video for a video file")
        if not path.is_dir():
            raise DdadError(f"image folder not found: {spec.target}")


def _check_video_opens(path: Path) -> None:
    """One line when OpenCV cannot open the video file at all (corrupt, empty, not a video): opening it
    takes milliseconds, and a run refused here has created nothing yet."""
    cv2 = import_cv2()
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise DdadError(f"cannot read video {path}: not a video OpenCV can decode")
    finally:
        cap.release()


def csi_pipeline(sensor_id: int, width: int, height: int, fps: float) -> str:
    """The nvarguscamerasrc pipeline for a Jetson CSI camera, converted to BGR for OpenCV's appsink."""
    width, height, fps = width or 1920, height or 1080, int(fps or 30)
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={width}, height={height}, framerate={fps}/1, format=NV12 ! "
            f"nvvidconv ! video/x-raw, format=BGRx ! videoconvert ! video/x-raw, format=BGR ! "
            f"appsink drop=1 max-buffers=1 sync=false")


def capture_opener(spec: SourceSpec) -> Callable[[], Any]:
    """A function that opens the spec's cv2.VideoCapture, raising OSError when it cannot."""
    cv2 = import_cv2()

    def opened(cap: Any, what: str) -> Any:
        if not cap.isOpened():
            cap.release()
            raise OSError(f"cannot open {what}")
        return cap

    if spec.kind is SourceKind.CAMERA:
        path, index = camera_device(spec.target)

        def open_camera() -> Any:
            cap = opened(cv2.VideoCapture(index if index is not None else path, cv2.CAP_V4L2),
                         f"camera {path} (busy, or not a capture device)")
            # MJPG lets USB 2 cameras deliver full resolution at full rate; BUFFERSIZE=1 keeps the driver
            # from queueing stale frames behind the one we want.
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
            if spec.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            if spec.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
            if spec.fps:
                cap.set(cv2.CAP_PROP_FPS, spec.fps)
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
            return cap

        return open_camera
    if spec.kind in (SourceKind.CSI, SourceKind.GST):
        pipeline = spec.target if spec.kind is SourceKind.GST else csi_pipeline(
            int(spec.target), spec.width, spec.height, spec.fps)
        return lambda: opened(cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), f"GStreamer pipeline {pipeline!r}")
    if spec.kind is SourceKind.URL:
        if spec.target.startswith("rtsp") and "OPENCV_FFMPEG_CAPTURE_OPTIONS" not in os.environ:
            # TCP: a lost UDP packet smears a whole frame, which would be inspected as a defect.
            os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = "rtsp_transport;tcp"
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(spec.stall_s * 1000),
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(spec.stall_s * 1000)]
        shape: list[tuple[int, int]] = []  # the stream's frame size, kept across reconnects

        def open_stream() -> Any:
            if spec.target.startswith(("http://", "https://")):
                # multipart MJPEG is read here, so each JPEG's bytes are checked (a cut one is a FAULT)
                # socket timeout past stall_s: a frozen stream is the grabber's "stalled" first, as before
                mjpeg = open_mjpeg_http(spec.target, 2 * spec.stall_s + 1.0, shape)
                if mjpeg is not None:
                    return mjpeg
            return opened(cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, timeouts), f"stream {spec.target}")

        return open_stream
    if spec.kind is SourceKind.VIDEO:
        return lambda: opened(open_video_capture(spec.target), f"video {spec.target}")
    raise DdadError(f"{spec.kind.value} is not a capture device")


class VideoFileSource:
    """Every frame of a video file, in order. A file that ends before its header's frame count yields a
    fault marker there, so a truncated recording is not mistaken for a complete one. In an MJPEG file a
    frame whose JPEG is damaged (cut short, zeroed bytes) is a fault marker with its reason
    (`jpeg_check`); in other codecs such damage is concealed by the decoder and not seen here."""

    live = False

    def __init__(self, path: Path) -> None:
        self._cv2 = import_cv2()
        self.name = f"video {path}"
        self._cap = open_video_capture(str(path))
        if not self._cap.isOpened():
            raise DdadError(f"cannot read video {path}: not a video OpenCV can decode")
        self.frame_count = int(self._cap.get(self._cv2.CAP_PROP_FRAME_COUNT) or 0)
        self._seq = 0
        self._ended = False

    def grab(self, max_frames: int, timeout_s: float = 0.0) -> Grab:
        grab = Grab(ended=self._ended)
        while not self._ended and len(grab.frames) < max_frames:
            t, wall = time.monotonic(), time.time()
            try:
                ok, bgr = self._cap.read()
            except DamagedFrame as exc:
                grab.frames.append(Frame(self._seq, t, wall, None, name=f"frame {self._seq}", fault=str(exc)))
                self._seq += 1
                continue
            if not ok:
                self._ended = grab.ended = True
                # Header counts can be off by one for some encoders; more than that is a real loss.
                if self.frame_count and self._seq < self.frame_count - 1:
                    grab.frames.append(Frame(self._seq, t, wall, None, fault=(
                        f"video ended early: {self._seq} of {self.frame_count} frames decoded")))
                    self._seq += 1
                break
            rgb = self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)
            grab.frames.append(Frame(self._seq, t, wall, rgb, name=f"frame {self._seq}",
                                     decode_ms=(time.monotonic() - t) * 1e3))
            self._seq += 1
        return grab

    def close(self) -> list[Dropped]:
        self._cap.release()
        return []


class ImageFolderSource:
    """Every image under a folder (recursively, sorted by relative path), in order.

    A file that does not decode becomes a fault marker naming it; the run goes on.
    """

    live = False

    def __init__(self, root: Path) -> None:
        import_cv2()  # a missing OpenCV is one line here, not a FAULT on every frame
        root = Path(root)
        self.name = f"images {root}"
        self._root = root
        self._files = list_image_files(root, recursive=True)
        if not self._files:
            raise DdadError(f"no images in {root} (looked for {', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def grab(self, max_frames: int, timeout_s: float = 0.0) -> Grab:
        grab = Grab()
        while self._next < len(self._files) and len(grab.frames) < max_frames:
            path = self._files[self._next]
            name = path.relative_to(self._root).as_posix()
            t, wall = time.monotonic(), time.time()
            try:
                rgb = read_image(path, name)
            except DdadError as exc:
                frame = Frame(self._next, t, wall, None, name=name, fault=str(exc))
            else:
                frame = Frame(self._next, t, wall, rgb, name=name, decode_ms=(time.monotonic() - t) * 1e3)
            grab.frames.append(frame)
            self._next += 1
        grab.ended = self._next >= len(self._files)
        return grab

    def close(self) -> list[Dropped]:
        return []


# What to check when a live source does not open at start (the loop exits 75; a service retries).
_NOT_UP_FIX = {
    SourceKind.CAMERA: "fuser -v shows the program that holds it, v4l2-ctl --list-devices the capture devices",
    SourceKind.CSI: "check the sensor id and that nvargus-daemon runs (systemctl status nvargus-daemon)",
    SourceKind.GST: "check the pipeline with gst-launch-1.0 (fakesink in place of appsink)",
    SourceKind.URL: "the camera is not up yet, or the URL is wrong (check it with ffprobe URL)",
}


def open_source(spec: SourceSpec) -> VideoFileSource | ImageFolderSource | LiveSource:
    """Open the source of `spec` (after `check_source`); live sources start grabbing at once."""
    check_source(spec)
    if spec.kind is SourceKind.IMAGES:
        return ImageFolderSource(Path(spec.target))
    if spec.kind is SourceKind.VIDEO and not spec.realtime:
        return VideoFileSource(Path(spec.target))
    opener = capture_opener(spec)
    name = f"{spec.kind.value} {spec.target}"
    try:
        first = opener()  # fail at start with one line, rather than retrying a typo for ever
    except OSError as exc:
        if spec.kind is SourceKind.VIDEO:  # a file that check_source opened: nothing to wait for
            raise DdadError(f"{exc}") from None
        raise SourceUnavailable(f"{exc}: {_NOT_UP_FIX[spec.kind]}") from None
    if spec.kind is SourceKind.VIDEO:
        fps = first.get(import_cv2().CAP_PROP_FPS) or 30.0
        return LiveSource(opener, name, keep=spec.keep, pace_fps=fps, end_at_eof=True, first=first,
                          stall_s=spec.stall_s, backoff=spec.backoff)
    return LiveSource(opener, name, keep=spec.keep, stall_s=spec.stall_s, backoff=spec.backoff, first=first)
