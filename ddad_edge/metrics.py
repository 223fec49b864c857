"""Anomaly detection metrics: image and pixel AUROC (with bootstrap intervals), AUPRO up to an FPR limit,
F1-max. numpy + scikit-learn.

Conventions: `labels` (N,) are 0 nominal / 1 defective; `scores` (N,) higher means more anomalous; `masks`
(N, H, W) bool mark defect pixels; `maps` (N, H, W) float are anomaly maps (higher is more anomalous). A pixel
or image is called anomalous when its value is >= the threshold.

AUPRO (Bergmann et al., MVTec AD): for each threshold, every connected defect region (8-connectivity, per
image) gets its overlap |predicted ∩ region| / |region|; PRO is the mean over all regions of all images, and
FPR the fraction of nominal pixels (mask False, in every image) predicted anomalous. The PRO-over-FPR curve is
integrated (trapezoids) from FPR 0 up to `max_fpr`, interpolating at `max_fpr`, and divided by `max_fpr`, so
1.0 is perfect. No maintained numpy package provides it (anomalib's needs torch), hence this file.

Bootstrap intervals of image AUROC resample the test images (nominal and defective apart, so each resample
has both); the drop of one scorer against another is resampled in pairs on the same images, which is what
tells a 1-point difference between two variants from the luck of the test set.

Images whose defect pixels are unknown (a defect without a mask) must be left out of the pixel metrics by the
caller, not passed with an empty mask.
"""

from __future__ import annotations

import numpy as np

from ddad_edge.errors import DdadError, missing_package
from ddad_edge.lazy_import import import_cv2

# DDAD's evaluation (its ddad.py) scores the central 224 px of a 256-px map: `evaluate --protocol ddad`.
DDAD_CROP_FRACTION = 224 / 256


# The edge's fidelity budget: a variant (fewer steps, another precision or backend) is within budget when its
# image AUROC is at most this far below its 10-step FP32 teacher's on the same model and test split. The
# benchmark matrix's frontier (bench/tradeoff_plot.py) and the export's default sampler (deploy/edge_default.py)
# both use it.
AUROC_BUDGET = 0.01


def within_auroc_budget(drop: float) -> bool:
    """Whether an image AUROC drop against the teacher is within AUROC_BUDGET (exactly one point is within)."""
    return drop <= AUROC_BUDGET + 1e-12

def central_window(size: int, crop: int) -> slice:
    """The rows (or columns) of the central `crop` pixels of a side of `size`; 0 or `size`: all of them.

    Used alike by the graph's image score (model/scoring.py) and by `evaluate` on maps and masks, so the
    score the line decides on and the pixels the metrics count are the same window.
    """
    if not 0 <= crop <= size:
        raise DdadError(f"a central crop of {crop} px does not fit a {size}-px map: give 0 (the whole map) "
                        f"up to {size}")
    if crop in (0, size):
        return slice(0, size)
    start = (size - crop) // 2
    return slice(start, start + crop)


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        raise missing_package("sklearn", "AUROC", "pip install scikit-learn") from None
    return float(roc_auc_score(y_true, y_score))


def _check_labels(labels: np.ndarray, scores: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise DdadError(f"{what}: {labels.size} labels but {scores.size} scores")
    if not np.all(np.isfinite(scores)):
        raise DdadError(f"{what}: scores contain NaN or infinity")
    positives = int(np.count_nonzero(labels))
    if positives == 0 or positives == labels.size:
        kind = "defective" if positives == 0 else "nominal"
        raise DdadError(f"{what} needs both nominal and defective samples, but there is no {kind} one")
    return labels.astype(bool), scores


def _check_maps(masks: np.ndarray, maps: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    masks = np.asarray(masks)
    maps = np.asarray(maps)
    if masks.ndim != 3 or masks.shape != maps.shape:
        raise DdadError(f"{what}: masks {masks.shape} and maps {maps.shape} must both be (N, H, W)")
    return masks.astype(bool), maps


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of image scores: labels (N,) 0/1, scores (N,) float. 1.0 is perfect."""
    y, s = _check_labels(labels, scores, "image AUROC")
    return _roc_auc(y, s)


def pixel_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    """Area under the ROC curve over all pixels: masks (N, H, W) bool, maps (N, H, W) float."""
    masks, maps = _check_maps(masks, maps, "pixel AUROC")
    y, s = _check_labels(masks.ravel(), maps.ravel(), "pixel AUROC")
    return _roc_auc(y, s)


def f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """The best F1 over all thresholds and that threshold: labels (N,) 0/1, scores (N,) float.

    Returns (f1, threshold) where samples with score >= threshold are called defective.
    """
    y, s = _check_labels(labels, scores, "F1-max")
    order = np.argsort(-s, kind="stable")
    s_sorted = s[order]
    tp = np.cumsum(y[order])
    n_called = np.arange(1, s.size + 1)
    # Only the last index of a run of equal scores is a threshold one can actually set.
    last = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp, n_called, thresholds = tp[last], n_called[last], s_sorted[last]
    f1 = 2.0 * tp / (n_called + y.sum())
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


def _label_regions(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected defect regions, numbered 1..R across all images (0 is background): (N, H, W) int32, R."""
    cv2 = import_cv2("AUPRO (connected regions)")
    regions = np.zeros(masks.shape, dtype=np.int32)
    total = 0
    for i, m in enumerate(masks):
        n, lab = cv2.connectedComponents(m.astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
        if n > 1:
            regions[i] = np.where(lab > 0, lab + total, 0)
            total += n - 1
    return regions, total


def pro_curve(masks: np.ndarray, maps: np.ndarray,
              num_thresholds: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The per-region-overlap curve: (fpr, pro, thresholds), each (K,), fpr ascending from 0.

    With `num_thresholds=None` the curve is exact: one point per distinct map value (after sorting all pixels
    once). With an integer, it is evaluated at that many evenly spaced thresholds from the map's minimum to its
    maximum (faster and lighter for large sets). A leading point (0, 0) at threshold +inf is included.
    """
    masks, maps = _check_maps(masks, maps, "AUPRO")
    regions, n_regions = _label_regions(masks)
    n_nominal = int(np.count_nonzero(~masks))
    if n_regions == 0:
        raise DdadError("AUPRO needs at least one defect pixel in the masks, but all masks are empty")
    if n_nominal == 0:
        raise DdadError("AUPRO needs nominal pixels, but every pixel is marked as defect")
    flat_regions = regions.ravel()
    values = maps.ravel().astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise DdadError("AUPRO: anomaly maps contain NaN or infinity")
    # What each pixel adds when it is called anomalous: to FPR if nominal, to PRO (via its region) if not.
    region_size = np.bincount(flat_regions, minlength=n_regions + 1).astype(np.float64)
    fpr_weight = (flat_regions == 0) / n_nominal
    pro_weight = np.where(flat_regions > 0, 1.0 / (region_size[flat_regions] * n_regions), 0.0)

    if num_thresholds is None:
        order = np.argsort(-values, kind="stable")
        v = values[order]
        fpr = np.cumsum(fpr_weight[order])
        pro = np.cumsum(pro_weight[order])
        last = np.r_[v[1:] != v[:-1], True]  # a threshold includes every pixel of equal value
        fpr, pro, thresholds = fpr[last], pro[last], v[last]
    else:
        if num_thresholds < 2:
            raise DdadError(f"AUPRO needs at least 2 thresholds, got {num_thresholds}")
        thresholds = np.linspace(values.max(), values.min(), num_thresholds)
        # Pixel j is anomalous at threshold k when value_j >= thresholds[k]; bin each pixel by the first
        # (highest) threshold it reaches, then accumulate.
        ascending = thresholds[::-1]
        first = num_thresholds - np.searchsorted(ascending, values, side="right")
        fpr = np.cumsum(np.bincount(first, weights=fpr_weight, minlength=num_thresholds))
        pro = np.cumsum(np.bincount(first, weights=pro_weight, minlength=num_thresholds))
    fpr = np.r_[0.0, np.minimum(fpr, 1.0)]
    pro = np.r_[0.0, np.minimum(pro, 1.0)]
    thresholds = np.r_[np.inf, thresholds]
    return fpr, pro, thresholds


def integrate_to(fpr: np.ndarray, pro: np.ndarray, max_fpr: float) -> float:
    """Trapezoid area under pro(fpr) from 0 to `max_fpr`, interpolating at `max_fpr`; fpr ascending."""
    inside = fpr <= max_fpr
    x = fpr[inside]
    y = pro[inside]
    if x[-1] < max_fpr:
        k = int(np.count_nonzero(inside))  # first point beyond max_fpr
        if k >= fpr.size:  # the curve ends short of max_fpr by rounding only: hold its last value
            x, y = np.r_[x, max_fpr], np.r_[y, y[-1]]
            return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))
        x0, x1, y0, y1 = fpr[k - 1], fpr[k], pro[k - 1], pro[k]
        y_end = y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0)
        x = np.r_[x, max_fpr]
        y = np.r_[y, y_end]
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float = 0.3, num_thresholds: int | None = None) -> float:
    """Normalised area under the PRO curve up to `max_fpr`: masks (N, H, W) bool, maps (N, H, W) float.

    1.0 is perfect; a random map scores about max_fpr / 2. See `pro_curve` for `num_thresholds`.
    """
    if not 0.0 < max_fpr <= 1.0:
        raise DdadError(f"AUPRO max_fpr must be in (0, 1], got {max_fpr}")
    fpr, pro, _ = pro_curve(masks, maps, num_thresholds)
    return integrate_to(fpr, pro, max_fpr) / max_fpr


def _bootstrap_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n items is drawn in each of `n_resamples` resamples with replacement: (B, n)."""
    draws = rng.integers(0, n, size=(n_resamples, n))
    counts = np.zeros((n_resamples, n), dtype=np.float64)
    np.add.at(counts, (np.arange(n_resamples)[:, None], draws), 1.0)
    return counts


def _resampled_aurocs(y: np.ndarray, scores: list[np.ndarray], n_resamples: int,
                      seed: int) -> list[np.ndarray]:
    """Image AUROC of each score vector on the same stratified bootstrap resamples: a list of (B,) arrays.

    AUROC is the mean over (defective, nominal) pairs of [s_d > s_n] + ½[s_d = s_n]; a resample only
    reweights the pairs by how often each image was drawn, so every resample's AUROC is exact and costs one
    product with the (P, N) pair matrix.
    """
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    # Defective and nominal images are resampled apart (stratified), so every resample has both classes.
    cp = _bootstrap_counts(pos.size, n_resamples, rng)
    cn = _bootstrap_counts(neg.size, n_resamples, rng)
    out = []
    for s in scores:
        d = s[pos][:, None] - s[neg][None, :]
        pairs = (d > 0).astype(np.float64) + 0.5 * (d == 0)  # (P, N)
        out.append(np.einsum("bp,pn,bn->b", cp, pairs, cn) / (pos.size * neg.size))
    return out


def _percentiles(x: np.ndarray, confidence: float) -> tuple[float, float]:
    if not 0.0 < confidence < 1.0:
        raise DdadError(f"bootstrap confidence must be in (0, 1), got {confidence}")
    tail = 50.0 * (1.0 - confidence)
    lo, hi = np.percentile(x, [tail, 100.0 - tail])
    return float(lo), float(hi)


def image_auroc_interval(labels: np.ndarray, scores: np.ndarray, n_resamples: int = 2000,
                         confidence: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of image AUROC over the test images: labels (N,) 0/1,
    scores (N,) float. Nominal and defective images are resampled separately; the same seed gives the same
    interval."""
    y, s = _check_labels(labels, scores, "image AUROC interval")
    if n_resamples < 10:
        raise DdadError(f"a bootstrap interval needs at least 10 resamples, got {n_resamples}")
    (aucs,) = _resampled_aurocs(y, [s], n_resamples, seed)
    return _percentiles(aucs, confidence)


def auroc_drop_interval(labels: np.ndarray, ref_scores: np.ndarray, scores: np.ndarray, n_resamples: int = 2000,
                        confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """AUROC drop of `scores` against `ref_scores` on the same images, with a paired bootstrap interval:
    (drop, low, high), drop = AUROC(ref) − AUROC(scores).

    Both are scored on the same resamples, so what the two share (an image that is hard for both) cancels:
    the interval is that of the difference, much narrower than two separate intervals when the scores
    follow each other. An interval that excludes 0 is a drop (or gain) that the test images can tell from
    noise.
    """
    y, r = _check_labels(labels, ref_scores, "AUROC drop interval")
    _, s = _check_labels(labels, scores, "AUROC drop interval")
    if n_resamples < 10:
        raise DdadError(f"a bootstrap interval needs at least 10 resamples, got {n_resamples}")
    ref_b, var_b = _resampled_aurocs(y, [r, s], n_resamples, seed)
    drop = _roc_auc(y, r) - _roc_auc(y, s)
    return (drop, *_percentiles(ref_b - var_b, confidence))
