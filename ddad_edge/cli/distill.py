"""The `distill` command: fewer network calls per frame, with a fidelity report to choose K by."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.config import ScoringMode


@app.command()
def distill(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    to_steps: int = typer.Option(2, "--to-steps", help="Network calls per frame of the final student: 4, 2 or 1."),
    method: Optional[str] = typer.Option(None, help="direct (default: one round, the student's whole chain against "
                                                    "the teacher's final x̂0) or progressive (halve the steps "
                                                    "round by round)."),
    teacher_steps: Optional[int] = typer.Option(None, help="Steps of the grid distilled from, to-steps·2^n "
                                                           "(default 8)."),
    t_prime: Optional[int] = typer.Option(None, "--t-prime", help="Noise level T' of the start, a multiple of "
                                                                  "teacher-steps (default 248)."),
    iterations: Optional[int] = typer.Option(None, help="Optimiser steps per round (default 200)."),
    max_minutes: Optional[float] = typer.Option(None, help="Training time over all rounds, shared equally; 0: no "
                                                           "limit (default 8, so a CPU finishes)."),
    batch_size: Optional[int] = typer.Option(None, help="Default 8."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 1e-4)."),
    synthetic_defects: Optional[float] = typer.Option(None, help="Fraction of each batch given a synthetic defect, "
                                                                 "so the student learns to repair it "
                                                                 "(default 1: every image, most pixels stay nominal)."),
    defect_weight: Optional[float] = typer.Option(None, help="Loss weight of the pixels of a synthetic defect, "
                                                             "others 1 (default 30)."),
    defect_target: Optional[str] = typer.Option(None, help="The student's target for an image with a synthetic "
                                                           "defect: repaired (the teacher's reconstruction of the "
                                                           "image without it; default of, and only with, the "
                                                           "direct method) or teacher (its reconstruction of the "
                                                           "image with it: pure distillation; progressive's)."),
    random_noise: Optional[float] = typer.Option(None, help="Fraction of each batch started from fresh noise "
                                                            "instead of the fixed noise constant (default 0)."),
    seed: Optional[int] = typer.Option(None),
    scoring: Optional[ScoringMode] = typer.Option(None, "--scoring",
                                                  help="Scoring of the report's AUROC and rank columns: the one "
                                                       "you will export (default: the run's)."),
    replace: bool = typer.Option(False, "--replace",
                                 help="Replace students made by another distillation (another method, target "
                                      "steps or grid); the reports that described them say so."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Distill the conditioned sampler to 4, 2 or 1 steps.

    Saves RUN/students/steps_K.pt and RUN/distill/report_steps_K.json. A student that another distillation
    made (another method, --to-steps or grid) is not replaced without --replace: move it away to keep it.
    Running the same distillation again replaces its own students and report.
    """
    from ddad_edge.model.checkpoint import latest_run, open_run
    from ddad_edge.train.distill import DistillConfig
    from ddad_edge.train.distill_run import distill_run

    given = dict(to_steps=to_steps, teacher_steps=teacher_steps, t_prime=t_prime, iterations=iterations,
                 max_minutes=max_minutes, batch_size=batch_size, lr=lr, synthetic_defects=synthetic_defects,
                 random_noise=random_noise, seed=seed, defect_weight=defect_weight, method=method,
                 defect_target=defect_target)  # DistillConfig turns method and target into their enums
    options = {k: v for k, v in given.items() if v is not None}
    # DistillConfig checks every number (finite, in range) and names the option: before the run is opened
    cfg = DistillConfig(**options)
    r = open_run(run or latest_run())
    result = distill_run(r, cfg, device=device, scoring=scoring, replace=replace,
                         echo=lambda line: typer.echo(line, err=True))
    typer.echo(f"{cfg.method.value} distillation, η=0, w={r.cfg.sampler.w:g}, {result.scoring.value} scoring. "
               f"rank ρ, |Δmap|, |Δx̂0|: {len(r.val_files)} held-out nominal images; test ρ: the test split; "
               f"all against the {cfg.teacher_steps}-step teacher")
    for line in result.table():
        typer.echo(line)
    typer.echo(f"saved {', '.join(str(p) for p in result.checkpoints)}")
    typer.echo(f"report {result.report} ({result.seconds:.0f} s)")
