"""Commands of the workstation half: train, adapt, evaluate, model-info."""

from __future__ import annotations

import dataclasses
import json

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.config import RatioMode, ScoringMode
from ddad_edge.config_presets import MODEL_PRESETS
from ddad_edge.errors import DdadError


def _print_json_or_table(data: dict, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    width = max(len(k) for k in data)
    for k, v in data.items():
        typer.echo(f"{k:<{width}}  {v:.4f}" if isinstance(v, float) else f"{k:<{width}}  {v}")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="Dataset root in MVTec layout (or a category folder)."),
    category: str = typer.Option("", help="Category folder under --data (MVTec/VisA name picks DDAD's preset)."),
    preset: Optional[str] = typer.Option(None, help=f"UNet preset: {', '.join(MODEL_PRESETS)} (default ddad-s)."),
    image_size: Optional[int] = typer.Option(None, help="Image size (default: the preset's)."),
    out: Optional[Path] = typer.Option(None, help="Run folder (default: runs/<category or dataset name>)."),
    config: Optional[Path] = typer.Option(None, help="A RunConfig YAML (all or some keys) over the preset; command-line options override it."),
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
    from ddad_edge.config_presets import run_config_for
    from ddad_edge.config_yaml import load_run_config, read_config_yaml, run_config_from
    from ddad_edge.model.backbone import check_backbone
    from ddad_edge.train.diffusion import TrainingInterrupted, train_diffusion

    from ddad_edge.output_paths import check_output_folder

    name = category or data.resolve().name
    out = out or Path("runs") / name
    # a file at --out, or a run folder inside the dataset (its images would be read as training data)
    check_output_folder(out, "--out", (("the dataset", data),))
    if resume:
        # A resumed run continues with its own saved config: only the stop limits change it, and any other
        # option that asks for something else is refused rather than ignored.
        if not (out / "config.yaml").is_file():
            raise DdadError(f"nothing to resume in {out}: it has no config.yaml (train it without --resume)")
        cfg = load_run_config(out / "config.yaml")
        _refuse_resume_changes(cfg, out, data=data, category=category, preset=preset, image_size=image_size,
                               config=config, batch_size=batch_size, seed=seed, ema=ema, backbone=backbone,
                               backbone_weights=backbone_weights, w=w)
    else:
        _refuse_existing_run(out)
        if config is not None:
            # The file overlays a preset: --preset, else the file's own model.preset, else ddad-s; keys the
            # file leaves out keep the preset's values (a one-key file must not fall back to DDAD-S defaults).
            file_keys = read_config_yaml(config)
            given = file_keys.get("model")
            named = given.get("preset") if isinstance(given, dict) else None
            base = run_config_for(preset or (named if named in MODEL_PRESETS else "ddad-s"), image_size,
                                  category, str(data))
            cfg = run_config_from(file_keys, base=base)
            cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), category=category))
        else:
            cfg = run_config_for(preset or "ddad-s", image_size, category, str(data))
        tr = {k: v for k, v in dict(batch_size=batch_size, seed=seed, ema=ema).items() if v is not None}
        sc = {k: v for k, v in dict(backbone=backbone, backbone_weights=backbone_weights).items() if v is not None}
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **tr),
                                  scoring=dataclasses.replace(cfg.scoring, **sc))
        if w is not None:
            cfg = dataclasses.replace(cfg, sampler=dataclasses.replace(cfg.sampler, w=w))
    limits = {k: v for k, v in dict(max_steps=max_steps, max_minutes=max_minutes, epochs=epochs).items()
              if v is not None}
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **limits))
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


def _refuse_existing_run(out: Path) -> None:
    """One line when a new training would write over the run in `out` (and leave its backbone.pt, students/
    and distill/ behind, which would then belong to another model)."""
    found = [n for n in ("config.yaml", "checkpoints") if (out / n).exists()]
    if found:
        raise DdadError(f"{out} already holds a run ({', '.join(found)}): continue it with --resume, or choose "
                        f"another --out (or remove the folder)")


def _same_dataset(cfg, data: Path, category: str) -> bool:
    """Whether --data (and --category) name the images of the run `cfg` (compared as resolved paths)."""
    def resolved(p: Path) -> Path:
        return p.expanduser().resolve()

    run_root = Path(cfg.data.root)
    run_dir = resolved(run_root / cfg.data.category if cfg.data.category else run_root)
    given_dir = resolved(data / category if category else data)
    return given_dir == run_dir or (not category and resolved(data) == resolved(run_root))


def _refuse_resume_changes(cfg, out: Path, data: Path, category: str, **given) -> None:
    """One line naming the options of `train --resume` that ask for something else than the run's saved config:
    a resumed run continues with its own settings, and only its stop limits change."""
    from ddad_edge.config import with_absolute_paths

    def weights_of(value: str) -> str:
        probe = dataclasses.replace(cfg, scoring=dataclasses.replace(cfg.scoring, backbone_weights=value))
        return with_absolute_paths(probe).scoring.backbone_weights

    saved = {"preset": cfg.model.preset, "image_size": cfg.model.image_size, "batch_size": cfg.train.batch_size,
             "seed": cfg.train.seed, "ema": cfg.train.ema, "backbone": cfg.scoring.backbone,
             "backbone_weights": weights_of(cfg.scoring.backbone_weights), "w": cfg.sampler.w}
    named = []
    if not _same_dataset(cfg, data, category):
        asked = f"--data {data}" + (f" --category {category}" if category else "")
        run_dir = Path(cfg.data.root) / cfg.data.category if cfg.data.category else Path(cfg.data.root)
        named.append(f"{asked} (the run's: {run_dir})")
    for key, value in given.items():
        if value is None:
            continue
        option = "--" + key.replace("_", "-")
        if key == "config":
            named.append(f"--config {value} (the run keeps its config.yaml)")
        elif key == "ema":
            if value != saved["ema"]:
                named.append(f"--{'' if value else 'no-'}ema (the run's: {'--ema' if saved['ema'] else '--no-ema'})")
        elif (weights_of(value) if key == "backbone_weights" else value) != saved[key]:
            shown = saved[key] if saved[key] != "" else '"" (torchvision\'s)'
            named.append(f"{option} {value} (the run's: {shown})")
    if named:
        raise DdadError(f"cannot resume {out} with {', '.join(named)}: a resumed run continues with its saved "
                        f"settings and only --max-steps, --max-minutes and --epochs change it; leave "
                        f"{'these' if len(named) > 1 else 'it'} out, or train a new run in another --out")


@app.command()
def adapt(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    epochs: Optional[int] = typer.Option(None, help="Adaptation epochs (default: DDAD's FE epochs)."),
    max_steps: Optional[int] = typer.Option(None),
    device: str = typer.Option("auto"),
) -> None:
    """Adapt the feature extractor to the domain of the run's nominal images."""
    from ddad_edge.model.checkpoint import latest_run, open_run
    from ddad_edge.train.adapt import adapt_extractor

    r = open_run(run or latest_run())
    changes = {k: v for k, v in dict(epochs=epochs, max_steps=max_steps).items() if v is not None}
    if changes:
        r.cfg = dataclasses.replace(r.cfg, adapt=dataclasses.replace(r.cfg.adapt, **changes))
    res = adapt_extractor(r, device=device)
    typer.echo(f"adapted {r.cfg.scoring.backbone} for {res.steps} steps in {res.seconds:.0f} s "
               f"(loss {res.first_loss:.4g} → {res.final_loss:.4g}); saved {res.path}")


@app.command()
def evaluate(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    bundle: Optional[Path] = typer.Option(None, help="Evaluate a bundle through its runner instead of a run."),
    data: Optional[Path] = typer.Option(None, help="Dataset root (default: the run's)."),
    category: Optional[str] = typer.Option(None),
    steps: Optional[int] = typer.Option(None, help="Sampler steps: a distilled student's K (default: teacher)."),
    naive: bool = typer.Option(False, help="With --steps: the teacher itself on a K-step grid."),
    scoring: Optional[ScoringMode] = typer.Option(None, help="fused, pixel or feature."),
    ratio: Optional[RatioMode] = typer.Option(None, help="per_image or fixed pixel/feature ratio."),
    eta: Optional[float] = typer.Option(None, help="DDIM eta (DDAD: 1; deployment: 0)."),
    w: Optional[float] = typer.Option(None, help="Conditioning weight (default: the run's)."),
    backend: str = typer.Option("onnxruntime", help="With --bundle: onnxruntime, openvino, openvino-bf16, tensorrt or torch."),
    out: Optional[Path] = typer.Option(None, help="Folder for scores.csv, overlays and metrics.json."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    batch: int = typer.Option(8),
) -> None:
    """Image AUROC, pixel AUROC, AUPRO and F1-max on the test split, with overlays and per-image scores."""
    from ddad_edge.config_checks import check_option_range
    from ddad_edge.evaluate import check_batch, evaluate_runner, write_evaluation
    from ddad_edge.output_paths import bundle_files

    # Options and the paths the results go to are checked first: an evaluation can take minutes.
    check_batch(batch)
    _check_evaluation_outputs(json_path, out, (*bundle_files(bundle), ("the dataset", data)))
    if bundle is not None:
        _refuse_run_options(run, steps=steps, naive=naive, scoring=scoring, ratio=ratio, eta=eta, w=w)
        from ddad_edge.bundle import read_bundle
        from ddad_edge.runtime.backends import open_runner

        b = read_bundle(bundle)
        src = b.manifest.get("source", {})
        root = data or Path(src.get("data", ""))
        cat = category if category is not None else src.get("category", "")
        runner = open_runner(b, backend, unmeasured_mode=True)  # evaluating a mode is measuring it
        extra = {"bundle": str(bundle), "backend": backend, "precision": b.precision.value}
        out = out or bundle / "eval"
    else:
        from ddad_edge.model.checkpoint import latest_run, open_run
        from ddad_edge.model.build import build_pipeline
        from ddad_edge.model.torch_runner import TorchRunner

        if naive and steps is None:  # build_pipeline refuses it too, after loading the run
            raise DdadError("--naive needs --steps K: it runs the teacher itself on a K-step grid")
        for option, key, value in (("--w", "sampler.w", w), ("--eta", "sampler.eta", eta)):
            if value is not None:
                check_option_range(option, key, value)
        r = open_run(run or latest_run())
        root = data or Path(r.cfg.data.root)
        cat = category if category is not None else r.cfg.data.category
        fixed = None
        if ratio is RatioMode.FIXED:
            fixed = _fixed_ratio(r, steps, naive, eta, w)
        pipe = build_pipeline(r, steps=steps, eta=eta, mode=scoring, w=w, naive=naive, ratio=ratio,
                              fixed_ratio=fixed)
        runner = TorchRunner(pipe)
        extra = {"run": str(r.path), "steps": len(pipe.timesteps), "timesteps": pipe.timesteps, "w": pipe.w,
                 "eta": pipe.eta, "scoring": pipe.scorer.cfg.mode.value, "ratio": pipe.scorer.cfg.ratio.value,
                 "naive": naive}
        out = out or r.path / "eval" / f"steps{len(pipe.timesteps)}{'-naive' if naive else ''}"
    # again with the run's dataset (known now): overlays written into it would be read as test images
    _check_evaluation_outputs(json_path, out, (("the dataset", root),))
    with runner:
        ev, images, maps, _ = evaluate_runner(runner, root, cat, batch=batch)
    path = write_evaluation(ev, out, images, maps, extra=extra, json_path=json_path)
    summary = {k: v for k, v in ev.summary().items()}
    _print_json_or_table({**summary, "written": str(path)}, as_json=False)


def _check_evaluation_outputs(json_path: Optional[Path], out: Optional[Path], inputs: tuple) -> None:
    """One line when --json or --out cannot be written, or would land on the evaluation's inputs."""
    from ddad_edge.output_paths import check_output_file, check_output_folder

    if json_path is not None:
        check_output_file(json_path, "--json", "metrics.json", inputs)
    if out is not None:
        check_output_folder(out, "--out", inputs)


def _refuse_run_options(run: Optional[Path], **given) -> None:
    """One line when --bundle comes with --run or with an option that only a run's pipeline takes: a bundle's
    graph fixes its steps, scoring, eta, w and ratio at export, so these would be ignored without a word."""
    if run is not None:
        raise DdadError(f"--run {run} and --bundle both given: evaluate one of them (a run's pipeline in torch, "
                        f"or a bundle through its runner)")
    named = []
    for k, v in given.items():
        if v is True:
            named.append(f"--{k}")
        elif v is not None and v is not False:
            named.append(f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {getattr(v, 'value', v)}")
    if named:
        raise DdadError(f"{', '.join(named)} given with --bundle: {'these apply' if len(named) > 1 else 'it applies'}"
                        f" to --run only (a bundle's steps, scoring, eta, w and ratio are fixed at export: export "
                        f"another bundle with them)")


def _fixed_ratio(r, steps, naive, eta, w) -> float:
    """max D_f / max D_p over the run's held-out nominal images, for the fixed-ratio scoring mode."""
    import torch

    from ddad_edge.model.pipeline import frames_to_tensor
    from ddad_edge.model.build import build_pipeline
    from ddad_edge.model.scoring import measure_fixed_ratio
    from ddad_edge.train.diffusion import load_val_images

    pipe = build_pipeline(r, steps=steps, eta=eta, w=w, naive=naive, mode=ScoringMode.FUSED)
    x = frames_to_tensor(load_val_images(r.cfg, r.val_files))
    with torch.no_grad():
        pairs = [(x[i:i + 8], pipe.reconstruct(x[i:i + 8])) for i in range(0, len(x), 8)]
    return measure_fixed_ratio(pipe.scorer, pairs)


@app.command("model-info")
def model_info(
    preset: str = typer.Option("ddad-s", help=f"UNet preset: {', '.join(MODEL_PRESETS)}."),
    image_size: Optional[int] = typer.Option(None),
    backbone: str = typer.Option("wide_resnet101_2", help="Feature extractor to count as well."),
    steps: int = typer.Option(10, help="Network calls per frame, for the per-frame total."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Parameters and GFLOP of the UNet per call, of the feature extractor, and per frame."""
    from ddad_edge.model.flops import model_costs

    _print_json_or_table(model_costs(preset, image_size, backbone, steps), as_json)


