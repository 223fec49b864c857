"""The frames a benchmark reads: image files decoded on every read, as the line's file and camera sources do.

By default the benchmark writes a few synthetic parts (the data/synth renderer) as camera-sized JPEG
files and reads them round and round, so decode and resize cost what they cost for a real camera frame
of that size. `--images DIR` reads the user's own files instead.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ddad_edge.data.image_files import IMAGE_SUFFIXES, list_image_files, read_image
from ddad_edge.data.image_header import MAX_IMAGE_PIXELS
from ddad_edge.errors import DdadError
from ddad_edge.inspect.frame import Dropped, Frame, Grab

MAX_JPEG_SIDE = 65500  # libjpeg's JPEG_MAX_DIMENSION: OpenCV writes no JPEG with a longer side


def parse_frame_size(text: str) -> tuple[int, int]:
    """`WxH` (for example 640x480) → (width, height) in pixels; one line for a size under 8 pixels a side,
    over the 67-megapixel image limit (image_header.MAX_IMAGE_PIXELS) or over JPEG's longest side."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise DdadError(f"--frame-size must be WIDTHxHEIGHT in pixels (for example 640x480), got {text!r}") from None
    if w < 8 or h < 8:
        raise DdadError(f"--frame-size {text}: width and height must be at least 8 pixels")
    if w * h > MAX_IMAGE_PIXELS:  # the limit every image file read here is held to
        raise DdadError(f"--frame-size {text} is {w * h:,} pixels, more than the limit of an image "
                        f"({MAX_IMAGE_PIXELS:,} pixels, 8192x8192): give a camera's frame size, for example 640x480")
    if max(w, h) > MAX_JPEG_SIDE:
        raise DdadError(f"--frame-size {text}: the frames are JPEG files, whose sides are at most "
                        f"{MAX_JPEG_SIDE} pixels: give a camera's frame size, for example 640x480")
    return w, h


def write_synthetic_frames(folder: Path, width: int = 640, height: int = 480, count: int = 8,
                           quality: int = 90, seed: int = 0) -> list[Path]:
    """`count` different synthetic parts as JPEG files of width x height pixels in `folder`; returns the paths.

    Each part is rendered at 256 px and scaled to the frame size: the content is a part on a belt, the
    cost of decoding and resizing is that of a real frame of this size and quality.
    """
    from ddad_edge.data.synth import render_belt, render_part
    from ddad_edge.lazy_import import import_cv2

    cv2 = import_cv2()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    belt = render_belt(256)
    paths = []
    for i in range(count):
        part = render_part(256, rng, belt=belt).image
        frame = cv2.resize(part, (width, height), interpolation=cv2.INTER_CUBIC)
        path = folder / f"frame_{i:03d}.jpg"
        ok = cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise DdadError(f"cannot write benchmark frames to {folder}")
        paths.append(path)
    return paths


def image_files(folder: Path) -> list[Path]:
    """The image files under `folder` (recursively, sorted); one line when there are none."""
    folder = Path(folder)
    if folder.is_file():
        raise DdadError(f"--images {folder} is a file, not a folder: give its folder ({folder.parent})")
    if not folder.is_dir():
        raise DdadError(f"image folder not found: {folder}")
    files = list_image_files(folder, recursive=True)
    if not files:
        raise DdadError(f"no images in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


class CyclingFileSource:
    """A frame source that reads and decodes `n_frames` frames from `files`, round and round.

    Every read decodes the file again (no frame is cached) with the decoder of the line's image-folder
    source (`data.image_files.read_image`), and never drops a frame, as a file source.
    """

    live = False

    def __init__(self, files: list[Path], n_frames: int) -> None:
        from ddad_edge.lazy_import import import_cv2

        if not files:
            raise DdadError("the benchmark has no frames to read")
        import_cv2()  # a missing OpenCV is one line here, not a FAULT on every frame
        self._files, self._n, self._seq = list(files), n_frames, 0
        self.name = f"{len(files)} image files, {n_frames} reads"

    def grab(self, max_frames: int, timeout_s: float = 0.0) -> Grab:
        grab = Grab()
        while self._seq < self._n and len(grab.frames) < max_frames:
            path = self._files[self._seq % len(self._files)]
            t, wall = time.monotonic(), time.time()
            try:
                rgb = read_image(path)
            except DdadError as exc:
                frame = Frame(self._seq, t, wall, None, name=path.name, fault=str(exc))
            else:
                frame = Frame(self._seq, t, wall, rgb, name=path.name, decode_ms=(time.monotonic() - t) * 1e3)
            grab.frames.append(frame)
            self._seq += 1
        grab.ended = self._seq >= self._n
        return grab

    def close(self) -> list[Dropped]:
        return []


def file_source_factory(files: list[Path]):
    """`n → CyclingFileSource(files, n)`, the source factory `measure_runner` takes."""
    files = list(files)
    return lambda n: CyclingFileSource(files, n)
