"""`ddad-edge train`: the DDAD-S denoising UNet on a dataset's nominal images, new or resumed.

The run's config is assembled in ddad_edge.train.run_setup; this command parses, calls and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.config_presets import MODEL_PRESETS


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Dataset root in MVTec layout (or a category folder)."),
    category: str = typer.Option("", help="Category folder under --data (MVTec/VisA name picks DDAD's preset)."),
    preset: Optional[str] = typer.Option(None, help=f"UNet preset: {', '.join(MODEL_PRESETS)} (default ddad-s)."),
    image_size: Optional[int] = typer.Option(None, help="Image size (default: the preset's)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<category or dataset name>)."),
    config: Optional[Path] = typer.Option(None, help="A RunConfig YAML (all or some keys) over the preset; "
                                          "command-line options override it."),
    max_steps: Optional[int] = typer.Option(None, help="Stop after this many optimiser steps."),
    max_minutes: Optional[float] = typer.Option(None, help="Stop after this many minutes."),
    epochs: Optional[int] = typer.Option(None, help="Training epochs (default: the preset's)."),
    batch_size: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    ema: Optional[bool] = typer.Option(None, "--ema/--no-ema", help="Keep an EMA of the weights."),
    backbone: Optional[str] = typer.Option(None, help="Feature extractor for scoring and adaptation."),
    backbone_weights: Optional[str] = typer.Option(
        None, help="torchvision .pth of the backbone; 'none' for random weights."),
    w: Optional[float] = typer.Option(None, help="Conditioning weight w (default: DDAD's for the category)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its last checkpoint."),
    device: str = typer.Option("auto", help="auto, cpu, cuda or cuda:N."),
) -> None:
    """Train the DDAD-S denoising UNet on the nominal images of train/good.

    Ctrl-C or SIGTERM stops at the end of the step under way and saves last.pt there (exit 130 for SIGINT,
    143 for SIGTERM); --resume continues it.
    """
    from ddad_edge.config_checks import check_run_config
    from ddad_edge.model.backbone import check_backbone
    from ddad_edge.output_paths import check_output_folder
    from ddad_edge.train.diffusion import TrainingInterrupted, train_diffusion
    from ddad_edge.train.run_setup import new_run_config, refuse_existing_run, resumed_run_config, with_overrides

    name = category or data.resolve().name
    out = out or Path("runs") / name
    # a file at --out, or a run folder inside the dataset (its images would be read as training data)
    check_output_folder(out, "--out", (("the dataset", data),))
    if resume:
        cfg = resumed_run_config(out, data, category, preset=preset, image_size=image_size, config=config,
                                 batch_size=batch_size, seed=seed, ema=ema, backbone=backbone,
                                 backbone_weights=backbone_weights, w=w)
    else:
        refuse_existing_run(out)
        cfg = new_run_config(data, category, preset, image_size, config, batch_size, seed, ema, backbone,
                             backbone_weights, w)
    cfg = with_overrides(cfg, "train", max_steps=max_steps, max_minutes=max_minutes, epochs=epochs)
    check_run_config(cfg)  # the options given here pass the same checks as a config file
    if not resume:
        # adapt and evaluate need the scoring backbone: a bad weights file must not wait for the training's end
        # (a resumed run is not held up by it: its training does not use the backbone)
        note = check_backbone(cfg.scoring.backbone, cfg.scoring.backbone_weights)
        if note:
            typer.echo(f"note: {note}", err=True)
    try:
        result = train_diffusion(cfg, out, resume=resume, device=device)
    except TrainingInterrupted as stop:
        if stop.rank == 0:
            if stop.checkpoint is not None:
                typer.echo(f"interrupted at step {stop.step}: saved {stop.checkpoint}; continue with "
                           f"`ddad-edge train --data {data} --out {out} --resume`", err=True)
            else:
                typer.echo(f"interrupted during the weight update after step {stop.step}: nothing new saved "
                           f"(the last checkpoint in {out / 'checkpoints'} stays); continue with --resume",
                           err=True)
        raise SystemExit(stop.exit_code) from None
    if result.rank != 0:  # under torchrun only rank 0 reports
        return
    tail = f"final loss {result.final_loss:.4g}; checkpoint {result.checkpoint}"
    if resume:
        typer.echo(f"resumed at step {result.first_step}, now at step {result.steps} ({result.epochs:.1f} epochs): "
                   f"{result.steps - result.first_step} steps in {result.seconds:.0f} s this time, "
                   f"{result.total_seconds / 60:.1f} min over all sessions; {tail}")
    else:
        typer.echo(f"trained {result.steps} steps ({result.epochs:.1f} epochs) in {result.seconds:.0f} s, {tail}")
