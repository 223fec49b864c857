"""`ddad-edge distill` on a run folder: the rounds of distillation, their checkpoints, and the fidelity report.

Writes into the run folder:
  students/steps_{K_T}.pt       round 0: the teacher itself on the distillation grid (e.g. 8 steps from
                                T'=248), so `evaluate --steps 8` measures the grid every student is distilled from
  students/steps_K.pt           each round's student: weights, step grid, T', w, round, method, its fidelity
  distill/report_steps_K.json   every sampler's fidelity (see distill_fidelity) and the timings; one file per
                                target K, so distilling to 2 and then to 1 step keeps both reports
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.config import ScoringMode, to_dict
from ddad_edge.data.folders import list_test, load_images, load_test_arrays
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import Run, save_checkpoint
from ddad_edge.model.pipeline import DDADPipeline, frames_to_tensor
from ddad_edge.model.runner import build_pipeline, teacher_grid
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps
from ddad_edge.model.unet import UNet
from ddad_edge.train.diffusion import pick_device
from ddad_edge.train.distill import (DistillConfig, DistillMethod, distill_round, distillation_grids,
                                     fixed_start_noise)
from ddad_edge.train.distill_fidelity import (FidelityRow, Reference, TestSet, fmt, measure, table_lines,
                                             write_report)


@dataclass
class DistillResult:
    """What `distill_run` made."""

    rows: list[FidelityRow]
    checkpoints: list[Path]
    report: Path
    seconds: float
    scoring: ScoringMode  # the anomaly map the report's scores use

    def table(self) -> list[str]:
        return table_lines(self.rows)


def load_test_set(run: Run, size: int) -> TestSet | None:
    """The run's test split, or None when its dataset has none (or only one class)."""
    try:
        samples = list_test(run.cfg.data.root, run.cfg.data.category)
    except DdadError:
        return None
    images, labels, masks, has_mask = load_test_arrays(samples, size)
    if labels.min() == labels.max():
        return None
    return TestSet(images, labels, masks, has_mask)


def student_payload(run: Run, unet: UNet, grid: list[int], cfg: DistillConfig, w: float, round_: int,
                    extra: dict) -> dict:
    """The checkpoint of a K-step sampler (loaded back by model.runner.build_pipeline)."""
    return {
        "kind": "student" if round_ else "teacher_grid", "config": to_dict(run.cfg),
        "unet": {k: v.detach().cpu() for k, v in unet.state_dict().items()},
        "timesteps": list(grid), "t_prime": cfg.t_prime, "w": float(w), "eta": 0.0, "round": round_,
        "method": cfg.method.value, "distill": to_dict(cfg), **extra,
    }


def distill_run(run: Run, cfg: DistillConfig, device: str = "auto", show_progress: bool = True,
                echo: Callable[[str], None] = print, scoring: ScoringMode | None = None) -> DistillResult:
    """Distill the run's teacher down to cfg.to_steps steps; save each round and the report.

    `scoring`: the anomaly map the report's scores use (default the run's): the one that will be exported.
    Training does not depend on it.

    `echo` receives one line per measured sampler while the work goes on.
    """
    started = time.monotonic()
    grids = distillation_grids(cfg.t_prime, cfg.teacher_steps, cfg.to_steps)
    if not run.train_files:
        raise DdadError(f"run {run.path} lists no training images (split.yaml): train it again")
    rc = run.cfg
    scoring = scoring or rc.scoring.mode
    dev = pick_device(device)
    w = rc.sampler.w
    size, channels = rc.model.image_size, rc.model.in_channels
    # The teacher and the scorer exactly as `evaluate` and export build them (a backbone that is random by
    # configuration comes from load_backbone's fixed seed), so the report's numbers are the ones the user
    # will see later.
    base = build_pipeline(run, eta=0.0, mode=scoring)
    teacher, scorer = base.unet.to(dev), base.scorer.to(dev).eval()
    abar = alphas_cumprod(rc.diffusion)
    images = frames_to_tensor(load_images([Path(p) for p in run.train_files], size))  # (N, C, S, S)
    val = load_images([Path(p) for p in run.val_files], size) if run.val_files else None
    if val is None:
        echo("note: this run holds out no nominal images: the report has no rank correlation or map error")
    test = load_test_set(run, size)
    if test is None:
        echo(f"note: no test split with good and defective images under {rc.data.root}: no AUROC in the report")
    z_fixed = fixed_start_noise(size, channels, cfg.to_steps, rc.sampler.noise_seed)

    def pipeline(unet: UNet, grid: list[int], t_prime: int) -> DDADPipeline:
        return DDADPipeline(unet, scorer, abar, grid, t_prime, w, 0.0, rc.sampler.noise_seed).to(dev).eval()

    rows: list[FidelityRow] = []

    def record(unet: UNet, grid: list[int], t_prime: int, label: str, round_: int,
               reference: Reference | None) -> tuple[FidelityRow, Reference]:
        row, out = measure(pipeline(unet, grid, t_prime), label, round_, test, val, reference)
        if reference is None:  # the reference itself: ρ = 1 and no error, by definition
            if out.val is not None:
                row.rank_corr, row.map_mae, row.x0_mae = 1.0, 0.0, 0.0
            if out.test is not None:
                row.test_rank_corr = 1.0
        rows.append(row)
        echo(f"measured {label} ({len(grid)} steps): image AUROC {fmt(row.image_auroc)}, "
             f"rank ρ {fmt(row.rank_corr)}, |Δx̂0| {fmt(row.x0_mae, 4)}, test ρ {fmt(row.test_rank_corr)}")
        return row, out

    # The reference every other sampler is compared with: the teacher on the distillation grid.
    ref_row, reference = record(teacher, grids[0], cfg.t_prime, "teacher", 0, None)
    # DDAD's own grid against it: shows what moving to a grid that halves on integers costs.
    record(teacher, teacher_grid(run), rc.sampler.t_prime, "teacher (DDAD grid)", 0, reference)
    checkpoints = [save_checkpoint(run.student_path(len(grids[0])), student_payload(
        run, teacher, grids[0], cfg, w, 0, {"fidelity": {"teacher": ref_row.to_json()}}))]

    if cfg.method is DistillMethod.PROGRESSIVE:
        plan = [(grids[i], grids[i + 1]) for i in range(len(grids) - 1)]
    else:
        plan = [(grids[0], grids[-1])]
    train_budget = cfg.max_minutes * 60 if cfg.max_minutes else math.inf
    spent = 0.0
    rounds = []
    source = teacher
    for r, (t_grid, s_grid) in enumerate(plan, start=1):
        k = len(s_grid)
        deadline = time.monotonic() + (train_budget - spent) / (len(plan) - r + 1)
        res = distill_round(source, t_grid, images, abar, cfg.t_prime, w, z_fixed, cfg, k, deadline, dev,
                            label=f"distill round {r}: {len(t_grid)}→{k} steps", show_progress=show_progress)
        spent += res.seconds
        student_row, _ = record(res.student, s_grid, cfg.t_prime, "student", r, reference)
        naive_row, _ = record(teacher, s_grid, cfg.t_prime, "naive teacher", r, reference)
        fidelity = {"student": student_row.to_json(), "naive": naive_row.to_json()}
        uniform = ddim_timesteps(cfg.t_prime, cfg.t_prime // k)
        if uniform != s_grid:
            # The naive teacher may do better on DDAD's kind of grid (evenly spaced down to t = 0).
            uniform_row, _ = record(teacher, uniform, cfg.t_prime, "naive teacher (even grid)", r, reference)
            fidelity["naive_even_grid"] = uniform_row.to_json()
        info = {"round": r, "steps": k, "timesteps": s_grid, "teacher_steps": len(t_grid),
                "iterations": res.iterations, "seconds": round(res.seconds, 1),
                "first_loss": res.losses[0] if res.losses else None,
                "final_loss": float(np.mean(res.losses[-10:])) if res.losses else None}
        checkpoints.append(save_checkpoint(run.student_path(k), student_payload(
            run, res.student, s_grid, cfg, w, r, {"fidelity": fidelity, "training": info})))
        info["checkpoint"] = str(checkpoints[-1])
        rounds.append(info)
        source = res.student

    seconds = time.monotonic() - started
    report = write_report(report_path(run, cfg.to_steps), {
        "run": str(run.path), "method": cfg.method.value, "w": w, "eta": 0.0, "device": str(dev),
        "scoring": scoring.value,
        "config": to_dict(cfg), "rows": [row.to_json() for row in rows], "rounds": rounds,
        "summary": summary_of(rows, cfg.to_steps), "seconds_training": round(spent, 1),
        "seconds_total": round(seconds, 1),
    })
    return DistillResult(rows, checkpoints, report, seconds, scoring)


def report_path(run: Run, steps: int) -> Path:
    """Where `distill --to-steps steps` writes its fidelity report."""
    return run.path / "distill" / f"report_steps_{steps}.json"


def summary_of(rows: list[FidelityRow], steps: int) -> dict:
    """Image AUROC of the teachers, the final student and the naive K-step teacher side by side."""
    def auroc(label: str, k: int | None = None) -> float | None:
        found = [r for r in rows if r.label == label and (k is None or r.steps == k)]
        v = found[-1].image_auroc if found else math.nan
        return None if math.isnan(v) else v

    return {"teacher_ddad_grid": auroc("teacher (DDAD grid)"), "teacher": auroc("teacher"),
            f"student_{steps}": auroc("student", steps), f"naive_{steps}": auroc("naive teacher", steps),
            f"naive_even_grid_{steps}": auroc("naive teacher (even grid)", steps)}
