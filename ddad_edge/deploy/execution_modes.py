"""Execution modes: the ways a bundle's one file can run besides ONNX Runtime, each measured at export.

Precision is a property of what runs, not only of the file. OpenVINO runs the same model.onnx in its f32
mode (the file's own arithmetic; an INT8 Q/DQ file as integer kernels) or, on a CPU with AVX512_BF16 or
AMX, in bf16 (every float layer with an 8-bit mantissa). Each mode is measured here on the export's fidelity
frames against the FP32 torch pipeline, with the same report as the file itself (map error, score error,
rank correlation, AUROC drop), and judged against its recipe's budget; where the run has a labelled test split,
each measured mode is also run on it, so a mode's own image AUROC (with its interval and per-image scores, as
the file's) can be set beside the file's (the benchmark matrix's OpenVINO rows):

- openvino-f32: the file's own tolerance (recipe `tolerance`), since it promises the file's arithmetic;
- openvino-bf16: the recipe's `bf16` budget (map and score error, rank correlation), since BF16 is a lower
  precision like INT8.

A mode is `offered` (within budget), `refused` (beyond it: one line at export, with the numbers) or
`unavailable` (not measurable on the exporting machine: OpenVINO absent, or a CPU without BF16). The device
runs only offered modes unless told otherwise (runtime/openvino_runner.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from ddad_edge.deploy.fidelity import compare_scores, output_error
from ddad_edge.errors import DdadError

OPENVINO_MODES = ("f32", "bf16")


def _run(graph, frames: np.ndarray, batch: int = 8) -> tuple[np.ndarray, np.ndarray]:
    maps, scores = [], []
    for i in range(0, len(frames), batch):
        out = graph.infer(np.ascontiguousarray(frames[i:i + batch]))
        maps.append(out.maps)
        scores.append(out.scores)
    return np.concatenate(maps), np.concatenate(scores)


def _budget(recipe, precision: str) -> dict[str, float]:
    if precision == "bf16":
        b = recipe.bf16
        return {"map_rel": b.map_rel, "score_rel": b.score_rel, "min_rank_correlation": b.min_rank_correlation}
    return {"map_rel": recipe.tolerance.map_rel, "score_rel": recipe.tolerance.score_rel}


def _verdict(fidelity: dict[str, Any], budget: dict[str, float]) -> str | None:
    """The first budget line the measured fidelity breaks, or None."""
    if not fidelity["map_max_rel"] <= budget["map_rel"]:
        return f"map error {fidelity['map_max_rel']:.3g} of max > budget {budget['map_rel']:g}"
    if not fidelity["score_max_rel"] <= budget["score_rel"]:
        return f"score error {fidelity['score_max_rel']:.3g} > budget {budget['score_rel']:g}"
    floor = budget.get("min_rank_correlation")
    if floor is not None and not fidelity["score_rank_correlation"] >= floor:
        return f"score rank correlation {fidelity['score_rank_correlation']:.4f} < budget {floor:g}"
    return None


def test_split_report(maps: np.ndarray, scores: np.ndarray, labels: np.ndarray, ref_maps: np.ndarray,
                      ref_scores: np.ndarray) -> dict[str, Any]:
    """A report's `test_split`: error against the FP32 torch pipeline, both AUROCs with their intervals, and
    the labels and scores per image in list_test order (what pairs two bundles of one run: the matrix's AUROC
    drop against the teacher, with a paired interval)."""
    err = output_error(maps, scores, ref_maps, ref_scores)
    return {"frames": int(len(labels)), "defective": int(np.sum(labels)), **err.as_dict(),
            **compare_scores(scores, ref_scores, labels),
            "labels": [int(v) for v in labels], "scores": [float(v) for v in scores]}


def measure_modes(model: Path, image_size: int, frames: np.ndarray, labels: np.ndarray, ref_maps: np.ndarray,
                  ref_scores: np.ndarray, recipe, log: Callable[[str], None] = print,
                  modes: tuple[str, ...] = OPENVINO_MODES,
                  test: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
                  ) -> dict[str, dict[str, Any]]:
    """Measure each OpenVINO mode of `model` on `frames` (N, S, S, 3) uint8 against the FP32 references
    (maps (N, 1, S, S), scores (N,)); returns {mode name: {status, reason, budget, fidelity, test_split}}.
    `test`: the labelled test split (frames, labels, FP32 reference maps, scores), run in each mode that
    compiles (`test_split`: None without it)."""
    from ddad_edge.runtime.openvino_runner import CompiledGraph, mode_name

    results: dict[str, dict[str, Any]] = {}
    for precision in modes:
        name, budget = mode_name(precision), _budget(recipe, precision)
        entry: dict[str, Any] = {"status": "unavailable", "reason": "", "budget": budget, "fidelity": None,
                                 "test_split": None}
        try:
            graph = CompiledGraph(model, image_size, "CPU", precision, cache_dir="")
        except DdadError as exc:  # OpenVINO absent, or a CPU without BF16: not measurable here
            entry["reason"] = str(exc)
        else:
            try:
                maps, scores = _run(graph, frames)
                if test is not None:
                    t_maps, t_scores = _run(graph, test[0])
                    entry["test_split"] = test_split_report(t_maps, t_scores, test[1], test[2], test[3])
            finally:
                graph.close()
            err = output_error(maps, scores, ref_maps, ref_scores)
            fidelity = {**err.as_dict(), **compare_scores(scores, ref_scores, labels),
                        "compiled_precision": graph.compiled_precision}
            broken = _verdict(fidelity, budget)
            entry.update(status="refused" if broken else "offered", reason=broken or "within budget",
                         fidelity=fidelity)
        results[name] = entry
        if entry["status"] == "refused":
            log(f"{name}: refused, beyond its budget: {entry['reason']}; the bundle will not offer it")
        elif entry["status"] == "offered":
            f = entry["fidelity"]
            log(f"{name}: offered (map error {f['map_max_rel']:.3g} of max, score rank correlation "
                f"{f['score_rank_correlation']:.4f})")
        else:
            log(f"{name}: not measured here: {entry['reason']}")
    return results
