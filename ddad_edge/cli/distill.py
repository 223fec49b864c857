"""The `distill` command: fewer network calls per frame, with a fidelity report to choose K by."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app


@app.command()
def distill(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    to_steps: int = typer.Option(2, "--to-steps", help="Network calls per frame of the final student: 4, 2 or 1."),
    method: str = typer.Option("progressive", help="progressive (halve round by round) or direct (one round, "
                                                   "the student's whole chain against the teacher's x̂0)."),
    teacher_steps: int = typer.Option(8, help="Steps of the grid distilled from (to-steps·2^n)."),
    t_prime: int = typer.Option(248, "--t-prime", help="Noise level T' of the start; a multiple of teacher-steps."),
    iterations: int = typer.Option(150, help="Optimiser steps per round."),
    max_minutes: Optional[float] = typer.Option(None, help="Training time over all rounds (shared equally)."),
    batch_size: int = typer.Option(8),
    lr: float = typer.Option(1e-4),
    random_noise: float = typer.Option(0.5, help="Fraction of each batch started from fresh noise, not the "
                                                 "fixed noise constant."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Distill the conditioned sampler to 4, 2 or 1 steps; saves RUN/students/steps_K.pt and RUN/distill/report.json."""
    from ddad_edge.errors import DdadError
    from ddad_edge.model.checkpoint import latest_run, open_run
    from ddad_edge.train.distill import DistillConfig, DistillMethod
    from ddad_edge.train.distill_run import distill_run

    try:
        chosen = DistillMethod(method)
    except ValueError:
        raise DdadError(f"--method {method!r}: choose {' or '.join(m.value for m in DistillMethod)}") from None
    if not 0.0 <= random_noise <= 1.0:
        raise DdadError(f"--random-noise {random_noise} is a fraction: give a number from 0 to 1")
    if iterations < 1 or batch_size < 1:
        raise DdadError("--iterations and --batch-size must be at least 1")
    cfg = DistillConfig(to_steps=to_steps, teacher_steps=teacher_steps, t_prime=t_prime, method=chosen,
                        iterations=iterations, max_minutes=max_minutes or 0.0, batch_size=batch_size, lr=lr,
                        random_noise=random_noise, seed=seed)
    r = open_run(run or latest_run())
    result = distill_run(r, cfg, device=device, echo=lambda line: typer.echo(line, err=True))
    typer.echo(f"η=0, w={r.cfg.sampler.w:g}; ρ, |Δmap|, |Δx̂0| on {len(r.val_files)} held-out nominal images "
               f"against the {teacher_steps}-step teacher")
    for line in result.table():
        typer.echo(line)
    typer.echo(f"saved {', '.join(str(p) for p in result.checkpoints)}")
    typer.echo(f"report {result.report} ({result.seconds:.0f} s)")
