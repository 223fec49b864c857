"""The fidelity report of step distillation: how much each K-step sampler costs against its teacher.

For every sampler (the teacher on DDAD's grid, the teacher on the distillation grid, and per round the
student and the naive baseline, i.e. the teacher itself run with only K steps):
  - on the test split, where there is one: image AUROC, pixel AUROC, AUPRO (as `ddad-edge evaluate`);
  - on the run's held-out nominal images: Spearman rank correlation of the image scores with the
    reference teacher's, mean |anomaly map − teacher map|, mean |x̂0 − teacher x̂0|;
  - on the test split: the rank correlation of all scores with the teacher's, defects included (a student
    can copy nominal reconstructions well and still treat defects differently from its teacher).
All samplers run at η=0 from the pipeline's fixed noise constant, exactly as they would be deployed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ddad_edge.evaluate import metrics_of
from ddad_edge.model.pipeline import DDADPipeline, frames_to_tensor

NAN = float("nan")


@dataclass
class Outputs:
    """What a sampler made of a set of images: x̂0 (N, 3, S, S), maps (N, S, S) and scores (N,), float32 numpy."""

    x0: np.ndarray
    maps: np.ndarray
    scores: np.ndarray


@dataclass
class TestSet:
    """The test split, loaded once: images (N, S, S, 3) uint8, labels (N,), masks (N, S, S), has_mask (N,)."""

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    has_mask: np.ndarray


@dataclass
class FidelityRow:
    """One line of the report (NaN where the data to measure it is missing)."""

    label: str  # "teacher", "student", "naive", …
    round: int  # 0 for the teachers
    steps: int
    t_prime: int
    timesteps: list[int]
    image_auroc: float = NAN
    pixel_auroc: float = NAN
    aupro: float = NAN
    rank_corr: float = NAN  # Spearman ρ of held-out nominal scores against the reference teacher
    map_mae: float = NAN  # mean |map − reference map| on held-out nominal images
    x0_mae: float = NAN  # mean |x̂0 − reference x̂0| on held-out nominal images ([−1, 1] scale)
    test_rank_corr: float = NAN  # Spearman ρ of the test split's scores (defects included) against the reference

    def to_json(self) -> dict:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


@torch.no_grad()
def run_pipeline(pipe: DDADPipeline, images: np.ndarray, batch: int = 8) -> Outputs:
    """x̂0, maps and scores of uint8 images (N, S, S, 3) through a pipeline, in batches."""
    dev = next(pipe.unet.parameters()).device
    x0s, maps, scores = [], [], []
    for i in range(0, len(images), batch):
        x = frames_to_tensor(images[i:i + batch]).to(dev)
        x0 = pipe.reconstruct(x)
        m, s = pipe.scorer(x, x0)
        x0s.append(x0.float().cpu().numpy())
        maps.append(m[:, 0].float().cpu().numpy())
        scores.append(s.float().cpu().numpy())
    return Outputs(np.concatenate(x0s), np.concatenate(maps), np.concatenate(scores))


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two score vectors (NaN when either is constant or there are fewer than 3)."""
    from scipy.stats import spearmanr

    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return NAN
    return float(spearmanr(a, b).statistic)


@dataclass
class Reference:
    """The reference teacher's outputs on the held-out nominal images and on the test split (None: absent)."""

    val: Outputs | None
    test: Outputs | None


def measure(pipe: DDADPipeline, label: str, round_: int, test: TestSet | None, val: np.ndarray | None,
            reference: Reference | None) -> tuple[FidelityRow, Reference]:
    """The report row of one sampler, and its own outputs (to serve as the reference of the others)."""
    row = FidelityRow(label, round_, len(pipe.timesteps), pipe.t_prime, list(pipe.timesteps))
    test_out = run_pipeline(pipe, test.images) if test is not None else None
    if test_out is not None:
        m = metrics_of(test.labels, test_out.scores, test.masks, test.has_mask, test_out.maps)
        row.image_auroc, row.pixel_auroc, row.aupro = m["image_auroc"], m["pixel_auroc"], m["aupro"]
    val_out = run_pipeline(pipe, val) if val is not None and len(val) else None
    if reference is not None and val_out is not None and reference.val is not None:
        row.rank_corr = rank_correlation(val_out.scores, reference.val.scores)
        row.map_mae = float(np.abs(val_out.maps - reference.val.maps).mean())
        row.x0_mae = float(np.abs(val_out.x0 - reference.val.x0).mean())
    if reference is not None and test_out is not None and reference.test is not None:
        row.test_rank_corr = rank_correlation(test_out.scores, reference.test.scores)
    return row, Reference(val_out, test_out)


def fmt(v: float | None, digits: int = 3) -> str:
    """A number for the table: fixed digits, an em dash for a missing one."""
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def format_grid(timesteps: list[int], t_prime: int) -> str:
    return f"{t_prime}→" + ",".join(str(t) for t in timesteps)


TABLE_HEADER = ("round", "sampler", "K", "grid (T'→t…)", "img AUROC", "pix AUROC", "AUPRO", "rank ρ",
                "|Δmap|", "|Δx̂0|", "test ρ")


def table_lines(rows: list[FidelityRow]) -> list[str]:
    """The report as a plain-text table, one line per sampler (also valid Markdown)."""
    cells = [TABLE_HEADER] + [
        (str(r.round), r.label, str(r.steps), format_grid(r.timesteps, r.t_prime), fmt(r.image_auroc),
         fmt(r.pixel_auroc), fmt(r.aupro), fmt(r.rank_corr), fmt(r.map_mae, 4), fmt(r.x0_mae, 4),
         fmt(r.test_rank_corr))
        for r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(TABLE_HEADER))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(c))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return lines


def write_report(path: Path, payload: dict) -> Path:
    """Write the report JSON (NaN written as null). Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, allow_nan=False))
    return path
