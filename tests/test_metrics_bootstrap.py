"""Bootstrap intervals of image AUROC: coverage on a case whose true AUROC is known, determinism, pairing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ddad_edge.errors import DdadError
from ddad_edge.metrics import _resampled_aurocs, auroc_drop_interval, image_auroc, image_auroc_interval


def _binormal(rng: np.random.Generator, n_good: int, n_bad: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.r_[np.zeros(n_good, int), np.ones(n_bad, int)]
    scores = np.r_[rng.normal(0, 1, n_good), rng.normal(shift, 1, n_bad)]
    return labels, scores


def test_resampled_auroc_of_the_unweighted_sample_is_sklearns():
    # Guards the pair-matrix shortcut: with every image drawn once it must be the plain AUROC, ties included.
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.5, 0.5, 0.5, 0.7, 0.2, 0.9])
    y = labels.astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    d = scores[pos][:, None] - scores[neg][None, :]
    exact = ((d > 0) + 0.5 * (d == 0)).mean()
    assert exact == pytest.approx(image_auroc(labels, scores))
    (aucs,) = _resampled_aurocs(y, [scores], 500, seed=0)
    assert aucs.min() >= 0.0 and aucs.max() <= 1.0 and aucs.std() > 0.01
    assert abs(aucs.mean() - exact) < 0.05


def test_interval_covers_the_true_auroc_about_95_percent_of_the_time():
    # Scores N(0,1) for nominal, N(d,1) for defective: the true AUROC is Φ(d/√2) = 0.9 for d = 1.8124.
    shift = 1.8124
    truth = 0.5 * (1.0 + math.erf(shift / 2.0))
    assert truth == pytest.approx(0.9, abs=1e-3)
    rng = np.random.default_rng(1)
    trials, covered, widths = 120, 0, []
    for t in range(trials):
        labels, scores = _binormal(rng, 40, 50, shift)
        lo, hi = image_auroc_interval(labels, scores, n_resamples=400, seed=t)
        covered += lo <= truth <= hi
        widths.append(hi - lo)
    # Percentile bootstrap intervals run a little short at n = 90; 95 % nominal, 85-99 % is what 120 trials allow.
    assert 0.85 <= covered / trials <= 0.99
    assert 0.05 < np.mean(widths) < 0.25  # about ±0.06 around 0.9 with 90 images


def test_same_seed_same_interval_other_seed_nearly_the_same():
    labels, scores = _binormal(np.random.default_rng(3), 30, 40, 1.5)
    a = image_auroc_interval(labels, scores, seed=7)
    assert a == image_auroc_interval(labels, scores, seed=7)
    b = image_auroc_interval(labels, scores, seed=8)
    assert a != b and abs(a[0] - b[0]) < 0.03 and abs(a[1] - b[1]) < 0.03
    assert a[0] < image_auroc(labels, scores) < a[1]


def test_paired_drop_interval_tells_a_small_real_drop_from_noise():
    rng = np.random.default_rng(5)
    labels, ref = _binormal(rng, 60, 80, 1.8)
    # A variant that follows the reference closely but pulls the defective scores down a little: a drop of
    # a few points, too small for two separate intervals to tell apart.
    variant = ref + rng.normal(0, 0.05, ref.size) - 0.25 * labels
    drop, lo, hi = auroc_drop_interval(labels, ref, variant, seed=0)
    assert drop == pytest.approx(image_auroc(labels, ref) - image_auroc(labels, variant))
    assert 0.0 < lo <= drop <= hi
    ref_lo, ref_hi = image_auroc_interval(labels, ref, seed=0)
    var_lo, var_hi = image_auroc_interval(labels, variant, seed=0)
    assert var_hi > ref_lo  # the separate intervals overlap: alone they cannot tell the two apart
    assert hi - lo < 0.5 * (ref_hi - ref_lo)
    # The same scores: no drop, and an interval of exactly zero width.
    assert auroc_drop_interval(labels, ref, ref.copy(), seed=0) == (0.0, 0.0, 0.0)


def test_bad_arguments_are_one_line_errors():
    labels, scores = _binormal(np.random.default_rng(0), 5, 5, 1.0)
    for call in (lambda: image_auroc_interval(labels, scores, n_resamples=3),
                 lambda: image_auroc_interval(labels, scores, confidence=1.0),
                 lambda: image_auroc_interval(np.zeros(10), scores),
                 lambda: auroc_drop_interval(labels, scores, scores[:-1])):
        with pytest.raises(DdadError) as info:
            call()
        assert "\n" not in str(info.value)
