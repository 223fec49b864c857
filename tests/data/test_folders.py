"""MVTec-layout folders on real files: listing, image formats, resizing, masks, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from ddad_edge.data.folders import (
    category_dir,
    list_test,
    list_train,
    load_image,
    load_images,
    load_mask,
    load_test_arrays,
    split_train_val,
)
from ddad_edge.errors import DdadError


def _write(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _bgr(h: int, w: int, value=(10, 20, 30)) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


@pytest.fixture()
def mvtec(tmp_path: Path) -> Path:
    """A tiny MVTec-layout category with both mask namings and a defect without a mask."""
    cat = tmp_path / "bottle"
    for name in ("002.png", "000.png", "001.jpg"):
        _write(cat / "train" / "good" / name, _bgr(40, 40))
    (cat / "train" / "good" / "notes.txt").write_text("not an image")
    _write(cat / "test" / "good" / "000.png", _bgr(40, 40))
    _write(cat / "test" / "crack" / "000.png", _bgr(40, 40))
    _write(cat / "test" / "crack" / "001.png", _bgr(40, 40))
    mask = np.zeros((40, 40), np.uint8)
    mask[5:10, 5:20] = 255
    _write(cat / "ground_truth" / "crack" / "000_mask.png", mask)  # MVTec naming
    _write(cat / "test" / "bent" / "000.png", _bgr(40, 40))
    _write(cat / "ground_truth" / "bent" / "000.png", mask)  # VisA converted naming
    return tmp_path


def test_layout_listing(mvtec: Path):
    train = list_train(mvtec, "bottle")
    assert [p.name for p in train] == ["000.png", "001.jpg", "002.png"]
    test = list_test(mvtec, "bottle")
    assert [(s.kind, s.path.name, s.label) for s in test] == [
        ("good", "000.png", 0), ("bent", "000.png", 1), ("crack", "000.png", 1), ("crack", "001.png", 1)]
    assert test[0].mask_path is None
    assert test[1].mask_path.name == "000.png" and test[1].mask_path.parent.name == "bent"
    assert test[2].mask_path.name == "000_mask.png"
    assert test[3].mask_path is None  # unknown defect pixels, left out of pixel metrics
    # A category folder can be given directly as root.
    assert list_train(mvtec / "bottle", "") == train
    assert category_dir(mvtec / "bottle", "") == mvtec / "bottle"


def test_test_arrays_flag_defects_without_masks(mvtec: Path):
    images, labels, masks, has_mask = load_test_arrays(list_test(mvtec, "bottle"), 20)
    assert images.shape == (4, 20, 20, 3) and images.dtype == np.uint8
    assert labels.tolist() == [0, 1, 1, 1]
    assert has_mask.tolist() == [True, True, True, False]
    assert masks[1].sum() == masks[2].sum() > 0 and masks[3].sum() == 0
    # Rows 5:10, cols 5:20 at 40 px land on rows 2.5:5, cols 2.5:10 at 20 px.
    assert masks[1, 3:5, 3:10].all() and not masks[1, 6:].any() and not masks[1, :, 11:].any()


def test_colour_order_is_rgb(tmp_path: Path):
    path = _write(tmp_path / "a.png", _bgr(8, 8, (10, 20, 30)))  # written as B, G, R
    assert load_image(path, 8)[0, 0].tolist() == [30, 20, 10]


def test_grayscale_rgba_and_16_bit(tmp_path: Path):
    gray = _write(tmp_path / "g.png", np.full((16, 16), 77, np.uint8))
    img = load_image(gray, 16)
    assert img.shape == (16, 16, 3) and (img == 77).all()

    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[..., 3] = 128
    img = load_image(_write(tmp_path / "a.png", rgba), 16)
    assert img.shape == (16, 16, 3) and img[0, 0].tolist() == [30, 20, 10]

    deep = np.full((16, 16, 3), 65535, np.uint16)
    deep[:8] = 32896  # 128 * 257
    img = load_image(_write(tmp_path / "d.png", deep), 16)
    assert img.dtype == np.uint8 and img[15, 0].tolist() == [255] * 3 and img[0, 0].tolist() == [128] * 3

    gray16 = _write(tmp_path / "g16.png", np.full((16, 16), 65535, np.uint16))
    assert (load_image(gray16, 16) == 255).all()


def test_any_size_is_resized(tmp_path: Path):
    big = np.zeros((100, 60, 3), np.uint8)
    big[:, 30:] = 200
    img = load_image(_write(tmp_path / "big.png", big), 32)
    assert img.shape == (32, 32, 3)
    assert img[:, :14].max() == 0 and img[:, 18:].min() == 200  # area resampling keeps the halves
    small = load_image(_write(tmp_path / "small.png", _bgr(10, 10)), 64)
    assert small.shape == (64, 64, 3) and (small == small[0, 0]).all()
    assert load_image(tmp_path / "big.png", None).shape == (100, 60, 3)
    stack = load_images([tmp_path / "big.png", tmp_path / "small.png"], 16)
    assert stack.shape == (2, 16, 16, 3) and stack.dtype == np.uint8


def test_mask_resizing_stays_binary(tmp_path: Path):
    mask = np.zeros((50, 50), np.uint8)
    mask[10:30, 10:30] = 255
    out = load_mask(_write(tmp_path / "m.png", mask), 25, image_shape=(50, 50))
    assert out.dtype == bool and out.shape == (25, 25)
    assert out.sum() == 100 and out[5:15, 5:15].all()


def test_masks_of_any_depth_mark_every_non_zero_pixel(tmp_path: Path):
    """Label tools export 16-bit and float masks with defect = 1: no conversion to 8 bits may erase it."""
    deep = np.zeros((20, 20), np.uint16)
    deep[2:6, 2:6] = 1
    assert load_mask(_write(tmp_path / "m16.png", deep), None).sum() == 16
    rgb16 = np.zeros((20, 20, 3), np.uint16)
    rgb16[10, 10, 0] = 1  # one channel is enough
    assert load_mask(_write(tmp_path / "rgb16.png", rgb16), None).sum() == 1
    real = np.zeros((20, 20), np.float32)
    real[2:6, 2:6] = 1.0
    real[15, 15] = 0.001
    out = load_mask(_write(tmp_path / "f32.tif", real), None)
    assert out.sum() == 17 and out[15, 15] and not out[0, 0]
    assert load_mask(tmp_path / "m16.png", 10, image_shape=(20, 20))[1:3, 1:3].all()


def test_float_images_in_0_to_1_and_in_0_to_255(tmp_path: Path):
    """Float data up to 1 is scaled by 255; float data above 1 is already 0..255 (clipped), not all white."""
    unit = np.zeros((8, 8, 3), np.float32)
    unit[:, :, 2] = 0.5  # red, in OpenCV's BGR order
    assert load_image(_write(tmp_path / "unit.tif", unit), None)[0, 0].tolist() == [128, 0, 0]
    wide = np.zeros((8, 8, 3), np.float32)
    wide[..., 0], wide[..., 1], wide[..., 2] = 10.0, 100.4, 300.0  # B, G, R; 300 is clipped to 255
    img = load_image(_write(tmp_path / "wide.tif", wide), None)
    assert img[0, 0].tolist() == [255, 100, 10] and (img == img[0, 0]).all()


def test_webp_and_upper_case_suffixes_are_images_and_appledouble_files_are_not(tmp_path: Path):
    good = tmp_path / "bottle" / "train" / "good"
    _write(good / "000.png", _bgr(12, 12))
    ok, webp = cv2.imencode(".webp", _bgr(12, 12, (10, 20, 30)), [cv2.IMWRITE_WEBP_QUALITY, 101])  # lossless
    assert ok
    (good / "001.webp").write_bytes(webp.tobytes())
    _write(good / "002.PNG", _bgr(12, 12))
    # What macOS writes beside each file on a FAT or network drive: metadata named like the image.
    (good / "._000.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(60))
    (good / "._001.webp").write_bytes(b"\x00\x05\x16\x07" + bytes(60))
    paths = list_train(tmp_path, "bottle")
    assert [p.name for p in paths] == ["000.png", "001.webp", "002.PNG"]
    assert load_images(paths, 12)[1, 0, 0].tolist() == [30, 20, 10]


def test_masks_are_found_with_any_suffix_and_case(tmp_path: Path):
    cat = tmp_path / "bottle"
    for stem in ("000", "001", "002", "003", "Img4"):
        _write(cat / "test" / "crack" / f"{stem}.png", _bgr(16, 16))
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 255
    gt = cat / "ground_truth" / "crack"
    _write(gt / "000_mask.PNG", mask)
    _write(gt / "001_MASK.tif", mask)
    _write(gt / "002.bmp", mask)  # VisA converted naming, another suffix
    _write(gt / "img4_mask.png", mask)  # the stem differs in case only
    _write(gt / "._003_mask.png", mask)  # macOS metadata, not a mask
    found = {s.path.stem: s.mask_path and s.mask_path.name for s in list_test(tmp_path, "bottle")}
    assert found == {"000": "000_mask.PNG", "001": "001_MASK.tif", "002": "002.bmp", "003": None,
                     "Img4": "img4_mask.png"}
    # An exact-case match wins over one that differs in case only.
    _write(gt / "Img4_mask.bmp", mask)
    assert list_test(tmp_path, "bottle")[-1].mask_path.name == "Img4_mask.bmp"


def _one_line_error(call, *needles: str) -> str:
    with pytest.raises(DdadError) as info:
        call()
    msg = str(info.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg
    return msg


def test_corrupt_and_zero_byte_files(tmp_path: Path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    _one_line_error(lambda: load_image(corrupt, 32), "corrupt.png", "decode")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    _one_line_error(lambda: load_image(empty, 32), "empty.png", "0 bytes")
    _one_line_error(lambda: load_image(tmp_path / "absent.png", 32), "absent.png", "not found")
    _one_line_error(lambda: load_images([corrupt], 32), "corrupt.png")


def test_missing_folder(tmp_path: Path):
    _one_line_error(lambda: list_train(tmp_path / "nowhere", "bottle"), "nowhere", "MVTec layout")
    (tmp_path / "data" / "bottle").mkdir(parents=True)
    _one_line_error(lambda: list_train(tmp_path / "data", "cable"), "cable", "categories there: bottle")
    _one_line_error(lambda: list_train(tmp_path / "data", "bottle"), "train/good")
    _one_line_error(lambda: list_test(tmp_path / "data", "bottle"), "test")
    _one_line_error(lambda: list_train(tmp_path / "data", ""), "--category")


def test_empty_train_good(tmp_path: Path):
    (tmp_path / "bottle" / "train" / "good").mkdir(parents=True)
    (tmp_path / "bottle" / "train" / "good" / "readme.txt").write_text("x")
    _one_line_error(lambda: list_train(tmp_path, "bottle"), "no images", "train/good")


def test_mask_of_another_size(mvtec: Path):
    cat = mvtec / "bottle"
    _write(cat / "ground_truth" / "crack" / "001_mask.png", np.zeros((30, 40), np.uint8))
    samples = list_test(mvtec, "bottle")
    _one_line_error(lambda: load_test_arrays(samples, 20), "001_mask.png", "40x30", "40x40", "001.png")
    _one_line_error(lambda: load_mask(cat / "ground_truth" / "crack" / "001_mask.png", 20, (40, 40)),
                    "a mask must have the size of its image")


def test_split_train_val_is_deterministic(tmp_path: Path):
    paths = [tmp_path / f"{i:03d}.png" for i in range(50)]
    train, val = split_train_val(paths, 0.1, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert sorted(train + val) == paths and not set(train) & set(val)
    assert split_train_val(list(reversed(paths)), 0.1, seed=3) == (train, val)
    assert split_train_val(paths, 0.1, seed=4) != (train, val)
    assert split_train_val(paths, 0.0, seed=3) == (paths, [])
    assert len(split_train_val(paths[:3], 0.01, seed=0)[1]) == 1  # a non-zero fraction holds out one
    _one_line_error(lambda: split_train_val(paths, 1.0, seed=0), "validation fraction")
