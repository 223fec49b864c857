"""Metrics: AUROC and F1-max on known cases, AUPRO against a brute-force computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ddad_edge.errors import DdadError
from ddad_edge.metrics import aupro, f1_max, image_auroc, integrate_to, pixel_auroc, pro_curve


def _brute_force_curve(masks: np.ndarray, maps: np.ndarray, thresholds: np.ndarray) -> tuple[list, list]:
    """PRO and FPR by the definition: binarise at each threshold, per-region overlap, nominal-pixel FPR."""
    region_images = []
    for i, m in enumerate(masks):
        lab, n = ndimage.label(m, structure=np.ones((3, 3), dtype=int))
        region_images += [(i, lab == k) for k in range(1, n + 1)]
    nominal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in thresholds:
        pred = maps >= t
        overlaps = [pred[i][r].sum() / r.sum() for i, r in region_images]
        pros.append(float(np.mean(overlaps)))
        fprs.append(float((pred & nominal).sum() / nominal.sum()))
    return fprs, pros


def _brute_force_area(fprs: list, pros: list, max_fpr: float) -> float:
    """Trapezoids walked one segment at a time, cutting the segment that crosses max_fpr."""
    area = 0.0
    for (x0, y0), (x1, y1) in zip(zip(fprs, pros), zip(fprs[1:], pros[1:])):
        if x0 >= max_fpr:
            break
        if x1 > max_fpr:
            y1 = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
            x1 = max_fpr
        area += (x1 - x0) * (y0 + y1) / 2
    return area / max_fpr


def _random_case(seed: int, n: int = 4, size: int = 12, levels: int | None = None):
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), dtype=bool)
    for i in range(n - 1):  # the last image stays nominal
        for _ in range(int(rng.integers(1, 4))):
            y, x = rng.integers(0, size - 3, 2)
            h, w = rng.integers(1, 4, 2)
            masks[i, y:y + h, x:x + w] = True
    maps = rng.random((n, size, size)) + 0.8 * masks  # informative but imperfect
    if levels is not None:  # quantised maps have ties, the harder case for the exact curve
        maps = np.round(maps * levels) / levels
    return masks, maps


@pytest.mark.parametrize("seed,levels", [(0, None), (1, None), (2, 5), (3, 10), (4, None)])
def test_aupro_matches_brute_force(seed, levels):
    masks, maps = _random_case(seed, levels=levels)
    thresholds = np.unique(maps)[::-1]
    fprs, pros = _brute_force_curve(masks, maps, thresholds)
    for max_fpr in (0.3, 0.05, 1.0):
        expected = _brute_force_area(fprs, pros, max_fpr)
        assert aupro(masks, maps, max_fpr=max_fpr) == pytest.approx(expected, abs=1e-9)


def test_pro_curve_points_match_brute_force():
    masks, maps = _random_case(7, levels=8)
    fpr, pro, thresholds = pro_curve(masks, maps)
    fprs, pros = _brute_force_curve(masks, maps, thresholds[1:])
    np.testing.assert_allclose(fpr, fprs, atol=1e-12)
    np.testing.assert_allclose(pro, pros, atol=1e-12)


def test_aupro_with_fixed_thresholds_matches_brute_force():
    masks, maps = _random_case(5)
    fpr, pro, thresholds = pro_curve(masks, maps, num_thresholds=40)
    assert thresholds.size == 41
    fprs, pros = _brute_force_curve(masks, maps, thresholds[1:])
    np.testing.assert_allclose(fpr, fprs, atol=1e-12)
    np.testing.assert_allclose(pro, pros, atol=1e-12)
    approx = aupro(masks, maps, num_thresholds=40)
    assert approx == pytest.approx(_brute_force_area(fprs, pros, 0.3), abs=1e-9)
    # Coarse thresholds only approximate the exact curve.
    assert approx == pytest.approx(aupro(masks, maps), abs=0.05)


def test_aupro_regions_are_8_connected_and_weighted_equally():
    # A large region found entirely and a small diagonal (8-connected) region missed: PRO is 1/2, not
    # the pixel fraction, at every FPR.
    masks = np.zeros((1, 10, 10), dtype=bool)
    masks[0, :4, :4] = True
    masks[0, 7, 7] = masks[0, 8, 8] = True
    maps = np.zeros((1, 10, 10))
    maps[0, :4, :4] = 1.0
    fpr, pro, _ = pro_curve(masks, maps)
    assert fpr.tolist() == [0.0, 0.0, 1.0]
    assert pro.tolist() == [0.0, 0.5, 1.0]
    # From FPR 0 to 0.3 the PRO rises linearly from 0.5 to 0.5 + 0.5*0.3.
    assert aupro(masks, maps) == pytest.approx(0.5 + 0.5 * 0.3 / 2)


def test_perfect_random_and_inverse_maps():
    rng = np.random.default_rng(0)
    masks = np.zeros((6, 32, 32), dtype=bool)
    masks[:4, 8:16, 8:16] = True
    masks[1, 20:26, 2:5] = True
    perfect = masks + 0.1 * rng.random(masks.shape)
    assert pixel_auroc(masks, perfect) == 1.0
    assert aupro(masks, perfect) == pytest.approx(1.0)
    assert pixel_auroc(masks, -perfect) == 0.0
    assert aupro(masks, -perfect) == pytest.approx(0.0)
    noise = np.random.default_rng(1).random((6, 256, 256))
    big_masks = np.zeros_like(noise, dtype=bool)
    big_masks[:3, 50:150, 50:150] = True
    assert pixel_auroc(big_masks, noise) == pytest.approx(0.5, abs=0.02)
    assert aupro(big_masks, noise) == pytest.approx(0.15, abs=0.02)  # PRO ≈ FPR: area 0.3²/2, over 0.3


def test_image_auroc_and_f1_max():
    labels = np.array([0, 0, 0, 1, 1])
    assert image_auroc(labels, [0.1, 0.2, 0.3, 0.8, 0.9]) == 1.0
    assert image_auroc(labels, [0.9, 0.8, 0.7, 0.2, 0.1]) == 0.0
    # 5 of 6 (defect, nominal) pairs ordered
    assert image_auroc(labels, [0.1, 0.5, 0.3, 0.4, 0.9]) == pytest.approx(5 / 6)
    f1, thr = f1_max(labels, [0.1, 0.2, 0.3, 0.8, 0.9])
    assert (f1, thr) == (1.0, 0.8)
    # Best cut is at 0.4: tp=2, fp=1 -> F1 = 4/5.
    f1, thr = f1_max(labels, [0.1, 0.5, 0.3, 0.4, 0.9])
    assert f1 == pytest.approx(0.8) and thr == 0.4


def test_f1_max_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + 0.3 * labels, 1)
    best = max(
        (2 * np.sum((scores >= t) & (labels == 1)) / (np.sum(scores >= t) + labels.sum()), t)
        for t in np.unique(scores)
    )
    f1, thr = f1_max(labels, scores)
    assert f1 == pytest.approx(best[0])
    assert 2 * np.sum((scores >= thr) & (labels == 1)) / (np.sum(scores >= thr) + labels.sum()) == pytest.approx(f1)


def test_integrate_to_interpolates_at_the_limit():
    fpr = np.array([0.0, 0.2, 0.4, 1.0])
    pro = np.array([0.0, 0.2, 1.0, 1.0])
    # Up to 0.3: 0.5*0.2*0.2 + 0.1*(0.2+0.6)/2
    assert integrate_to(fpr, pro, 0.3) == pytest.approx(0.02 + 0.04)


@pytest.mark.parametrize("call", [
    lambda: image_auroc([1, 1, 1], [0.1, 0.2, 0.3]),
    lambda: image_auroc([0, 0], [0.1, 0.2]),
    lambda: f1_max([0, 0, 0], [0.1, 0.2, 0.3]),
    lambda: pixel_auroc(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4))),
    lambda: aupro(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 4))),
    lambda: aupro(np.ones((2, 4, 4), bool), np.zeros((2, 4, 4))),
    lambda: aupro(np.ones((2, 4, 4), bool), np.zeros((2, 5, 4))),
    lambda: image_auroc([0, 1], [0.1, float("nan")]),
    lambda: image_auroc([0, 1, 1], [0.1, 0.2]),
])
def test_degenerate_inputs_are_one_line_errors(call):
    with pytest.raises(DdadError) as info:
        call()
    assert "\n" not in str(info.value)
