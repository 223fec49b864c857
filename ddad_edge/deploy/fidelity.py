"""How far an exported graph is from the FP32 torch pipeline, and how fast it runs in ONNX Runtime on a CPU.

Fidelity images are held-out nominal images (the run's validation split, never used for calibration)
and copies of them with painted defects, so a score ranking can be checked on both classes without
touching the test split. `paint_defects` draws dark scratches, bright spots and colour stains with
numpy, so it works on any dataset's images.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddad_edge.metrics import auroc_drop_interval, image_auroc, image_auroc_interval
from ddad_edge.runtime import ort_session


@dataclass(frozen=True)
class OutputError:
    """Error of a graph's outputs against references on the same frames."""

    map_max: float  # max |map − map_ref|
    map_mean: float  # mean |map − map_ref|
    map_rel: float  # map_max / max |map_ref|
    score_rel: float  # max over frames of |score − score_ref| / |score_ref|

    def as_dict(self) -> dict[str, float]:
        return {"map_max_abs": self.map_max, "map_mean_abs": self.map_mean, "map_max_rel": self.map_rel,
                "score_max_rel": self.score_rel}


def output_error(maps: np.ndarray, scores: np.ndarray, ref_maps: np.ndarray, ref_scores: np.ndarray) -> OutputError:
    """Compare maps (N, 1, S, S) and scores (N,) with references of the same shapes; NaN counts as infinite."""
    diff = np.abs(maps.astype(np.float64) - ref_maps.astype(np.float64))
    sdiff = np.abs(scores.astype(np.float64) - ref_scores.astype(np.float64))
    if not (np.all(np.isfinite(diff)) and np.all(np.isfinite(sdiff))):
        inf = float("inf")
        return OutputError(inf, inf, inf, inf)
    scale = max(float(np.max(np.abs(ref_maps))), 1e-12)
    srel = sdiff / np.maximum(np.abs(ref_scores.astype(np.float64)), 1e-12)
    return OutputError(float(diff.max()), float(diff.mean()), float(diff.max()) / scale, float(srel.max()))


def open_session(path: Path, optimization: str = "all", threads: int = 0, int8: bool = False):
    """An ONNX Runtime CPU session of an ONNX file (no bundle needed), opened as the runner opens it
    (`runtime.ort_session`: `int8` leaves out the NHWC layout pass for an INT8 file)."""
    return ort_session.open_session(path, ("CPUExecutionProvider",), optimization, threads, int8=int8,
                                    purpose="export")


def run_onnx(path: Path, frames: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(maps (N, 1, S, S) float32, scores (N,) float32) of an ONNX file in ONNX Runtime on the CPU."""
    session = open_session(path)
    maps, scores = [], []
    for i in range(0, len(frames), batch):
        m, s = session.run(["anomaly_map", "score"], {"frames": np.ascontiguousarray(frames[i:i + batch])})
        maps.append(np.asarray(m, np.float32))
        scores.append(np.asarray(s, np.float32))
    return np.concatenate(maps), np.concatenate(scores)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two score vectors (N,), ties ranked by their mean rank."""
    ra, rb = _ranks(np.asarray(a, np.float64)), _ranks(np.asarray(b, np.float64))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra ** 2).sum() * (rb ** 2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else 1.0


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


@dataclass(frozen=True)
class FidelitySet:
    """Frames to judge a graph on: held-out nominal images and painted copies, with labels (1 = defect)."""

    frames: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) int


def paint_defects(images: np.ndarray, seed: int = 0) -> np.ndarray:
    """Copies of uint8 images (N, S, S, 3), each with one painted defect: a dark scratch, a bright spot or a
    colour stain, covering roughly 0.5-3 % of the image, placed in the central 60 %."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    n, size = images.shape[0], images.shape[1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for i in range(n):
        cx, cy = rng.uniform(0.2, 0.8, 2) * size
        kind = i % 3
        img = out[i].astype(np.float32)
        if kind == 0:  # scratch: a thin dark line segment
            angle = rng.uniform(0, np.pi)
            half = rng.uniform(0.15, 0.3) * size
            dx, dy = np.cos(angle), np.sin(angle)
            along = (xx - cx) * dx + (yy - cy) * dy
            across = np.abs(-(xx - cx) * dy + (yy - cy) * dx)
            region = (np.abs(along) <= half) & (across <= max(1.0, size / 48))
            img[region] *= 0.3
        elif kind == 1:  # spot: a bright disc
            radius = rng.uniform(0.04, 0.08) * size
            region = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius ** 2
            img[region] = 0.3 * img[region] + 0.7 * 245.0
        else:  # stain: a rust-coloured ellipse
            ax, ay = rng.uniform(0.05, 0.1, 2) * size
            region = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0
            img[region] = 0.3 * img[region] + 0.7 * np.array([150.0, 70.0, 30.0], np.float32)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return out


def fidelity_set(nominal: np.ndarray, seed: int = 0) -> FidelitySet:
    """Held-out nominal images (N, S, S, 3) uint8 and a painted copy of each: 2N frames, half labelled 1."""
    frames = np.concatenate([nominal, paint_defects(nominal, seed)])
    labels = np.r_[np.zeros(len(nominal), int), np.ones(len(nominal), int)]
    return FidelitySet(frames, labels)


def compare_scores(scores: np.ndarray, ref_scores: np.ndarray, labels: np.ndarray | None) -> dict:
    """Rank correlation with the reference scores and, with labels, both AUROCs and the drop, each with a
    95 % bootstrap interval over the images ([low, high]; the drop's is paired: both scored on the same
    resamples, so it shows whether the drop is more than the luck of these images)."""
    out: dict = {"score_rank_correlation": rank_correlation(scores, ref_scores)}
    if labels is not None and 0 < int(np.sum(labels)) < len(labels):
        ref_auc, auc = image_auroc(labels, ref_scores), image_auroc(labels, scores)
        _, drop_lo, drop_hi = auroc_drop_interval(labels, ref_scores, scores)
        out.update(auroc_reference=ref_auc, auroc=auc, auroc_drop=ref_auc - auc,
                   auroc_interval=list(image_auroc_interval(labels, scores)), auroc_drop_interval=[drop_lo, drop_hi])
    else:
        out.update(auroc_reference=None, auroc=None, auroc_drop=None, auroc_interval=None, auroc_drop_interval=None)
    return out


@dataclass(frozen=True)
class Latency:
    """Wall time of single-frame `session.run` calls after warm-up, in milliseconds."""

    p50_ms: float
    p90_ms: float
    mean_ms: float
    runs: int
    threads: int  # 0: ONNX Runtime's default
    optimization: str

    def as_dict(self) -> dict:
        return {"p50_ms": self.p50_ms, "p90_ms": self.p90_ms, "mean_ms": self.mean_ms, "runs": self.runs,
                "threads": self.threads, "optimization": self.optimization}


def measure_latency(path: Path, frame: np.ndarray, runs: int = 10, warmup: int = 2, optimization: str = "all",
                    threads: int = 0, max_seconds: float = 60.0, int8: bool = False) -> Latency:
    """ORT CPU latency of one frame (1, S, S, 3) uint8 through an ONNX file (`int8`: an INT8 file, opened as
    the runner opens one); stops early after `max_seconds`."""
    session = open_session(path, optimization, threads, int8)
    feed = {"frames": np.ascontiguousarray(frame[:1])}
    for _ in range(warmup):
        session.run(None, feed)
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < runs and (not times or time.perf_counter() < deadline):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000.0)
    t = np.asarray(times)
    return Latency(float(np.percentile(t, 50)), float(np.percentile(t, 90)), float(t.mean()), len(t), threads,
                   optimization)
