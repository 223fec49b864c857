"""Frame sources on real files, folders and an HTTP MJPEG stream, through real OpenCV."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from ddad_edge.bench.frames import CyclingFileSource, image_files
from ddad_edge.data.folders import load_image
from ddad_edge.errors import DdadError, SourceUnavailable
from ddad_edge.inspect.grabber import Backoff, LiveSource
from ddad_edge.inspect.opencv import has_gstreamer
from ddad_edge.inspect.sources import (
    ImageFolderSource,
    SourceKind,
    SourceSpec,
    VideoFileSource,
    check_source,
    open_source,
)
from tests.inspect.media import MjpegServer, index_of, part_image, refused_url, write_images, write_video


def drain(source, batch=1, timeout_s=0.2, limit_s=10.0):
    """Every frame and drop a source yields until it ends (or `limit_s` passes), then its close leftovers."""
    frames, dropped, notes = [], [], []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        grab = source.grab(batch, timeout_s)
        frames += grab.frames
        dropped += grab.dropped
        notes += grab.notes
        if grab.ended:
            break
    dropped += source.close()
    return frames, dropped, notes


def test_video_file_gives_every_frame_in_order_as_rgb(tmp_path):
    images = [part_image(i, red=(i % 3 == 0)) for i in range(12)]
    source = VideoFileSource(write_video(tmp_path / "v.avi", images))
    frames, dropped, _ = drain(source, batch=5)
    assert [f.seq for f in frames] == list(range(12)) and not dropped
    for i, f in enumerate(frames):
        assert f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8
        centre = f.image[24, 32].astype(int)
        # RGB, not OpenCV's BGR: the red patch is in channel 0.
        assert (centre[0] > 200 and centre[1] < 60) == (i % 3 == 0)
        assert index_of(f.image) == i % 15
    assert all(a.t_capture <= b.t_capture for a, b in zip(frames, frames[1:]))


def test_truncated_video_ends_with_a_fault_marker(tmp_path):
    path = write_video(tmp_path / "v.avi", [part_image(i, False) for i in range(40)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    frames, _, _ = drain(VideoFileSource(path), batch=8)
    assert 5 < len(frames) < 40
    assert all(f.image is not None for f in frames[:-2])
    # the frame the truncation cut through is a fault of its own, not a concealed picture
    assert frames[-2].image is None and frames[-2].fault == "damaged frame: JPEG cut short (no end-of-image marker)"
    assert frames[-1].image is None and "ended early" in frames[-1].fault
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_image_folder_is_recursive_sorted_and_marks_unreadable_files(tmp_path):
    write_images(tmp_path / "b", [part_image(i, False) for i in range(2)])
    write_images(tmp_path / "a", [part_image(i + 10, True) for i in range(2)])
    (tmp_path / "a" / "frame_005.png").write_bytes(b"not a png")
    frames, _, _ = drain(ImageFolderSource(tmp_path), batch=2)
    assert [f.name for f in frames] == ["a/frame_000.png", "a/frame_001.png", "a/frame_005.png",
                                        "b/frame_000.png", "b/frame_001.png"]
    assert [f.seq for f in frames] == list(range(5))
    assert frames[2].image is None and "a/frame_005.png" in frames[2].fault
    assert index_of(frames[0].image) == 10 and index_of(frames[3].image) == 0


def _exif_rotated_jpeg(path, rgb: np.ndarray) -> None:
    """A JPEG whose EXIF orientation tag (6: turn 90 degrees clockwise to view) asks viewers to rotate it."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(rgb).save(path, exif=exif.tobytes(), quality=95)


def test_a_file_gives_the_same_pixels_to_training_the_loop_and_the_benchmark(tmp_path):
    """One decoder everywhere: EXIF orientation ignored (pixels as stored), float TIFFs read, not FAULTs."""
    folder = tmp_path / "frames"
    folder.mkdir()
    stored = part_image(3, True, height=24, width=40)  # wider than tall: a rotation would show
    _exif_rotated_jpeg(folder / "a_rotated.jpg", stored)
    assert cv2.imread(str(folder / "a_rotated.jpg")).shape[:2] == (40, 24)  # a viewer would turn it
    bgr = stored[:, :, ::-1].astype(np.float32)
    cv2.imwrite(str(folder / "b_unit.tif"), bgr / 255)
    cv2.imwrite(str(folder / "c_wide.tif"), bgr)  # float 0..255
    cv2.imwrite(str(folder / "d_deep.png"), bgr.astype(np.uint16) * 257)
    frames, _, _ = drain(ImageFolderSource(folder), batch=8)
    bench, _, _ = drain(CyclingFileSource(image_files(folder), 4), batch=8)
    assert [f.name for f in frames] == ["a_rotated.jpg", "b_unit.tif", "c_wide.tif", "d_deep.png"]
    for line, timed in zip(frames, bench):
        assert line.image is not None and timed.image is not None, (line.fault, timed.fault)
        trained = load_image(folder / line.name, None)
        assert np.array_equal(line.image, trained) and np.array_equal(timed.image, trained), line.name
    assert frames[0].image.shape == (24, 40, 3)  # as stored, not as a viewer turns it
    for lossless in frames[1:]:
        assert np.array_equal(lossless.image, stored), lossless.name


def test_appledouble_files_are_no_frames(tmp_path):
    """macOS writes `._name` metadata beside every file copied to a FAT or network drive: not images."""
    write_images(tmp_path / "line", [part_image(i, False) for i in range(2)])
    (tmp_path / "line" / "sub").mkdir()
    for name in ("._frame_000.png", "sub/._frame_001.jpg"):
        (tmp_path / "line" / name).write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60))
    frames, _, _ = drain(ImageFolderSource(tmp_path / "line"), batch=8)
    assert [f.name for f in frames] == ["frame_000.png", "frame_001.png"]
    assert all(f.image is not None for f in frames)
    assert [p.name for p in image_files(tmp_path / "line")] == ["frame_000.png", "frame_001.png"]
    with pytest.raises(DdadError, match="no images"):
        ImageFolderSource(tmp_path / "line" / "sub")


def test_a_file_for_images_and_a_folder_for_video_are_named_as_such(tmp_path):
    frame = write_images(tmp_path, [part_image(0, False)])[0]
    with pytest.raises(DdadError) as info:
        check_source(SourceSpec(SourceKind.IMAGES, str(frame)))
    assert str(info.value) == (f"--images {frame} is a file, not a folder: give its folder ({tmp_path}), "
                               "or --video for a video file")
    with pytest.raises(DdadError) as info:
        check_source(SourceSpec(SourceKind.VIDEO, str(tmp_path)))
    assert str(info.value) == (f"--video {tmp_path} is a folder, not a video file: give a video file in it, "
                               "or --images for a folder of images")


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00\x00\x00AVI garbage"])
def test_a_video_opencv_cannot_open_is_refused_by_the_cheap_check(tmp_path, content):
    (tmp_path / "bad.avi").write_bytes(content)
    with pytest.raises(DdadError, match="not a video OpenCV can decode"):
        check_source(SourceSpec(SourceKind.VIDEO, str(tmp_path / "bad.avi")))


def test_empty_folder_and_missing_paths_are_one_line_errors(tmp_path):
    with pytest.raises(DdadError, match="no images"):
        ImageFolderSource(tmp_path)
    with pytest.raises(DdadError, match="video file not found"):
        check_source(SourceSpec(SourceKind.VIDEO, str(tmp_path / "nope.avi")))
    with pytest.raises(DdadError, match="not a stream URL"):
        check_source(SourceSpec(SourceKind.URL, "ftp://camera"))


@pytest.mark.parametrize("target", ["/dev/video0", "7"])
def test_missing_camera_is_named(target, tmp_path):
    device = target if target.startswith("/") else f"/dev/video{target}"
    if __import__("os").path.exists(device):
        pytest.skip(f"{device} exists on this machine")
    with pytest.raises(SourceUnavailable) as info:  # exit status 75: it may still be on its way
        check_source(SourceSpec(SourceKind.CAMERA, target))
    message = str(info.value)
    assert device in message and "not found" in message and "\n" not in message


def test_a_stream_that_is_not_up_is_unavailable_not_a_config_error():
    url = refused_url()
    with pytest.raises(SourceUnavailable, match=f"cannot open stream {url}: the camera is not up yet"):
        open_source(SourceSpec(SourceKind.URL, url, stall_s=1.0))


def test_gstreamer_sources_need_gstreamer():
    if has_gstreamer():
        check_source(SourceSpec(SourceKind.GST, "videotestsrc ! videoconvert ! appsink"))
        with pytest.raises(DdadError, match="appsink"):
            check_source(SourceSpec(SourceKind.GST, "videotestsrc ! fakesink"))
    else:
        for spec in (SourceSpec(SourceKind.CSI, "0"), SourceSpec(SourceKind.GST, "videotestsrc ! appsink")):
            with pytest.raises(DdadError, match="GStreamer: NO"):
                check_source(spec)


def test_http_mjpeg_stream_feeds_a_live_source(tmp_path):
    images = [part_image(i, red=(i % 2 == 0)) for i in range(20)]
    server = MjpegServer(images, fps=40)
    try:
        source = open_source(SourceSpec(SourceKind.URL, server.url, stall_s=2.0))
        assert source.live
        got = []
        deadline = time.monotonic() + 10
        while len(got) < 10 and time.monotonic() < deadline:
            got += [f for f in source.grab(1, 0.5).frames if f.image is not None]
        source.close()
    finally:
        server.close()
    assert len(got) >= 10
    for f in got:
        i = index_of(f.image)
        assert (f.image[24, 32, 0] > 200) == (i % 2 == 0)  # the frame the server sent, colours intact


def test_live_source_accounts_for_every_frame_when_the_loop_is_slow(tmp_path):
    path = write_video(tmp_path / "v.avi", [part_image(i, False) for i in range(60)], fps=120)
    source = open_source(SourceSpec(SourceKind.VIDEO, str(path), realtime=True))
    frames, dropped = [], []
    while True:
        grab = source.grab(1, 0.5)
        frames += grab.frames
        dropped += grab.dropped
        if grab.ended:
            break
        time.sleep(0.03)  # a loop much slower than the 120 fps source
    dropped += source.close()
    seqs = sorted([f.seq for f in frames] + [d.seq for d in dropped])
    assert seqs == list(range(60)), "every grabbed frame is inspected or dropped, exactly once"
    assert len(dropped) > 20 and all(d.reason == "inference busy" for d in dropped)
    assert all(index_of(f.image) == f.seq % 15 for f in frames), "the newest frame, not a stale one"


def test_lost_stream_gives_one_fault_marker_and_reconnects(tmp_path):
    server = MjpegServer([part_image(i, False) for i in range(10)], fps=50, refuse_s=0.6)
    try:
        source = open_source(SourceSpec(SourceKind.URL, server.url, stall_s=2.0,
                                        backoff=Backoff(first_s=0.1, max_s=0.4)))
        frames, notes = [], []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            grab = source.grab(1, 0.2)
            frames += grab.frames
            notes += grab.notes
            markers = [f for f in frames if f.image is None]
            if markers and any(f.seq > markers[0].seq and f.image is not None for f in frames):
                break
        dropped = source.close()
    finally:
        server.close()
    markers = [f for f in frames if f.image is None]
    assert len(markers) == 1 and "camera lost" in markers[0].fault
    assert any(f.seq > markers[0].seq and f.image is not None for f in frames), "frames after reconnecting"
    assert any("reconnect attempt" in n and "failed" in n for n in notes), "503 while the camera 'reboots'"
    assert any("restored" in n for n in notes)
    seqs = sorted([f.seq for f in frames] + [d.seq for d in dropped])
    assert len(set(seqs)) == len(seqs)


def test_stalled_source_is_declared_lost():
    class FakeHungCamera:
        """Stands in for a camera whose driver hangs: grab blocks and never delivers."""

        def __init__(self):
            import threading

            self.released = threading.Event()

        def grab(self):
            self.released.wait(5)
            return False

        def retrieve(self):
            return False, None

        def release(self):
            self.released.set()

    source = LiveSource(lambda: FakeHungCamera(), "silent camera", stall_s=0.3, first=FakeHungCamera(),
                        backoff=Backoff(first_s=5))
    t0 = time.monotonic()
    grab = source.grab(1, 1.0)
    waited = time.monotonic() - t0
    source.close()
    assert len(grab.frames) == 1 and grab.frames[0].image is None and "stalled" in grab.frames[0].fault
    assert 0.25 < waited < 1.0
