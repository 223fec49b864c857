"""`ddad-edge distill` on a run folder: the rounds of distillation, their checkpoints, and the fidelity report.

Writes into the run folder:
  students/steps_{K_T}.pt       round 0: the teacher itself on the distillation grid (e.g. 8 steps from
                                T'=248), so `evaluate --steps 8` measures the grid every student is distilled from
  students/steps_K.pt           each round's student: weights, step grid, T', w, round, method, its fidelity
  distill/report_steps_K.json   every sampler's fidelity (see distill_fidelity) and the timings; one file per
                                target K, so distilling to 2 and then to 1 step keeps both reports

A student file that another distillation made (another method, target K or grid: it belongs to another
report) is never replaced silently: `distill_run` refuses before any work unless `replace` is given, and then
marks the replaced round in the report that described it. Running the same distillation again (same
method, K, teacher steps and T') replaces its own students and report. A round that made no optimiser step
(its share of max_minutes too short) saves nothing and stops with one line.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.config import ScoringMode
from ddad_edge.data.folders import list_test, load_images, load_test_arrays
from ddad_edge.errors import DdadError
from ddad_edge.model.build import build_pipeline, teacher_grid
from ddad_edge.model.checkpoint import Run, load_checkpoint, save_checkpoint
from ddad_edge.model.device import pick_device
from ddad_edge.model.pipeline import DDADPipeline, frames_to_tensor
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps
from ddad_edge.model.unet import UNet
from ddad_edge.train.distill import (
    DistillConfig,
    DistillMethod,
    check_t_prime,
    distill_round,
    distillation_grids,
    fixed_start_noise,
)
from ddad_edge.train.distill_fidelity import FidelityRow, Reference, TestSet, fmt, measure, table_lines, write_report
from ddad_edge.yaml_strict import to_dict


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
    """The checkpoint of a K-step sampler (loaded back by model.build.build_pipeline)."""
    return {
        "kind": "student" if round_ else "teacher_grid", "config": to_dict(run.cfg),
        "unet": {k: v.detach().cpu() for k, v in unet.state_dict().items()},
        "timesteps": list(grid), "t_prime": cfg.t_prime, "w": float(w), "eta": 0.0, "round": round_,
        "method": cfg.method.value, "distill": to_dict(cfg), **extra,
    }


def round_plan(cfg: DistillConfig, grids: list[list[int]]) -> list[tuple[list[int], list[int]]]:
    """(teacher grid, student grid) of each round: every halving (progressive) or one jump (direct)."""
    if cfg.method is DistillMethod.PROGRESSIVE:
        return [(grids[i], grids[i + 1]) for i in range(len(grids) - 1)]
    return [(grids[0], grids[-1])]


def _origin(payload: dict) -> tuple:
    """What makes a student file belong to one distillation (and so to one report): kind, grid, and for a
    student the method, target steps, teacher steps and T' it was distilled with."""
    d = payload.get("distill") if isinstance(payload.get("distill"), dict) else {}
    if payload.get("kind") == "teacher_grid":  # the teacher itself on a grid: the same whoever wrote it
        return ("teacher_grid", list(payload.get("timesteps", [])))
    return (payload.get("kind"), list(payload.get("timesteps", [])), d.get("method"), d.get("to_steps"),
            d.get("teacher_steps"), d.get("t_prime"))


def _made_by(payload: dict) -> str:
    d = payload.get("distill") if isinstance(payload.get("distill"), dict) else {}
    if payload.get("kind") == "teacher_grid":
        return f"the teacher on the grid {payload.get('timesteps')}"
    return (f"`distill --to-steps {d.get('to_steps')} --method {d.get('method')} --teacher-steps "
            f"{d.get('teacher_steps')} --t-prime {d.get('t_prime')}`")


def files_replaced(run: Run, cfg: DistillConfig, grids: list[list[int]], replace: bool) -> dict[Path, dict]:
    """The student files this distillation would write over that another distillation made, with their
    payloads ({} for one that cannot be read). Without `replace`, the first of them is refused in one line.
    """
    ours = {len(grids[0]): ("teacher_grid", list(grids[0]))}
    for _, s_grid in round_plan(cfg, grids):
        ours[len(s_grid)] = ("student", list(s_grid), cfg.method.value, cfg.to_steps, cfg.teacher_steps,
                             cfg.t_prime)
    others: dict[Path, dict] = {}
    for k, origin in ours.items():
        path = run.student_path(k)
        if not path.exists():
            continue
        try:
            payload = load_checkpoint(path)
        except DdadError:
            payload, made_by = {}, "something that cannot be read as a checkpoint"
        else:
            if _origin(payload) == origin:
                continue  # the same distillation run again: its report is rewritten with it
            made_by = _made_by(payload)
        if not replace:
            described = _report_of(run, payload)
            report = f" and {described.relative_to(run.path)}" if described is not None else ""
            raise DdadError(f"{path} holds a {k}-step sampler made by {made_by}, not by this distillation: "
                            f"move it{report} out of {run.path} to keep it, or pass --replace")
        others[path] = payload
    return others


def _report_of(run: Run, payload: dict) -> Path | None:
    """The report that describes a student file's distillation (None for the teacher grid or a damaged file)."""
    d = payload.get("distill")
    steps = d.get("to_steps") if isinstance(d, dict) and payload.get("kind") == "student" else None
    return report_path(run, steps) if isinstance(steps, int) else None


def mark_replaced(run: Run, path: Path, payload: dict, cfg: DistillConfig, echo: Callable[[str], None]) -> None:
    """After `path` was replaced (with --replace): the round of the report that described its old student
    loses its checkpoint and says what replaced it, so no report points at a student that is not there."""
    report = _report_of(run, payload)
    echo(f"note: replaced {path} (--replace), made by {_made_by(payload) if payload else 'an unreadable file'}")
    if report is None or not report.is_file() or report == report_path(run, cfg.to_steps):
        return  # no other report describes it (ours is written at the end)
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return
    marked = False
    for info in data.get("rounds", []) if isinstance(data, dict) else []:
        if isinstance(info, dict) and info.get("checkpoint") and Path(info["checkpoint"]).name == path.name:
            info["checkpoint"] = None
            info["replaced_by"] = (f"distill --to-steps {cfg.to_steps} --method {cfg.method.value} "
                                   f"--teacher-steps {cfg.teacher_steps} --t-prime {cfg.t_prime} "
                                   f"({time.strftime('%Y-%m-%dT%H:%M:%S')})")
            marked = True
    if marked:
        write_report(report, data)
        echo(f"note: {report} now says that this round's student was replaced")


def distill_run(run: Run, cfg: DistillConfig, device: str = "auto", show_progress: bool = True,
                echo: Callable[[str], None] = print, scoring: ScoringMode | None = None,
                replace: bool = False) -> DistillResult:
    """Distill the run's teacher down to cfg.to_steps steps; save each round and the report.

    `scoring`: the anomaly map the report's scores use (default the run's): the one that will be exported.
    Training does not depend on it.

    `replace`: write over student files that another distillation made (see `files_replaced`); without it
    they are refused in one line before any work.

    `echo` receives one line per measured sampler while the work goes on.
    """
    started = time.monotonic()
    grids = distillation_grids(cfg.t_prime, cfg.teacher_steps, cfg.to_steps)
    check_t_prime(cfg.t_prime, run.cfg.diffusion.num_timesteps)
    if not run.train_files:
        raise DdadError(f"run {run.path} lists no training images (split.yaml): train it again")
    others = files_replaced(run, cfg, grids, replace)

    def save(path: Path, payload: dict) -> Path:
        saved = save_checkpoint(path, payload)
        if path in others:
            mark_replaced(run, path, others[path], cfg, echo)
        return saved

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
    checkpoints = [save(run.student_path(len(grids[0])), student_payload(
        run, teacher, grids[0], cfg, w, 0, {"fidelity": {"teacher": ref_row.to_json()}}))]

    plan = round_plan(cfg, grids)
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
        if res.iterations == 0:
            target = run.student_path(k)
            kept = f"; {target} is kept as it was" if target.exists() else ""
            raise DdadError(f"distill round {r} ({len(t_grid)}→{k} steps) made no optimiser step in its share of "
                            f"--max-minutes {cfg.max_minutes:g}: no student saved for it{kept}; give more minutes "
                            "(or 0 for no limit)")
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
        checkpoints.append(save(run.student_path(k), student_payload(
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
