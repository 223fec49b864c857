"""The INT8 file a bundle ships: quantized, judged, and made again with more nodes in FP32 until it fits.

The file is judged on held-out nominal and painted-defect images against the FP32 reference. If the score
rank correlation falls below the recipe's minimum, or the map or score error passes the recipe's tolerance,
the quantized nodes are ranked (int8_sensitivity.py, by the recipe's `sensitivity`), and the worst are kept
in FP32 for the next try, together with every node that shares their weights (the same UNet convolution in
each unrolled step); the number kept doubles each round. The report lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.deploy.fidelity import FidelitySet, output_error, rank_correlation, run_onnx
from ddad_edge.deploy.int8 import quantization_inputs, quantize_file, quantize_targets
from ddad_edge.deploy.int8_sensitivity import rank_by_output_error, rank_sensitive_nodes, weight_groups
from ddad_edge.deploy.recipes import Int8Recipe, Sensitivity, Tolerance
from ddad_edge.errors import DdadError


@dataclass
class Attempt:
    """One quantization try and how it scored against the FP32 reference."""

    excluded: list[str]  # nodes kept in FP32 by the fallback (on top of the recipe's groups)
    rank_correlation: float
    map_rel: float
    score_rel: float
    met: bool

    def as_dict(self) -> dict:
        return {"excluded_nodes": len(self.excluded), "score_rank_correlation": self.rank_correlation,
                "map_max_rel": self.map_rel, "score_max_rel": self.score_rel, "budget_met": self.met}


@dataclass
class Int8Result:
    """What `quantize_int8` made."""

    path: Path
    quantized_nodes: list[str]
    kept_by_recipe: list[str]  # op_types nodes in the recipe's keep_fp32 groups
    fallback_nodes: list[str]  # kept in FP32 by the fallback, most sensitive first
    attempts: list[Attempt] = field(default_factory=list)
    sensitivity: list[tuple[str, float]] = field(default_factory=list)  # (node, recipe's measure), worst first
    source: Path | None = None  # the FP32 graph as quantized (Constant nodes made initializers)


def quantize_first_try(fp32: Path, dst: Path, calibration: np.ndarray, recipe: Int8Recipe, work: Path) -> Path:
    """The file `quantize_int8` writes on its first try, without judging it (no fallback): every node of the
    recipe's op types quantized but those in its keep_fp32 groups. Benchmarks time this file. Returns `dst`.
    """
    import onnx

    _, kept = quantize_targets(onnx.load(str(fp32)), recipe)
    source, cache = quantization_inputs(fp32, work)
    return quantize_file(source, dst, calibration, recipe, cache, kept)


def judge(path: Path, fid: FidelitySet, ref_maps: np.ndarray, ref_scores: np.ndarray, min_rank: float,
          tolerance: Tolerance, excluded: list[str]) -> Attempt:
    """Score an INT8 file on the fidelity frames against the FP32 reference."""
    maps, scores = run_onnx(path, fid.frames)
    err = output_error(maps, scores, ref_maps, ref_scores)
    rank = rank_correlation(scores, ref_scores)
    met = rank >= min_rank and err.map_rel <= tolerance.map_rel and err.score_rel <= tolerance.score_rel
    return Attempt(list(excluded), rank, err.map_rel, err.score_rel, bool(met))


def missed(attempt: Attempt, min_rank: float, tolerance: Tolerance) -> str:
    """The parts of the budget an attempt missed, e.g. `map error 0.0944 of max > 0.05`; judge's test."""
    a, t = attempt, tolerance
    parts = [(a.rank_correlation < min_rank, f"score rank correlation {a.rank_correlation:.3f} < {min_rank:g}"),
             (a.map_rel > t.map_rel, f"map error {a.map_rel:.3g} of max > {t.map_rel:g}"),
             (a.score_rel > t.score_rel, f"score error {a.score_rel:.3g} > {t.score_rel:g}")]
    return ", ".join(text for miss, text in parts if miss) or "met"


def quantize_int8(fp32: Path, dst: Path, calibration: np.ndarray, fid: FidelitySet, ref_maps: np.ndarray,
                  ref_scores: np.ndarray, recipe: Int8Recipe, tolerance: Tolerance, work: Path,
                  log: Callable[[str], None] = print) -> Int8Result:
    """Make the INT8 Q/DQ file of `fp32` at `dst`, falling back until the recipe's budget is met.

    calibration: nominal training frames (N, S, S, 3) uint8; fid: held-out frames with labels;
    ref_maps/ref_scores: the FP32 reference outputs on fid.frames. Raises DdadError when every round misses.
    """
    import onnx

    model = onnx.load(str(fp32))
    targets, kept = quantize_targets(model, recipe)
    source, cache = quantization_inputs(fp32, work)
    siblings = weight_groups(onnx.load(str(source)), targets)
    result = Int8Result(Path(dst), targets, kept, [], source=source)
    excluded: list[str] = []
    for round_ in range(recipe.fallback_rounds + 1):
        quantize_file(source, dst, calibration, recipe, cache, kept + excluded)
        attempt = judge(dst, fid, ref_maps, ref_scores, recipe.min_rank_correlation, tolerance, excluded)
        result.attempts.append(attempt)
        log(f"int8 try {round_ + 1}: {len(targets) - len(excluded)} of {len(targets)} nodes quantized, "
            f"score rank correlation {attempt.rank_correlation:.4f}, map error {attempt.map_rel:.3g} of max, "
            f"score error {attempt.score_rel:.3g}{'' if attempt.met else ' (budget missed)'}")
        if attempt.met:
            result.fallback_nodes = list(excluded)
            break
        if round_ == recipe.fallback_rounds:
            raise DdadError(
                f"INT8 missed the recipe's budget after {recipe.fallback_rounds} fallback rounds "
                f"({missed(attempt, recipe.min_rank_correlation, tolerance)}): raise int8.fallback_rounds, "
                "try another recipe (int8-entropy, int8-percentile), or export fp16")
        if not result.sensitivity:
            probe = fid.frames[np.r_[0:min(2, len(fid.frames) // 2), len(fid.frames) - 2:len(fid.frames)]]
            if recipe.sensitivity is Sensitivity.OUTPUT:
                result.sensitivity = rank_by_output_error(fp32, dst, source, targets, siblings, probe, tolerance,
                                                          log)
            else:
                result.sensitivity = rank_sensitive_nodes(fp32, dst, probe, targets)
        n = min(len(targets), math.ceil(recipe.fallback_fraction * len(targets) * 2 ** round_))
        excluded = _with_weight_siblings([name for name, _ in result.sensitivity[:n]], siblings)
    return result


def _with_weight_siblings(names: list[str], siblings: dict[str, list[str]]) -> list[str]:
    """`names` plus every node sharing a weight with one of them, in order, without repeats."""
    out: dict[str, None] = {}
    for name in names:
        for sibling in siblings.get(name, [name]):
            out[sibling] = None
    return list(out)
