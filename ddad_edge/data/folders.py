"""MVTec-layout image folders: listing train and test images, reading images and masks.

The layout (MVTec AD, and VisA once converted to it)::

    root/category/train/good/*.png
    root/category/test/good/*.png
    root/category/test/<kind>/*.png
    root/category/ground_truth/<kind>/<stem>_mask.png     (MVTec naming)
    root/category/ground_truth/<kind>/<stem>.png          (VisA converted naming)

A defective test image without a mask file gets `mask_path=None`: its pixels are unknown, so it counts in
image metrics but is left out of pixel metrics (it is not treated as an all-zero mask, which would turn its
defect pixels into false positives).

Images are read with OpenCV from bytes (`cv2.imdecode`) so paths with any characters work, after their
header is checked (`image_header`): an absurd size, a truncated JPEG or a non-image is one line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddad_edge.data.image_header import MAX_IMAGE_FILE_BYTES, decode_image
from ddad_edge.errors import DdadError, missing_package

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GOOD = "good"

_LAYOUT_HINT = "expected the MVTec layout <root>/<category>/{train/good, test/<kind>, ground_truth/<kind>}"


def _cv2():
    try:
        import cv2
    except ImportError:
        raise missing_package("cv2", "reading images", "pip install opencv-python-headless") from None
    return cv2


@dataclass(frozen=True)
class TestSample:
    """One test image: its kind ("good" or a defect kind), label (0 nominal, 1 defective), mask file."""

    __test__ = False  # not a pytest test class, despite the name

    path: Path
    kind: str
    label: int
    mask_path: Path | None


def category_dir(root: Path | str, category: str) -> Path:
    """The folder holding train/ and test/: `root/category`, or `root` itself when category is ""."""
    root = Path(root)
    if not root.is_dir():
        raise DdadError(f"dataset folder not found: {root} ({_LAYOUT_HINT})")
    folder = root / category if category else root
    if not folder.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir())
        hint = f"; categories there: {', '.join(found)}" if found else ""
        raise DdadError(f"category folder not found: {folder}{hint} ({_LAYOUT_HINT})")
    if not category and not (folder / "train").is_dir() and not (folder / "test").is_dir():
        raise DdadError(f"no train/ or test/ folder in {folder}: pass --category or point at one category "
                        f"({_LAYOUT_HINT})")
    return folder


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def list_train(root: Path | str, category: str = "") -> list[Path]:
    """The nominal training images, `train/good/*`, sorted by name."""
    good = category_dir(root, category) / "train" / GOOD
    if not good.is_dir():
        raise DdadError(f"training folder not found: {good} ({_LAYOUT_HINT})")
    paths = _images_in(good)
    if not paths:
        raise DdadError(f"no images in {good}: expected {', '.join(IMAGE_SUFFIXES)} files of nominal parts")
    return paths


def _find_mask(gt_dir: Path, stem: str) -> Path | None:
    for name in (f"{stem}_mask.png", f"{stem}.png"):
        candidate = gt_dir / name
        if candidate.is_file():
            return candidate
    return None


def list_test(root: Path | str, category: str = "") -> list[TestSample]:
    """The test images, `test/<kind>/*`, sorted by kind then name ("good" first), with their masks."""
    folder = category_dir(root, category)
    test = folder / "test"
    if not test.is_dir():
        raise DdadError(f"test folder not found: {test} ({_LAYOUT_HINT})")
    kinds = sorted((p.name for p in test.iterdir() if p.is_dir()), key=lambda k: (k != GOOD, k))
    samples: list[TestSample] = []
    for kind in kinds:
        for path in _images_in(test / kind):
            if kind == GOOD:
                samples.append(TestSample(path, kind, 0, None))
            else:
                mask = _find_mask(folder / "ground_truth" / kind, path.stem)
                samples.append(TestSample(path, kind, 1, mask))
    if not samples:
        raise DdadError(f"no test images in {test}: expected test/good/ and test/<defect kind>/ image files")
    return samples


def _read_raw(path: Path, flags: int) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DdadError(f"image file not found: {path}")
    size = path.stat().st_size
    if size > MAX_IMAGE_FILE_BYTES:
        raise DdadError(f"image file is {size / 2**30:.1f} GiB, more than the {MAX_IMAGE_FILE_BYTES >> 30} GiB "
                        f"limit: {path}")
    return decode_image(_cv2(), path.read_bytes(), str(path), flags)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        # 16-bit images span 0..65535; scale by the full range, not by the image's own maximum, so
        # brightness stays comparable between images. v * 255 // 65535 == v // 257 (65535 = 255 * 257),
        # computed in place of a uint32 copy twice the image's size.
        return (image // 257).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def _resize(image: np.ndarray, size: int, interpolation_up: int) -> np.ndarray:
    cv2 = _cv2()
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    shrinking = size < h or size < w
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else interpolation_up)


def load_image(path: Path | str, size: int | None) -> np.ndarray:
    """One image as RGB uint8 of shape (size, size, 3); `size=None` keeps the original (H, W, 3).

    Grayscale is expanded to 3 channels, an alpha channel is dropped, 16-bit is scaled to 8-bit, and any
    other size is resized (area interpolation when shrinking, bilinear when enlarging).
    """
    cv2 = _cv2()
    image = _to_uint8(_read_raw(Path(path), cv2.IMREAD_UNCHANGED))
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 1:
        image = cv2.cvtColor(image[:, :, 0], cv2.COLOR_GRAY2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    else:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if size is not None:
        image = _resize(image, size, cv2.INTER_LINEAR)
    return np.ascontiguousarray(image)


def load_mask(path: Path | str, size: int | None, image_shape: tuple[int, int] | None = None,
              image_path: Path | str | None = None) -> np.ndarray:
    """A ground-truth mask as bool of shape (size, size): True where the defect is (any non-zero pixel).

    `image_shape` is the (height, width) of the image the mask belongs to; a mask of another size is an
    error rather than silently stretched. The result stays binary (see the comment on resizing).
    """
    cv2 = _cv2()
    mask = _to_uint8(_read_raw(Path(path), cv2.IMREAD_UNCHANGED))
    if mask.ndim == 3:
        mask = mask[:, :, :3].max(axis=2)
    if image_shape is not None and tuple(mask.shape[:2]) != tuple(image_shape):
        mh, mw = mask.shape[:2]
        ih, iw = image_shape
        owner = f"image {image_path}" if image_path is not None else "its image"
        raise DdadError(f"mask {path} is {mw}x{mh} pixels but {owner} is {iw}x{ih}: "
                        "a mask must have the size of its image")
    mask = (mask > 0).astype(np.float32)
    if size is not None and mask.shape != (size, size):
        # Shrinking: a pixel is defect when at least half of it was (centred, unlike INTER_NEAREST, which
        # shifts by half a source pixel). Enlarging: exact nearest neighbour.
        shrinking = size < mask.shape[0] or size < mask.shape[1]
        mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_NEAREST_EXACT)
    return mask >= 0.5


def load_images(paths: list[Path], size: int) -> np.ndarray:
    """Several images as one RGB uint8 array of shape (N, size, size, 3)."""
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        out[i] = load_image(p, size)
    return out


def load_test_arrays(samples: list[TestSample], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images, labels, masks and mask-known flags of test samples, ready for the metrics.

    Returns images (N, size, size, 3) uint8, labels (N,) int64, masks (N, size, size) bool (all False for good
    images and for defects without a mask) and has_mask (N,) bool (False only for defects without a mask,
    which pixel metrics must leave out). Each mask is checked against its image's size.
    """
    n = len(samples)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=bool)
    has_mask = np.ones(n, dtype=bool)
    labels = np.array([s.label for s in samples], dtype=np.int64)
    for i, s in enumerate(samples):
        full = load_image(s.path, None)
        images[i] = _resize(full, size, _cv2().INTER_LINEAR)
        if s.label == 1:
            if s.mask_path is None:
                has_mask[i] = False
            else:
                masks[i] = load_mask(s.mask_path, size, image_shape=full.shape[:2], image_path=s.path)
    return images, labels, masks, has_mask


def split_train_val(paths: list[Path], val_fraction: float, seed: int) -> tuple[list[Path], list[Path]]:
    """Deterministically hold out `val_fraction` of the training images for validation.

    The split depends only on the sorted paths and the seed. With a non-zero fraction at least one image is
    held out and at least one kept; both lists come back sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DdadError(f"validation fraction must be in [0, 1), got {val_fraction}")
    ordered = sorted(paths)
    if val_fraction == 0.0 or len(ordered) < 2:
        return ordered, []
    n_val = min(max(1, round(len(ordered) * val_fraction)), len(ordered) - 1)
    order = list(range(len(ordered)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [p for i, p in enumerate(ordered) if i not in val_idx]
    val = [p for i, p in enumerate(ordered) if i in val_idx]
    return train, val
