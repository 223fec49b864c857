"""`ddad-edge evaluate`: image AUROC, pixel AUROC, AUPRO and F1-max of a run (in torch) or a bundle (through
its runner) on a dataset's test split, with overlays and per-image scores."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ddad_edge.cli.app import app
from ddad_edge.cli.table import print_json_or_table
from ddad_edge.config import RatioMode, ScoringMode
from ddad_edge.errors import DdadError


@app.command()
def evaluate(
    run: Optional[Path] = typer.Option(None, help="Run folder (default: the latest under ./runs)."),
    bundle: Optional[Path] = typer.Option(None, help="Evaluate a bundle through its runner instead of a run."),
    data: Optional[Path] = typer.Option(None, help="Dataset root (default: the run's)."),
    category: Optional[str] = typer.Option(None),
    steps: Optional[int] = typer.Option(None, help="Sampler steps: a distilled student's K (default: teacher)."),
    naive: bool = typer.Option(False, help="With --steps: the teacher itself on a K-step grid."),
    start_level: Optional[int] = typer.Option(
        None, "--start-level", help="With --naive: start from this noise level L instead of the run's T', on "
                                    "DDIM's grid L, L-L/K, ..., L/K (one step: a whole denoising step at L)."),
    scoring: Optional[ScoringMode] = typer.Option(None, help="fused, pixel or feature."),
    ratio: Optional[RatioMode] = typer.Option(None, help="per_image or fixed pixel/feature ratio."),
    eta: Optional[float] = typer.Option(None, help="DDIM eta (DDAD: 1; deployment: 0)."),
    w: Optional[float] = typer.Option(None, help="Conditioning weight (default: the run's)."),
    backend: str = typer.Option("onnxruntime",
                                help="With --bundle: onnxruntime, openvino, openvino-bf16, tensorrt or torch."),
    out: Optional[Path] = typer.Option(None, help="Folder for scores.csv, overlays and metrics.json."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
    batch: int = typer.Option(8),
    protocol: str = typer.Option("ddad-edge", help="ddad-edge: score as the line does (the whole map, or the "
                                 "scoring.crop of the run or bundle); ddad: DDAD's own evaluation, the central 224 "
                                 "of 256 px of each map, for comparisons with the paper."),
) -> None:
    """Image AUROC, pixel AUROC, AUPRO and F1-max on the test split, with overlays and per-image scores."""
    from ddad_edge.config_checks import check_option_range
    from ddad_edge.evaluate import check_batch, check_protocol, crop_for, evaluate_runner, write_evaluation
    from ddad_edge.output_paths import bundle_files

    # Options and the paths the results go to are checked first: an evaluation can take minutes.
    check_batch(batch)
    check_protocol(protocol)
    _check_evaluation_outputs(json_path, out, (*bundle_files(bundle), ("the dataset", data)))
    if bundle is not None:
        _refuse_run_options(run, steps=steps, naive=naive, start_level=start_level, scoring=scoring, ratio=ratio,
                            eta=eta, w=w)
        from ddad_edge.bundle import read_bundle
        from ddad_edge.runtime.backends import open_runner

        b = read_bundle(bundle)
        src = b.manifest.get("source", {})
        root = data or Path(src.get("data", ""))
        cat = category if category is not None else src.get("category", "")
        runner = open_runner(b, backend, unmeasured_mode=True)  # evaluating a mode is measuring it
        extra = {"bundle": str(bundle), "backend": backend, "precision": b.precision.value}
        own_crop = int((b.manifest.get("graph") or {}).get("crop", 0))  # bundles before scoring.crop: 0
        out = out or bundle / "eval"
    else:
        from ddad_edge.model.build import build_pipeline, check_sampler
        from ddad_edge.model.checkpoint import latest_run, open_run
        from ddad_edge.model.torch_runner import TorchRunner

        # the options alone, before the run is opened; build_pipeline checks the run
        check_sampler(steps, naive, start_level=start_level)
        for option, key, value in (("--w", "sampler.w", w), ("--eta", "sampler.eta", eta)):
            if value is not None:
                check_option_range(option, key, value)
        r = open_run(run or latest_run())
        root = data or Path(r.cfg.data.root)
        cat = category if category is not None else r.cfg.data.category
        fixed = None
        if ratio is RatioMode.FIXED:
            # measured on the run's held-out nominal images with the fused pipeline of these options
            from ddad_edge.model.fixed_ratio import pipeline_fixed_ratio
            from ddad_edge.train.diffusion import load_val_images

            fused = build_pipeline(r, steps=steps, eta=eta, w=w, naive=naive, mode=ScoringMode.FUSED,
                                   start_level=start_level)
            fixed = pipeline_fixed_ratio(fused, load_val_images(r.cfg, r.val_files))
        pipe = build_pipeline(r, steps=steps, eta=eta, mode=scoring, w=w, naive=naive, ratio=ratio,
                              fixed_ratio=fixed, start_level=start_level)
        runner = TorchRunner(pipe)
        extra = {"run": str(r.path), "steps": len(pipe.timesteps), "timesteps": pipe.timesteps, "w": pipe.w,
                 "eta": pipe.eta, "scoring": pipe.scorer.cfg.mode.value, "ratio": pipe.scorer.cfg.ratio.value,
                 "naive": naive, "t_prime": pipe.t_prime}
        own_crop = pipe.scorer.cfg.crop
        naming = ("-naive" if naive else "") + (f"-from{start_level}" if start_level is not None else "")
        out = out or r.path / "eval" / f"steps{len(pipe.timesteps)}{naming}"
    # again with the run's dataset (known now): overlays written into it would be read as test images
    _check_evaluation_outputs(json_path, out, (("the dataset", root),))
    with runner:
        crop = crop_for(runner.image_size, protocol, own_crop)
        ev, images, maps, _ = evaluate_runner(runner, root, cat, batch=batch, crop=crop)
        extra["protocol"] = protocol
    path = write_evaluation(ev, out, images, maps, extra=extra, json_path=json_path)
    summary = {k: v for k, v in ev.summary().items()}
    print_json_or_table({**summary, "written": str(path)}, as_json=False)


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
    for key, v in given.items():
        k = key.replace("_", "-")
        if v is True:
            named.append(f"--{k}")
        elif v is not None and v is not False:
            named.append(f"--{k} {v:g}" if isinstance(v, float) else f"--{k} {getattr(v, 'value', v)}")
    if named:
        raise DdadError(f"{', '.join(named)} given with --bundle: {'these apply' if len(named) > 1 else 'it applies'}"
                        f" to --run only (a bundle's steps, scoring, eta, w and ratio are fixed at export: export "
                        f"another bundle with them)")
