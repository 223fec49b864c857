"""`ddad-edge train-all`: one model per category, DDAD's presets, resumable, one summary table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.config_presets import MODEL_PRESETS


@app.command("train-all")
def train_all_command(
    data: Path = typer.Option(..., "--data", help="Dataset root holding one folder per category (MVTec layout)."),
    categories: str = typer.Option("all", "--categories", help="a,b,c or all (every category folder under --data)."),
    preset: str = typer.Option("ddad-s", help=f"UNet preset: {', '.join(MODEL_PRESETS)}."),
    image_size: Optional[int] = typer.Option(None, help="Image size (default: the preset's)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder of the runs: OUT/<category>."),
    max_steps: Optional[int] = typer.Option(None, help="Stop each category after this many optimiser steps."),
    max_minutes: Optional[float] = typer.Option(
        None, help="Train each category at most this long per call; an unfinished one resumes next call."),
    epochs: Optional[int] = typer.Option(None, help="Epochs for every category (default: DDAD's per category)."),
    batch_size: Optional[int] = typer.Option(None, help="Batch size per process (under torchrun: per GPU)."),
    seed: Optional[int] = typer.Option(None),
    evaluate: bool = typer.Option(False, "--evaluate", help="Measure image AUROC on each test split afterwards."),
    device: str = typer.Option("auto", help="auto, cpu or cuda (under torchrun each rank takes its LOCAL_RANK)."),
) -> None:
    """Train a model per category: finished categories are skipped, interrupted ones resumed."""
    from ddad_edge.model.device import pick_device
    from ddad_edge.output_paths import check_output_folder
    from ddad_edge.train.distributed import detect_env, device_for, process_group
    from ddad_edge.train.train_all import (
        Outcome,
        check_options,
        evaluate_results,
        plan_categories,
        summary_table,
        train_categories,
        write_summary,
    )

    overrides = {k: v for k, v in dict(max_steps=max_steps, max_minutes=max_minutes, epochs=epochs,
                                       batch_size=batch_size, seed=seed).items() if v is not None}
    check_options(preset, image_size, overrides)  # before any rank starts: one line, not a failed category each
    check_output_folder(out, "--out", (("the dataset", data),))  # runs inside the data would be read as a category
    env = detect_env()
    dev = device_for(env, device) if env.distributed else pick_device(device)

    def say(line: str) -> None:
        typer.echo(line, err=True)

    with process_group(env, dev) as ranks:
        plans = None
        if ranks.is_main:
            plans, notes = plan_categories(data, categories, preset, image_size, out, overrides)
            for note in notes:
                say(f"note: {note}")
        # one plan for all ranks: each must train the same categories in the same order
        plans = ranks.broadcast(plans)
        results = train_categories(plans, ranks, device=device, say=say)
    if not env.is_main:
        return
    failed_evaluations = 0
    if evaluate:
        failed_evaluations = evaluate_results(results, out, "cuda" if dev.type == "cuda" else "cpu", say=say)
    typer.echo(summary_table(results, evaluate))
    typer.echo(f"summary: {write_summary(results, out)}")
    if failed_evaluations or any(r.outcome is Outcome.FAILED for r in results):
        raise typer.Exit(1)  # a category that failed to train, or whose evaluation was asked and failed
