"""What is actually fast in ONNX Runtime on this CPU: INT8 variants timed against the FP32 file.

The bundle's INT8 file is made for TensorRT and ONNX Runtime both (Q/DQ, S8S8, symmetric, FP32 biases,
Q/DQ on convolution outputs so that ONNX Runtime fuses QLinearConv). On a CPU, every op left in float
between Q/DQ pairs (GroupNorm, SiLU, attention) still pays a dequantize and a quantize. So this study times,
on the same frame and the same machine, variants a CPU user could pick instead, each with its accuracy
on the fidelity frames; the numbers go to report.json as measured, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.deploy.fidelity import FidelitySet, measure_latency, output_error, rank_correlation, run_onnx
from ddad_edge.deploy.int8 import quantize_file
from ddad_edge.deploy.recipes import Int8Recipe


@dataclass(frozen=True)
class Variant:
    """One way to run the graph on a CPU."""

    name: str
    description: str
    tensorrt_compatible: bool


VARIANTS = (
    Variant("fp32", "the FP32 file", True),
    Variant("fp32-basic-opt", "the FP32 file, ORT basic graph optimisation only", True),
    Variant("int8-qdq-s8s8", "the bundle's INT8 file: Q/DQ, S8S8, FP32 bias", True),
    Variant("int8-qdq-s8s8-inputs-only", "Q/DQ S8S8 on op inputs only: ORT runs the convolutions in float", True),
    Variant("int8-qdq-s8s8-basic-opt", "the bundle's INT8 file, ORT basic graph optimisation only", True),
    Variant("int8-qdq-s8s8-int32-bias", "Q/DQ S8S8, on all op outputs, INT32 biases: ORT's QLinearConv layout",
            False),
    Variant("int8-qdq-u8s8", "Q/DQ as above with UINT8 activations (asymmetric): x86's fast path", False),
    Variant("int8-qoperator-u8s8", "QOperator format (QLinearConv ops), UINT8 activations", False),
    Variant("int8-qdq-s8s8-conv-only", "Q/DQ S8S8 on convolutions only (Gemm/MatMul in float)", True),
)


def study_cpu_variants(fp32: Path, source: Path, int8_file: Path, work: Path, calibration: np.ndarray,
                       recipe: Int8Recipe, exclude: list[str], fid: FidelitySet, ref_maps: np.ndarray,
                       ref_scores: np.ndarray, runs: int = 10, log: Callable[[str], None] = print) -> list[dict]:
    """Time each variant on one frame (ORT CPU, single-frame calls after warm-up) and score it on `fid`.

    `source`: the FP32 graph as the bundle's quantization read it (int8.constants_to_initializers).
    `exclude`: the nodes the bundle's file keeps in FP32, kept in FP32 in every variant too. The activation
    ranges cached in `work` by the bundle's quantization are reused. Returns one dict per variant (with
    "error" instead of timings where the quantizer could not make it).
    """
    cache = Path(work) / "int8-ranges.json"
    frame = fid.frames[:1]
    rows = []
    for v in VARIANTS:
        try:
            path, optimization = _variant_file(v.name, fp32, source, int8_file, work, calibration, recipe, cache,
                                               exclude)
        except Exception as exc:  # noqa: BLE001 - a variant the quantizer cannot make is a finding, not a failure
            rows.append({"variant": v.name, "description": v.description, "error": str(exc).splitlines()[0][:200]})
            log(f"  cpu study {v.name:<26} not made: {rows[-1]['error']}")
            continue
        latency = measure_latency(path, frame, runs=runs, optimization=optimization,
                                  int8=v.name.startswith("int8"))
        maps, scores = run_onnx(path, fid.frames)
        err = output_error(maps, scores, ref_maps, ref_scores)
        rows.append({"variant": v.name, "description": v.description, "tensorrt_compatible": v.tensorrt_compatible,
                     "ort_cpu_ms_p50": latency.p50_ms, "ort_cpu_ms_p90": latency.p90_ms, "runs": latency.runs,
                     "optimization": optimization, "score_rank_correlation": rank_correlation(scores, ref_scores),
                     "map_max_rel": err.map_rel, "score_max_rel": err.score_rel})
        log(f"  cpu study {v.name:<26} {latency.p50_ms:9.2f} ms/frame  rank corr "
            f"{rows[-1]['score_rank_correlation']:.4f}")
    fp32_ms = rows[0]["ort_cpu_ms_p50"]
    for row in rows:
        if "ort_cpu_ms_p50" in row:
            row["speedup_vs_fp32"] = fp32_ms / row["ort_cpu_ms_p50"] if row["ort_cpu_ms_p50"] > 0 else None
    return rows


def _variant_file(name: str, fp32: Path, source: Path, int8_file: Path, work: Path, calibration: np.ndarray,
                  recipe: Int8Recipe, cache: Path, exclude: list[str]) -> tuple[Path, str]:
    """The ONNX file and ORT optimisation level of a variant (made in `work` when needed)."""
    if name == "fp32":
        return fp32, "all"
    if name == "fp32-basic-opt":
        return fp32, "basic"
    if name == "int8-qdq-s8s8":
        return int8_file, "all"
    if name == "int8-qdq-s8s8-basic-opt":
        return int8_file, "basic"
    dst = Path(work) / f"{name}.onnx"
    every = recipe.op_types  # Q/DQ on the outputs of every quantized op
    if name == "int8-qdq-s8s8-inputs-only":
        quantize_file(source, dst, calibration, recipe, cache, exclude, output_types=())
    elif name == "int8-qdq-s8s8-int32-bias":
        quantize_file(source, dst, calibration, recipe, cache, exclude, quantize_bias=True, output_types=every)
    elif name == "int8-qdq-u8s8":
        quantize_file(source, dst, calibration, recipe, cache, exclude, activation_unsigned=True, quantize_bias=True,
                      output_types=every)
    elif name == "int8-qoperator-u8s8":
        quantize_file(source, dst, calibration, recipe, cache, exclude, activation_unsigned=True, qoperator=True,
                      output_types=every)
    elif name == "int8-qdq-s8s8-conv-only":
        quantize_file(source, dst, calibration, recipe, cache, exclude, op_types=("Conv",))
    else:  # pragma: no cover - VARIANTS and this function are kept together
        raise ValueError(name)
    return dst, "all"
