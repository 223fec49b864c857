"""Image files: which files count as images, and the one decoder that every reader of them uses.

Training, evaluation, `ddad-edge run --images` and `ddad-edge bench` all list image files with
`list_image_files` and decode them with `read_image`, so one file gives the same pixels everywhere:
a model is inspected on the line with exactly the pixels it was trained and measured on.

Pixels as stored: an EXIF orientation tag is ignored, everywhere. Industrial cameras write none (or
"normal"); a phone photo with a rotation tag comes out as its sensor stored it, not as a photo viewer
turns it. (OpenCV's IMREAD_COLOR would apply the tag; IMREAD_UNCHANGED, used here, does not.)

Depths: 8-bit is kept; 16-bit is scaled by the full range (v // 257); float is taken as 0..1 and scaled
by 255, except float data whose maximum is above 1, which is taken as 0..255 (as some tools export it);
both are clipped to 0..255, NaN reads as 0. Other integer depths are clipped to 0..255. Grey is expanded
to 3 channels and an alpha channel is dropped.

Listings skip macOS AppleDouble files (`._name.png`, written next to every file copied from a Mac to a
FAT or network drive): they carry metadata, not pixels.

No torch here: the inspection loop imports this module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ddad_edge.data.image_header import MAX_IMAGE_FILE_BYTES, decode_image
from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
APPLEDOUBLE_PREFIX = "._"


def is_image_name(name: str) -> bool:
    """Whether a file name is an image's by its suffix (any case), and not a macOS `._` metadata file."""
    return not name.startswith(APPLEDOUBLE_PREFIX) and Path(name).suffix.lower() in IMAGE_SUFFIXES


def list_image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """The image files in `folder` (or under it, when `recursive`), sorted by their path relative to it.

    Empty when there are none; the caller says what it expected there.
    """
    folder = Path(folder)
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted((p for p in found if is_image_name(p.name) and p.is_file()),
                  key=lambda p: p.relative_to(folder).as_posix())


def read_stored(path: Path, name: str | None = None) -> np.ndarray:
    """The pixels of an image file as stored: (H, W) or (H, W, C) in the file's own depth, BGR(A) order.

    `name` is what a message calls the file (default: the path). Any failure is one DdadError line.
    """
    path, name = Path(path), name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_IMAGE_FILE_BYTES:
            raise DdadError(f"image file is {size / 2**30:.1f} GiB, more than the {MAX_IMAGE_FILE_BYTES >> 30} GiB "
                            f"limit: {name}")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DdadError(f"image file not found: {name}") from None
    except OSError as exc:
        raise DdadError(f"cannot read image file ({exc.strerror or exc}): {name}") from None
    cv2 = import_cv2("reading images")
    return decode_image(cv2, data, name, cv2.IMREAD_UNCHANGED)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Any depth to uint8, as the module docstring says; a uint8 image is returned as is (no copy)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # 16-bit images span 0..65535; scale by the full range, not by the image's own maximum, so
        # brightness stays comparable between images. v * 255 // 65535 == v // 257 (65535 = 255 * 257),
        # computed in place of a uint32 copy twice the image's size.
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        finite = image[np.isfinite(image)]
        scale = 255.0 if finite.size == 0 or float(finite.max()) <= 1.0 else 1.0
        scaled = np.nan_to_num(image.astype(np.float32) * scale, nan=0.0, posinf=255.0, neginf=0.0)
        return (np.clip(scaled, 0.0, 255.0) + 0.5).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def read_image(path: Path, name: str | None = None) -> np.ndarray:
    """An image file as RGB uint8 of shape (H, W, 3), pixels as stored (see the module docstring).

    `name` is what a message calls the file (default: the path). Any failure is one DdadError line.
    An 8-bit colour file costs one decode and one colour conversion, nothing more.
    """
    cv2 = import_cv2("reading images")
    image = to_uint8(read_stored(path, name))
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 1:
        return cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
