"""Decision thresholds of a bundle, from the scores its own graph gives.

- image: a quantile of the scores of held-out nominal images (the run's validation split of
  train/good, never seen in training or calibration), raised by a margin: image = Q_q(scores)·(1 + margin).
  With q = 0.99 and few validation images this is close to their maximum, so the expected false-reject
  rate on nominal parts is about 1 − q or lower.
- pixel: the same rule over every pixel of the nominal maps (quantile `pixel_quantile`), for defect masks.
- image_f1: where labelled images exist (the dataset's test split), the threshold of the best F1. It is
  reported beside the nominal one, never used for calibration; `run` uses `image` unless told otherwise.
All thresholds are in the units of the graph's score (max of the blurred anomaly map).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ddad_edge.errors import DdadError
from ddad_edge.metrics import f1_max


@dataclass(frozen=True)
class ThresholdRule:
    """How thresholds are set from nominal scores."""

    quantile: float = 0.99
    margin: float = 0.05  # relative: the threshold is the quantile times (1 + margin)
    pixel_quantile: float = 0.999

    def __post_init__(self) -> None:
        if not (0 < self.quantile <= 1 and 0 < self.pixel_quantile <= 1):
            raise DdadError(f"threshold quantiles must be in (0, 1], got {self.quantile} and {self.pixel_quantile}")
        if not (math.isfinite(self.margin) and self.margin >= 0):  # NaN passes `margin < 0`
            raise DdadError(f"threshold margin (--margin) must be a finite number >= 0, got {self.margin}")


def nominal_statistics(scores: np.ndarray) -> dict[str, float]:
    """Summary of nominal image scores (N,): count, mean, std, min, median, p95, p99, max."""
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        raise DdadError("no nominal scores to set thresholds from: the run has no validation images "
                        "(train with val_fraction > 0)")
    return {"n": int(s.size), "mean": float(s.mean()), "std": float(s.std()), "min": float(s.min()),
            "median": float(np.median(s)), "p95": float(np.quantile(s, 0.95)), "p99": float(np.quantile(s, 0.99)),
            "max": float(s.max())}


def compute_thresholds(nominal_scores: np.ndarray, nominal_maps: np.ndarray, rule: ThresholdRule = ThresholdRule(),
                       labels: np.ndarray | None = None, labelled_scores: np.ndarray | None = None
                       ) -> dict[str, float | None]:
    """Thresholds from nominal scores (N,) and maps (N, 1, S, S), and optionally labelled scores for F1.

    Returns {image, pixel, image_f1 (None without labels of both classes), quantile, margin, pixel_quantile}.
    """
    s = np.asarray(nominal_scores, np.float64)
    nominal_statistics(s)  # refuses an empty set
    image = float(np.quantile(s, rule.quantile)) * (1.0 + rule.margin)
    pixel = float(np.quantile(np.asarray(nominal_maps, np.float64).ravel(), rule.pixel_quantile)) * (1.0 + rule.margin)
    if not (math.isfinite(image) and math.isfinite(pixel)):
        # a NaN or infinite threshold would pass every part: no bundle is written with one
        raise DdadError(f"the thresholds came out as image {image}, pixel {pixel}: the graph's scores on held-out "
                        "nominal images are not finite; train the run again or export another precision")
    image_f1 = None
    if labels is not None and labelled_scores is not None:
        y = np.asarray(labels)
        if 0 < int(y.sum()) < y.size:
            image_f1 = f1_max(y, np.asarray(labelled_scores))[1]
    return {"image": image, "pixel": pixel, "image_f1": image_f1, "quantile": rule.quantile,
            "margin": rule.margin, "pixel_quantile": rule.pixel_quantile}


def test_statistics(threshold: float, labels: np.ndarray | None, scores: np.ndarray | None) -> dict | None:
    """What the labelled test split says about `threshold`: counts, the defective scores' min / median / max,
    how many defective images it passes and how many nominal ones it rejects. None without both classes."""
    if labels is None or scores is None:
        return None
    y, s = np.asarray(labels).astype(bool), np.asarray(scores, np.float64)
    if not 0 < int(y.sum()) < y.size:
        return None
    bad = s[y]
    return {"defective": int(bad.size), "defective_min": float(bad.min()),
            "defective_median": float(np.median(bad)), "defective_max": float(bad.max()),
            "defective_passed": int((bad < threshold).sum()), "nominal": int((~y).sum()),
            "nominal_rejected": int((s[~y] >= threshold).sum())}


PASSED_WARNING = 0.25  # an exported threshold that passes more than this share of the defective test images


def judge_threshold(image: float, nominal: dict[str, float], test: dict | None, margin: float) -> str | None:
    """Refuse an image threshold that would pass every part (over IMPLAUSIBLE_FACTOR times every score seen);
    return a warning line when it passes more than PASSED_WARNING of the defective test images, else None."""
    from ddad_edge.inspect.threshold_check import IMPLAUSIBLE_FACTOR

    highest = max(nominal["max"], test["defective_max"] if test else 0.0)
    if highest > 0 and image > IMPLAUSIBLE_FACTOR * highest:
        raise DdadError(f"--margin {margin:g} makes the image threshold {image:.4g}, over {IMPLAUSIBLE_FACTOR:g} "
                        f"times the highest score seen ({highest:.4g}): every part would pass; use a margin "
                        "such as 0.05 (the default)")
    if test and test["defective_passed"] > PASSED_WARNING * test["defective"]:
        return (f"the image threshold {image:.4g} (--margin {margin:g}) passes {test['defective_passed']} of "
                f"{test['defective']} defective test images (their scores: min {test['defective_min']:.4g}, "
                f"median {test['defective_median']:.4g}, max {test['defective_max']:.4g}); a lower --margin "
                f"catches more")
    return None
