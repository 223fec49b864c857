"""The export procedure: a run in, a verified bundle out (ARCHITECTURE.md, "The bundle").

  1. rebuild the run's pipeline (teacher, distilled student or naive K-step grid; eta = 0) and export
     the one FP32 graph;
  2. make the precision's file (FP16 with measured FP32 islands, or INT8 Q/DQ with fallback);
  3. judge it against the FP32 torch pipeline on held-out nominal and painted-defect images (and on the
     labelled test split where the dataset has one), time it in ONNX Runtime on this CPU;
  4. set thresholds from the scores the file itself gives on held-out nominal images;
  5. write model.onnx, probe.npz (probe frames with the FP32 ONNX Runtime outputs, for `selftest`),
     calibration.npz (FP32 bundles: nominal frames for TensorRT's legacy INT8 calibrator), report.json
     and manifest.yaml with the sha256 of every file.
Calibration uses nominal training images only; thresholds and fidelity the held-out validation split.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ddad_edge.bundle import (
    MANIFEST_NAME,
    MODEL_NAME,
    REPORT_NAME,
    Bundle,
    Precision,
    atomic_write_bytes,
    read_bundle,
    write_manifest,
)
from ddad_edge.config import ScoringMode
from ddad_edge.data.folders import list_test, list_train, load_images, load_test_arrays
from ddad_edge.deploy.bundle_folder import check_out, move_into_place
from ddad_edge.deploy.edge_default import default_steps
from ddad_edge.deploy.execution_modes import measure_modes, test_split_report
from ddad_edge.deploy.fidelity import (
    FidelitySet,
    OutputError,
    compare_scores,
    fidelity_set,
    measure_latency,
    output_error,
    run_onnx,
)
from ddad_edge.deploy.frame_gate_calibration import calibrate_frame_gate
from ddad_edge.deploy.onnx_export import OPSET, GraphSummary, check_graph, export_onnx
from ddad_edge.deploy.precision_plan import make_precision_file
from ddad_edge.deploy.recipes import recipe_for
from ddad_edge.deploy.tensorrt_profile import profile_tensorrt_versions
from ddad_edge.deploy.thresholds import (
    ThresholdRule,
    compute_thresholds,
    judge_threshold,
    nominal_statistics,
    test_statistics,
)
from ddad_edge.deploy.trt_rules import tensorrt_rules_summary
from ddad_edge.errors import DdadError
from ddad_edge.manifest import Manifest
from ddad_edge.model.build import build_pipeline, check_sampler
from ddad_edge.model.checkpoint import Run, open_run
from ddad_edge.model.pipeline import DDADPipeline
from ddad_edge.model.torch_runner import TorchRunner
from ddad_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES, Inspection
from ddad_edge.yaml_strict import to_dict

PROBE_NAME = "probe.npz"
CALIBRATION_FRAMES_NAME = "calibration.npz"
MAX_FIDELITY_NOMINAL = 64  # held-out nominal images used for fidelity (each also painted with a defect)


@dataclass(frozen=True)
class ExportOptions:
    """What `ddad-edge export` was asked for."""

    run: Path
    precision: Precision
    recipe: str | Path | None = None
    out: Path | None = None
    steps: int | None = None  # None: the fewest-step student within the edge's budget (deploy/edge_default.py)
    naive: bool = False  # with steps: the teacher itself on a K-step grid
    start_level: int | None = None  # with naive: the grid starts at this noise level (schedule.level_grid)
    scoring: ScoringMode | None = None  # None: the run's
    thresholds: ThresholdRule = ThresholdRule()
    probe_frames: int = 4
    calibration_frames: int = 32  # FP32 bundles only; 0 writes none
    latency_runs: int = 10
    labelled: bool = True  # also judge on the dataset's test split when it exists
    overwrite: bool = False
    tensorrt: tuple[str, ...] | None = None  # parser rules checked; None: the versions the shipped profiles name


def default_out(run: Path, precision: Precision, steps: int, scoring: ScoringMode) -> Path:
    """bundles/<run>-<precision>-k<K>[-pixel]: where a bundle goes when --out is not given."""
    suffix = "" if scoring is ScoringMode.FUSED else f"-{scoring.value}"
    return Path("bundles") / f"{Path(run).resolve().name}-{precision.value}-k{steps}{suffix}"


def _tool_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"python": sys.version.split()[0]}
    for dist in ("ddad-edge", "torch", "onnx", "onnxruntime", "numpy"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return versions


def train_frames(run: Run, count: int, size: int) -> np.ndarray:
    """Up to `count` nominal training images (never validation or test images), evenly spread."""
    paths = [Path(p) for p in run.train_files]
    if not paths:  # a run folder without a recorded split: everything in train/good except validation
        held_out = {str(Path(p)) for p in run.val_files}
        paths = [p for p in list_train(run.cfg.data.root, run.cfg.data.category) if str(p) not in held_out]
    if not paths:
        raise DdadError(f"run {run.path} lists no training images for INT8 calibration")
    pick = np.unique(np.linspace(0, len(paths) - 1, min(count, len(paths))).round().astype(int))
    return load_images([paths[i] for i in pick], size)


def _test_split(run: Run, size: int):
    """(frames, labels) of the dataset's test split, or None when it is absent or has one class only."""
    try:
        samples = list_test(run.cfg.data.root, run.cfg.data.category)
    except DdadError:
        return None
    labels = np.array([s.label for s in samples])
    if labels.size == 0 or labels.min() == labels.max():
        return None
    frames, labels, _, _ = load_test_arrays(samples, size)
    return frames, labels


@dataclass
class Prepared:
    """Everything an export shares across precisions: the pipeline, its FP32 graph, frames and references."""

    run: Run
    options: ExportOptions
    pipeline: DDADPipeline
    scoring: ScoringMode
    steps: int
    size: int
    fid: FidelitySet
    ref: Inspection  # the torch pipeline on fid.frames
    test: tuple[np.ndarray, np.ndarray] | None  # (frames, labels) of the test split
    ref_test: Inspection | None  # the torch pipeline on the test frames
    work: Path
    fp32: Path
    summary: GraphSummary
    fp32_outputs: tuple[np.ndarray, np.ndarray]  # ONNX Runtime FP32 (maps, scores) on fid.frames
    fp32_vs_torch: OutputError


@contextmanager
def prepare_export(options: ExportOptions, log: Callable[[str], None] = print) -> Iterator[Prepared]:
    """Rebuild the run's pipeline, export and check its FP32 graph, load frames and torch references.

    The FP32 file lives in a temporary folder for as long as the context is open.
    """
    run = open_run(options.run)
    if not run.val_files:
        raise DdadError(f"run {run.path} has no held-out validation images (split.yaml): thresholds and fidelity "
                        "need them; train with val_fraction > 0")
    scoring = options.scoring or run.cfg.scoring.mode
    steps = options.steps
    if steps is None and run.students():  # the edge default: the fewest steps within the fidelity budget
        steps = default_steps(run.path, run.students(), log)
    pipeline = build_pipeline(run, steps=steps, eta=0.0, mode=scoring, naive=options.naive,
                              start_level=options.start_level)
    steps, size = len(pipeline.timesteps), pipeline.unet.cfg.image_size
    val = load_images([Path(p) for p in run.val_files[:MAX_FIDELITY_NOMINAL]], size)
    fid = fidelity_set(val, seed=run.cfg.sampler.noise_seed)
    test = _test_split(run, size) if options.labelled else None
    torch_runner = TorchRunner(pipeline)
    ref = torch_runner.infer(fid.frames)
    ref_test = torch_runner.infer(test[0]) if test is not None else None
    with tempfile.TemporaryDirectory(prefix="ddad-export-") as tmp:
        work = Path(tmp)
        fp32 = export_onnx(pipeline, work / "fp32.onnx")
        summary = check_graph(fp32, size, steps)
        fp32_outputs = run_onnx(fp32, fid.frames)
        fp32_vs_torch = output_error(*fp32_outputs, ref.maps, ref.scores)
        log(f"FP32 graph of {run.path} ({steps} steps, {scoring.value} scoring): {summary.nodes} nodes, "
            f"{summary.unet_calls} UNet calls unrolled; ONNX Runtime vs torch: map {fp32_vs_torch.map_rel:.2g} of max, "
            f"score {fp32_vs_torch.score_rel:.2g} relative")
        yield Prepared(run, options, pipeline, scoring, steps, size, fid, ref, test, ref_test, work, fp32, summary,
                       fp32_outputs, fp32_vs_torch)


def export_bundle(options: ExportOptions, log: Callable[[str], None] = print) -> Bundle:
    """Run the export procedure for one precision and return the written, verified bundle."""
    # A wrong recipe, sampler or --out fails in one line here, before the FP32 graph is made.
    recipe_for(options.precision, options.recipe)
    run = open_run(options.run)
    check_sampler(options.steps, options.naive, run, choices_last=" or ", start_level=options.start_level)  # first
    if options.out is not None:
        check_out(Path(options.out), options.overwrite, run)
    with prepare_export(options, log) as prep:
        return write_bundle(prep, options, log)


def write_bundle(prep: Prepared, options: ExportOptions, log: Callable[[str], None] = print) -> Bundle:
    """Make the precision's file from a prepared export and write the bundle (see the module docstring).

    `options` may differ from the prepared ones only in precision, recipe, out, thresholds, probe and
    calibration frames, latency runs and overwrite.
    """
    source = ("run", "steps", "naive", "start_level", "scoring", "labelled")
    if any(getattr(options, k) != getattr(prep.options, k) for k in source):
        raise ValueError(f"write_bundle: {source} must match the prepared export")
    recipe = recipe_for(options.precision, options.recipe)
    out = Path(options.out or default_out(prep.run.path, options.precision, prep.steps, prep.scoring))
    target = check_out(out, options.overwrite, prep.run)
    # Made in a sibling folder and moved into place only when whole: a refused export (INT8 beyond its
    # budget, say) leaves no half-made bundle, and --overwrite keeps the old bundle until the new one exists.
    # Whatever fails, the staging folder goes.
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    log(f"writing {options.precision.value} bundle with recipe {recipe.name} → {out}")
    try:
        try:
            staging.mkdir(parents=True)
        except OSError as exc:
            raise DdadError(f"cannot create {staging}: {exc.strerror or exc}; choose another --out") from None
        summary = _write_into(staging, prep, options, recipe, log)
        move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    bundle = read_bundle(out)
    log(f"wrote {out}: {summary}")
    return bundle


def _write_into(out: Path, prep: Prepared, options: ExportOptions, recipe, log: Callable[[str], None]) -> str:
    """The bundle's files in folder `out` (write_bundle's staging folder); returns the summary of its
    thresholds, fidelity and latency for write_bundle's last line."""
    run, size, fid, ref, test, work, fp32 = prep.run, prep.size, prep.fid, prep.ref, prep.test, prep.work, prep.fp32
    calibration = train_frames(run, recipe.int8.calibration_images, size) \
        if options.precision is Precision.INT8 else None
    made = make_precision_file(options.precision, recipe, fp32, out / MODEL_NAME, work, fid, ref.maps, ref.scores,
                               calibration, log)
    check_graph(out / MODEL_NAME, size)
    parser_rules = tensorrt_rules_summary(out / MODEL_NAME, options.tensorrt or profile_tensorrt_versions(), log)

    maps, scores = run_onnx(out / MODEL_NAME, fid.frames)
    err = output_error(maps, scores, ref.maps, ref.scores)
    fidelity = {"reference": "FP32 torch pipeline", "frames": int(len(fid.frames)),
                "nominal_frames": int((fid.labels == 0).sum()), "painted_defect_frames": int(fid.labels.sum()),
                **err.as_dict(), **compare_scores(scores, ref.scores, fid.labels)}
    test_report = test_scores = test_labels = None
    if test is not None:
        test_maps, test_scores = run_onnx(out / MODEL_NAME, test[0])
        test_labels = test[1]
        test_report = test_split_report(test_maps, test_scores, test_labels, prep.ref_test.maps,
                                        prep.ref_test.scores)

    nominal = fid.labels == 0
    thresholds = compute_thresholds(scores[nominal], maps[nominal], options.thresholds, test_labels, test_scores)
    test_stats = test_statistics(thresholds["image"], test_labels, test_scores)
    warning = judge_threshold(thresholds["image"], nominal_statistics(scores[nominal]), test_stats,
                              options.thresholds.margin)
    if warning:
        log(f"warning: {warning}")

    fp32_maps, fp32_scores = prep.fp32_outputs
    probe_idx = _probe_indices(len(fid.frames), options.probe_frames)
    probe_frames, probe_maps, probe_scores = fid.frames[probe_idx], fp32_maps[probe_idx], fp32_scores[probe_idx]
    np.savez(out / PROBE_NAME, frames=probe_frames, maps=probe_maps, scores=probe_scores)
    # Relative to the largest map value over all fidelity frames, the scale the precision was judged on.
    tolerance = {"map_abs": float(recipe.tolerance.map_rel * np.max(np.abs(ref.maps))),
                 "score_rel": float(recipe.tolerance.score_rel), "map_rel": float(recipe.tolerance.map_rel)}
    _check_probe(out / MODEL_NAME, probe_frames, probe_maps, probe_scores, tolerance)
    modes = measure_modes(out / MODEL_NAME, size, fid.frames, fid.labels, ref.maps, ref.scores, recipe, log,
                          test=None if test is None else (test[0], test[1], prep.ref_test.maps, prep.ref_test.scores))
    latency = measure_latency(out / MODEL_NAME, fid.frames[:1], runs=options.latency_runs,
                              int8=options.precision is Precision.INT8)
    fp32_latency = latency if options.precision is Precision.FP32 else \
        measure_latency(fp32, fid.frames[:1], runs=options.latency_runs)
    if options.precision is Precision.FP32 and options.calibration_frames > 0:
        np.savez(out / CALIBRATION_FRAMES_NAME, frames=train_frames(run, options.calibration_frames, size))

    report = {
        "precision": options.precision.value,
        "recipe": recipe.name,
        "fidelity": fidelity,
        "test_split": test_report,
        "fp32_onnxruntime_vs_torch": prep.fp32_vs_torch.as_dict(),
        "latency": {"device": "ONNX Runtime CPUExecutionProvider, this machine, batch 1",
                    "this_file": latency.as_dict(), "fp32_file": fp32_latency.as_dict(),
                    "speedup_vs_fp32": fp32_latency.p50_ms / latency.p50_ms if latency.p50_ms > 0 else None},
        "thresholds": thresholds,
        "execution_modes": modes,
        "precision_details": made.details,
    }
    atomic_write_bytes(out / REPORT_NAME, json.dumps(report, indent=2).encode())
    pipeline, scoring = prep.pipeline, prep.scoring
    manifest = Manifest(
        model_file=MODEL_NAME,
        precision=options.precision.value,
        recipe={"name": recipe.name, "description": recipe.description},
        graph={"image_size": size, "opset": OPSET, "steps": prep.steps, "timesteps": list(pipeline.timesteps),
               "t_prime": pipeline.t_prime, "w": pipeline.w, "eta": 0.0, "naive": bool(options.naive),
               # a naive grid from its own start level (DDIM's grid from t_prime), where one was given
               **({"start_level": options.start_level} if options.start_level is not None else {}),
               "scoring": scoring.value, "backbone": None if scoring is ScoringMode.PIXEL else run.cfg.scoring.backbone,
               "inputs": [INPUT_NAME], "outputs": list(OUTPUT_NAMES), "batch": "dynamic",
               "unet_calls": prep.summary.unet_calls, "nodes": prep.summary.nodes,
               # the central square the graph's score is the maximum of (scoring.crop), where not the whole map
               **({"crop": pipeline.scorer.cfg.crop} if pipeline.scorer.cfg.crop else {})},
        preprocessing={"input": "RGB uint8 (N, S, S, 3), resized to S x S before the graph",
                       "normalisation": "inside the graph: x / 127.5 - 1"},
        source={"run": str(run.path.resolve()), "data": run.cfg.data.root, "category": run.cfg.data.category,
                "exported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        thresholds={k: thresholds[k] for k in ("image", "pixel", "image_f1")},
        thresholds_exported={k: thresholds[k] for k in ("image", "pixel", "image_f1")},  # sealed
        threshold_rule={k: thresholds[k] for k in ("quantile", "margin", "pixel_quantile")},
        nominal_scores=nominal_statistics(scores[nominal]),
        test_scores=test_stats or None,  # absent without a labelled test split
        frame_gate=calibrate_frame_gate(fid.frames[nominal], maps[nominal]),  # on held-out nominal frames
        probe={"file": PROBE_NAME, "frames": int(len(probe_idx))},
        tolerance=tolerance,
        calibration=made.summary,
        tensorrt_rules=parser_rules,
        fidelity={k: fidelity[k] for k in ("map_max_abs", "map_max_rel", "score_rank_correlation", "auroc_drop")},
        # how else the file may run (OpenVINO f32 / bf16), each measured above: offered, refused or unavailable
        execution_modes={name: {"status": m["status"], "reason": m["reason"],
                                "fidelity": None if m["fidelity"] is None else
                                {k: m["fidelity"][k] for k in ("map_max_rel", "score_max_rel",
                                                               "score_rank_correlation", "auroc_drop")}}
                         for name, m in modes.items()},
        latency={"ort_cpu_ms_p50": latency.p50_ms, "fp32_ort_cpu_ms_p50": fp32_latency.p50_ms},
        config=to_dict(run.cfg),
        tools=_tool_versions(),
        calibration_frames={"file": CALIBRATION_FRAMES_NAME} if (out / CALIBRATION_FRAMES_NAME).is_file() else None,
    )
    write_manifest(out, manifest)
    for name in (MANIFEST_NAME, REPORT_NAME):  # written through a private temporary file: make them readable
        os.chmod(out / name, 0o644)
    return (f"image threshold {thresholds['image']:.4g}, score rank correlation "
            f"{fidelity['score_rank_correlation']:.4f}, map error {err.map_rel:.3g} of max, "
            f"ORT CPU {latency.p50_ms:.1f} ms/frame (FP32 file {fp32_latency.p50_ms:.1f})")




def _probe_indices(n: int, count: int) -> np.ndarray:
    """Half nominal, half painted frames (the fidelity set holds nominal frames first)."""
    half = n // 2
    k = max(1, min(count, n))
    nominal = np.arange(0, min(half, (k + 1) // 2))
    painted = np.arange(half, half + min(n - half, k - len(nominal)))
    return np.r_[nominal, painted].astype(int)


def _check_probe(model: Path, frames: np.ndarray, maps: np.ndarray, scores: np.ndarray, tolerance: dict) -> None:
    """The bundle's own file must pass the tolerance it states, on its own probe frames, here."""
    m, s = run_onnx(model, frames)
    map_err = float(np.max(np.abs(m.astype(np.float64) - maps)))
    score_err = float(np.max(np.abs(s.astype(np.float64) - scores) / np.maximum(np.abs(scores), 1e-6)))
    if map_err > tolerance["map_abs"] or score_err > tolerance["score_rel"]:
        raise DdadError(f"the exported file misses its own tolerance on the probe frames (map error {map_err:.3g} > "
                        f"{tolerance['map_abs']:.3g} or score error {score_err:.3g} > {tolerance['score_rel']:g}): "
                        "use a safer recipe (fp16-safe) or another precision")

