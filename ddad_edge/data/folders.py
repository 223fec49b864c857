"""MVTec-layout image folders: listing train and test images, reading images and masks.

The layout (MVTec AD, and VisA once converted to it)::

    root/category/train/good/*.png
    root/category/test/good/*.png
    root/category/test/<kind>/*.png
    root/category/ground_truth/<kind>/<stem>_mask.png     (MVTec naming)
    root/category/ground_truth/<kind>/<stem>.png          (VisA converted naming)

Images are the files with a suffix of `image_files.IMAGE_SUFFIXES` (PNG, JPEG, BMP, TIFF, WebP; any
case). A mask may have any of these suffixes too, and `_mask` in any case (`000_mask.PNG`, `000_MASK.tif`).

A defective test image without a mask file gets `mask_path=None`: its pixels are unknown, so it counts in
image metrics but is left out of pixel metrics (it is not treated as an all-zero mask, which would turn its
defect pixels into false positives). `evaluate` says how many there are.

Images are decoded by `image_files.read_image`, the decoder of the inspection loop too, so a file gives
the same pixels in training, evaluation and on the line (EXIF orientation ignored everywhere). It reads
bytes (`cv2.imdecode`) so paths with any characters work, after the header is checked (`image_header`):
an absurd size, a truncated JPEG or a non-image is one line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddad_edge.data.image_files import IMAGE_SUFFIXES, list_image_files, read_image, read_stored
from ddad_edge.errors import DdadError
from ddad_edge.lazy_import import import_cv2

GOOD = "good"
GROUND_TRUTH = "ground_truth"

_LAYOUT_HINT = "expected the MVTec layout <root>/<category>/{train/good, test/<kind>, ground_truth/<kind>}"


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


def list_train(root: Path | str, category: str = "") -> list[Path]:
    """The nominal training images, `train/good/*`, sorted by name."""
    good = category_dir(root, category) / "train" / GOOD
    if not good.is_dir():
        raise DdadError(f"training folder not found: {good} ({_LAYOUT_HINT})")
    paths = list_image_files(good)
    if not paths:
        raise DdadError(f"no images in {good}: expected {', '.join(IMAGE_SUFFIXES)} files of nominal parts")
    return paths


def _masks_by_stem(gt_dir: Path) -> dict[str, list[Path]]:
    """The image files of a ground_truth/<kind> folder by lower-case stem (several when only the suffix or
    the case differs), each list sorted by name; empty when the folder is absent."""
    masks: dict[str, list[Path]] = {}
    if gt_dir.is_dir():
        for path in list_image_files(gt_dir):
            masks.setdefault(path.stem.lower(), []).append(path)
    return masks


def _find_mask(masks: dict[str, list[Path]], stem: str) -> Path | None:
    """The mask of the test image `stem`: `<stem>_mask.*` (MVTec), else `<stem>.*` (VisA converted), any
    image suffix, any case; an exact-case stem wins over one that differs only in case."""
    for wanted in (f"{stem}_mask", stem):
        found = masks.get(wanted.lower(), [])
        exact = [p for p in found if p.stem.startswith(stem)]  # equal lengths: the image's stem, same case
        if found:
            return (exact or found)[0]
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
        masks = {} if kind == GOOD else _masks_by_stem(folder / GROUND_TRUTH / kind)
        for path in list_image_files(test / kind):
            if kind == GOOD:
                samples.append(TestSample(path, kind, 0, None))
            else:
                samples.append(TestSample(path, kind, 1, _find_mask(masks, path.stem)))
    if not samples:
        raise DdadError(f"no test images in {test}: expected test/good/ and test/<defect kind>/ image files")
    return samples


def _resize(image: np.ndarray, size: int, interpolation_up: int) -> np.ndarray:
    cv2 = import_cv2("reading images")
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    shrinking = size < h or size < w
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrinking else interpolation_up)


def load_image(path: Path | str, size: int | None) -> np.ndarray:
    """One image as RGB uint8 of shape (size, size, 3); `size=None` keeps the original (H, W, 3).

    Decoded by `image_files.read_image`, as the inspection loop decodes frames: pixels as stored (EXIF
    orientation ignored), grayscale expanded to 3 channels, alpha dropped, 16-bit and float scaled to
    8-bit. Any other size is resized (area interpolation when shrinking, bilinear when enlarging).
    """
    image = read_image(Path(path))
    if size is not None:
        image = _resize(image, size, import_cv2("reading images").INTER_LINEAR)
    return np.ascontiguousarray(image)


def load_mask(path: Path | str, size: int | None, image_shape: tuple[int, int] | None = None,
              image_path: Path | str | None = None) -> np.ndarray:
    """A ground-truth mask as bool of shape (size, size): True where the defect is.

    A defect is any pixel whose colour channels are not all zero, in the file's own depth: 255 in an
    8-bit mask, 1 in a 16-bit or float one as label tools export them (an alpha channel is ignored).
    `image_shape` is the (height, width) of the image the mask belongs to; a mask of another size is an
    error rather than silently stretched. The result stays binary (see the comment on resizing).
    """
    cv2 = import_cv2("reading images")
    stored = read_stored(Path(path))
    # Thresholded before any conversion to 8 bits, which would turn 16-bit 1s into 0s.
    mask = (stored[:, :, :3] != 0).any(axis=2) if stored.ndim == 3 else stored != 0
    if image_shape is not None and tuple(mask.shape[:2]) != tuple(image_shape):
        mh, mw = mask.shape[:2]
        ih, iw = image_shape
        owner = f"image {image_path}" if image_path is not None else "its image"
        raise DdadError(f"mask {path} is {mw}x{mh} pixels but {owner} is {iw}x{ih}: "
                        "a mask must have the size of its image")
    mask = mask.astype(np.float32)
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
        images[i] = _resize(full, size, import_cv2("reading images").INTER_LINEAR)
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
