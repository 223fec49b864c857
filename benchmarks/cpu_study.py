"""What is actually fast in ONNX Runtime on this CPU: INT8 variants timed against the FP32 file.

    python benchmarks/cpu_study.py --run runs/widget [--steps 1] [--recipe int8] [--out cpu-study.json]

The bundle's INT8 file is made for TensorRT and ONNX Runtime both (Q/DQ, S8S8, symmetric, FP32 biases,
Q/DQ on convolution outputs so that ONNX Runtime fuses QLinearConv). On a CPU, every op left in float
between Q/DQ pairs (GroupNorm, SiLU, attention) still pays a dequantize and a quantize. So this study times,
on the same frame and the same machine, variants a CPU user could pick instead, each with its accuracy
on the fidelity frames, measured, never assumed. It prepares the run's export as `ddad-edge export
--precision int8` does (the FP32 graph, held-out frames, torch references, nominal calibration frames),
makes the bundle's INT8 file with its fallback, then the variants beside it; nothing is written into a
bundle. A study, not a step of the export: the variants it makes other than the bundle's own file are
quantized here, with options the export never uses.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository's ddad_edge, when run as a script

import numpy as np  # noqa: E402

from ddad_edge.deploy.fidelity import FidelitySet, measure_latency, output_error, rank_correlation, run_onnx  # noqa: E402
from ddad_edge.deploy.int8 import (  # noqa: E402
    calibration_method,
    calibration_reader,
    ort_quantization,
    quantizer_options,
    quiet_quantizer,
)
from ddad_edge.deploy.qdq_graph import read_float  # noqa: E402
from ddad_edge.deploy.recipes import Int8Recipe  # noqa: E402


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

    `source`: the FP32 graph as the bundle's quantization read it (deploy.int8.quantization_inputs).
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


def quantize_variant(src: Path, dst: Path, calibration: np.ndarray, recipe: Int8Recipe, cache: Path,
                     exclude: list[str], activation_unsigned: bool = False, qoperator: bool = False,
                     op_types: tuple[str, ...] | None = None, quantize_bias: bool = False,
                     output_types: tuple[str, ...] | None = None) -> Path:
    """`deploy.int8.quantize_file` with the options a CPU user could change; returns `dst`.

    With every option at its default this writes the bundle's file. `activation_unsigned`: UINT8
    activations (asymmetric, x86's fast path); `qoperator`: QLinearConv ops instead of Q/DQ pairs;
    `quantize_bias`: INT32 biases; `op_types`, `output_types` (None: the recipe's): which ops get Q/DQ on
    their inputs and outputs. Float readers are given their float tensors back as in the bundle's file.
    """
    types = list(op_types if op_types is not None else recipe.op_types)
    outputs = set(output_types if output_types is not None else recipe.quantize_outputs)
    q = ort_quantization()
    extra = {**quantizer_options(recipe, types, outputs), "ActivationSymmetric": not activation_unsigned,
             "QuantizeBias": quantize_bias}
    with quiet_quantizer():
        q.quantize_static(
            str(src), str(dst), calibration_reader(calibration) if not Path(cache).is_file() else None,
            quant_format=q.QuantFormat.QOperator if qoperator else q.QuantFormat.QDQ,
            op_types_to_quantize=types,
            per_channel=True, activation_type=q.QuantType.QUInt8 if activation_unsigned else q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8, calibrate_method=calibration_method(recipe),
            nodes_to_exclude=list(exclude), extra_options=extra, calibration_cache_path=str(cache))
    if not qoperator:
        read_float(Path(dst), set(exclude), set(types), outputs, recipe.keep_fp32)
    return Path(dst)


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
        quantize_variant(source, dst, calibration, recipe, cache, exclude, output_types=())
    elif name == "int8-qdq-s8s8-int32-bias":
        quantize_variant(source, dst, calibration, recipe, cache, exclude, quantize_bias=True, output_types=every)
    elif name == "int8-qdq-u8s8":
        quantize_variant(source, dst, calibration, recipe, cache, exclude, activation_unsigned=True,
                         quantize_bias=True, output_types=every)
    elif name == "int8-qoperator-u8s8":
        quantize_variant(source, dst, calibration, recipe, cache, exclude, activation_unsigned=True, qoperator=True,
                         output_types=every)
    elif name == "int8-qdq-s8s8-conv-only":
        quantize_variant(source, dst, calibration, recipe, cache, exclude, op_types=("Conv",))
    else:  # pragma: no cover - VARIANTS and this function are kept together
        raise ValueError(name)
    return dst, "all"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a trained run folder, as `ddad-edge export --run`")
    p.add_argument("--steps", type=int, default=None, help="the sampler (default: the fewest-step student)")
    p.add_argument("--recipe", default=None, help="INT8 recipe name or file (default: int8)")
    p.add_argument("--runs", type=int, default=10, help="timed single-frame calls per variant")
    p.add_argument("--out", type=Path, default=None, help="write the rows here as JSON")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ddad_edge.bundle import Precision
    from ddad_edge.deploy.bundle_export import ExportOptions, prepare_export, train_frames
    from ddad_edge.deploy.int8_fallback import quantize_int8
    from ddad_edge.deploy.recipes import recipe_for

    a = parse_args(argv)
    recipe = recipe_for(Precision.INT8, a.recipe)
    options = ExportOptions(run=a.run, precision=Precision.INT8, recipe=a.recipe, steps=a.steps,
                            latency_runs=a.runs, labelled=False)
    with prepare_export(options) as prep, tempfile.TemporaryDirectory(prefix="ddad-cpu-study-") as tmp:
        work = Path(tmp)
        calibration = train_frames(prep.run, recipe.int8.calibration_images, prep.size)
        made = quantize_int8(prep.fp32, work / "int8.onnx", calibration, prep.fid, prep.ref.maps, prep.ref.scores,
                             recipe.int8, recipe.tolerance, work)
        rows = study_cpu_variants(prep.fp32, made.source, made.path, work, calibration, recipe.int8,
                                  made.kept_by_recipe + made.fallback_nodes, prep.fid, prep.ref.maps,
                                  prep.ref.scores, runs=a.runs)
    print("| variant | ORT CPU ms p50 | speed-up vs FP32 | score rank corr | map error of max | TensorRT |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['variant']} | not made: {r['error']} | | | | |")
            continue
        speedup = "" if r.get("speedup_vs_fp32") is None else f"{r['speedup_vs_fp32']:.2f}x"
        print(f"| {r['variant']} | {r['ort_cpu_ms_p50']:.2f} | {speedup} | {r['score_rank_correlation']:.4f} | "
              f"{r['map_max_rel']:.3g} | {'yes' if r['tensorrt_compatible'] else 'no'} |")
    if a.out is not None:
        a.out.write_text(json.dumps({"run": str(a.run), "steps": prep.steps, "recipe": recipe.name,
                                     "variants": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
