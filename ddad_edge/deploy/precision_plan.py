"""Make a bundle's model file at its precision from the FP32 graph, and say how it was made.

FP32: the graph as exported. FP16: each NodeGroup's FP16 error is measured alone (emulated rounding,
see precision.emulate_fp16); groups over the recipe's limit, and the recipe's always-FP32 groups, stay in
FP32; the emulated error of the final mix must fit the recipe's tolerance. INT8: Q/DQ with the
accuracy-guided fallback (int8_fallback.py), its zero points checked (qdq_graph.py). Which INT8 variants
run fastest in ONNX Runtime on a CPU is a study, not a step of the export: benchmarks/cpu_study.py.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.bundle import Precision
from ddad_edge.deploy.fidelity import FidelitySet
from ddad_edge.deploy.int8_fallback import quantize_int8
from ddad_edge.deploy.precision import (
    NodeGroup,
    convert_fp16,
    emulated_error,
    group_sizes,
    measure_fp16_groups,
    nodes_of_groups,
)
from ddad_edge.deploy.qdq_graph import check_symmetric
from ddad_edge.deploy.recipes import Recipe, Sensitivity
from ddad_edge.errors import DdadError

FP16_MEASURE_FRAMES = 4  # frames for the per-group FP16 measurement (half nominal, half painted)


@dataclass
class PrecisionFile:
    """The made file's story: `details` for report.json, `summary` for the manifest."""

    details: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)


def make_precision_file(precision: Precision, recipe: Recipe, fp32: Path, dst: Path, work: Path, fid: FidelitySet,
                        ref_maps: np.ndarray, ref_scores: np.ndarray, calibration: np.ndarray | None,
                        log: Callable[[str], None] = print) -> PrecisionFile:
    """Write `dst` at `precision` from the FP32 file `fp32`; `ref_*` are the FP32 torch outputs on fid.frames."""
    if precision is Precision.FP32:
        shutil.copyfile(fp32, dst)
        return PrecisionFile({"kind": "fp32"}, {"method": "none"})
    if precision is Precision.FP16:
        return _make_fp16(recipe, fp32, dst, work, fid, ref_maps, ref_scores, log)
    if calibration is None:
        raise ValueError("INT8 needs calibration frames")
    return _make_int8(recipe, fp32, dst, work, fid, ref_maps, ref_scores, calibration, log)


def _measure_subset(fid: FidelitySet) -> np.ndarray:
    n, half = len(fid.frames), len(fid.frames) // 2
    k = FP16_MEASURE_FRAMES // 2
    return np.r_[np.arange(min(k, half)), np.arange(half, min(n, half + k))].astype(int)


def _make_fp16(recipe: Recipe, fp32: Path, dst: Path, work: Path, fid: FidelitySet, ref_maps: np.ndarray,
               ref_scores: np.ndarray, log: Callable[[str], None]) -> PrecisionFile:
    import onnx

    cfg = recipe.fp16
    idx = _measure_subset(fid)
    measured = measure_fp16_groups(fp32, work, fid.frames[idx], ref_maps[idx], ref_scores[idx], cfg.measure)
    # normalization always: the FP16 file keeps InstanceNormalization in FP32 (precision.ALWAYS_FP32_OPS, for
    # TensorRT 8.6's plugin), so the emulated error below is measured on the file that is written
    kept = [g for g in NodeGroup if g is NodeGroup.NORMALIZATION or g.value in cfg.keep_fp32
            or (g.value in measured and measured[g.value].map_rel > cfg.keep_if_map_rel_above)]
    labels = {"rest": "ungrouped nodes", "all": "whole graph"}
    for g, e in measured.items():
        log(f"  fp16 {labels.get(g, g + ' alone'):<22} map error {e.map_rel:.3g} of max, score {e.score_rel:.3g}"
            f"{'  → kept FP32' if g in {k.value for k in kept} else ''}")
    model = onnx.load(str(fp32))
    keep_nodes = nodes_of_groups(model, kept)
    convert_fp16(fp32, dst, keep_nodes)
    final = emulated_error(fp32, work, keep_nodes, fid.frames, ref_maps, ref_scores)
    log(f"  fp16 file (emulated FP16 rounding): map error {final.map_rel:.3g} of max, score {final.score_rel:.3g}")
    if final.map_rel > recipe.tolerance.map_rel or final.score_rel > recipe.tolerance.score_rel:
        raise DdadError(f"FP16 with {', '.join(g.value for g in kept) or 'nothing'} kept in FP32 misses recipe "
                        f"'{recipe.name}' (emulated map error {final.map_rel:.3g} > {recipe.tolerance.map_rel:g} or "
                        f"score error {final.score_rel:.3g} > {recipe.tolerance.score_rel:g}): use --recipe fp16-safe")
    details = {
        "kind": "fp16",
        "converter": "onnxruntime.transformers.float16 (float32 inputs/outputs kept), FP16 round trips between "
                     "FP32 nodes removed",
        "group_nodes": group_sizes(model),
        "group_error_alone": {g: e.as_dict() for g, e in measured.items()},
        "group_error_frames": int(len(idx)),
        "error_model": "emulated: each FP16 node's inputs and outputs rounded to FP16, arithmetic in FP32 (FP16 "
                       "storage, FP32 accumulation, as on a GPU); ONNX Runtime on a CPU runs ops without FP16 "
                       "kernels in FP32, so the file's own CPU error is smaller than on a device",
        "kept_fp32_groups": [g.value for g in kept],
        "kept_fp32_nodes": len(keep_nodes),
        "keep_if_map_rel_above": cfg.keep_if_map_rel_above,
        "emulated_fp16_error": final.as_dict(),
    }
    summary = {"method": "fp16", "kept_fp32_groups": [g.value for g in kept],
               "emulated_map_max_rel": final.map_rel, "emulated_score_max_rel": final.score_rel}
    return PrecisionFile(details, summary)


# what a node's number in the report's most_sensitive_nodes is, per int8.sensitivity
_SENSITIVITY_MEASURE = {Sensitivity.OUTPUT: "output_error_alone_of_budget", Sensitivity.LOCAL: "added_relative_error"}


def _make_int8(recipe: Recipe, fp32: Path, dst: Path, work: Path, fid: FidelitySet, ref_maps: np.ndarray,
               ref_scores: np.ndarray, calibration: np.ndarray, log: Callable[[str], None]) -> PrecisionFile:
    cfg = recipe.int8
    result = quantize_int8(fp32, dst, calibration, fid, ref_maps, ref_scores, cfg, recipe.tolerance, work, log)
    zero_points = check_symmetric(dst)
    details = {
        "kind": "int8",
        "format": "QDQ, INT8 activations and weights, symmetric (zero points 0), per-channel weights, FP32 biases; "
                  "Q/DQ on the inputs of op_types and on the outputs of quantize_outputs",
        "method": cfg.method.value,
        "percentile": cfg.percentile if cfg.method.value == "percentile" else None,
        "calibration_images": int(len(calibration)),
        "calibration_source": "nominal training images (train split of train/good), never test images",
        "op_types": list(cfg.op_types),
        "quantize_outputs": list(cfg.quantize_outputs),
        "quantized_nodes": len(result.quantized_nodes) - len(result.fallback_nodes),
        "candidate_nodes": len(result.quantized_nodes),
        "kept_fp32_by_recipe": result.kept_by_recipe,
        "fallback_nodes": result.fallback_nodes,
        "attempts": [a.as_dict() for a in result.attempts],
        "sensitivity": cfg.sensitivity.value,
        "most_sensitive_nodes": [{"node": n, _SENSITIVITY_MEASURE[cfg.sensitivity]: e}
                                 for n, e in result.sensitivity[:20]],
        "min_rank_correlation": cfg.min_rank_correlation,
        "zero_points_checked": zero_points,
    }
    summary = {"method": f"int8-{cfg.method.value}", "calibration_images": int(len(calibration)),
               "fallback_nodes": len(result.fallback_nodes), "attempts": len(result.attempts)}
    return PrecisionFile(details, summary)
