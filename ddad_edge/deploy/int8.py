"""INT8 as explicit Q/DQ nodes: quantize an FP32 graph into the file a bundle ships.

ONNX Runtime's `quantize_static` writes the file: QDQ format, signed INT8 activations and weights, both
symmetric (every zero point 0, as TensorRT requires), per-channel weights, biases left in FP32 (TensorRT
dequantizes only INT8 tensors), Q/DQ on the inputs of convolutions and matrix products (TensorRT's recommended
placement; it fuses each pair into the INT8 kernel that reads it) and on the outputs of the recipe's
`quantize_outputs` types (convolutions by default). The output pair is what lets ONNX Runtime on a CPU fuse a
convolution into QLinearConv: without it, every convolution of the file runs in float on weights dequantized
on every call, slower than the FP32 file; TensorRT fuses it into a convolution that writes INT8. Which
tensors float readers take back from the quantizer's pairs is qdq_graph.py's business (`read_float`).
Activation ranges come from nominal training images only, by the recipe's method (min-max, entropy or
percentile), computed once and reused for every retry of the fallback (int8_fallback.py); min-max ranges by
`minmax_ranges`, the same numbers as ONNX Runtime's calibrator in linear time.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ddad_edge.deploy.precision import nodes_of_groups
from ddad_edge.deploy.qdq_graph import read_float
from ddad_edge.deploy.recipes import CalibrationMethod, Int8Recipe
from ddad_edge.errors import missing_package


def constants_to_initializers(src: Path, dst: Path) -> Path:
    """Copy of `src` with every Constant node's tensor moved into the initializers (same values, same names).

    The exporter writes folded weights (a convolution with its batch norm) as Constant nodes; the quantizer
    handles a weight or bias only as an initializer. Returns `dst`.
    """
    import onnx

    model = onnx.load(str(src))
    g = model.graph
    keep = []
    for node in g.node:
        value = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 else None
        if value is not None and value.name == "value" and value.type == onnx.AttributeProto.TENSOR:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(value.t)
            tensor.name = node.output[0]
            g.initializer.append(tensor)
        else:
            keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    onnx.save(model, str(dst))
    return Path(dst)


def quantization_inputs(fp32: Path, work: Path) -> tuple[Path, Path]:
    """(the FP32 graph as the quantizer reads it, work/int8-source.onnx with Constant nodes made initializers;
    the activation ranges' cache, work/int8-ranges.json, emptied: the ranges of this graph are computed anew)."""
    cache = Path(work) / "int8-ranges.json"
    cache.unlink(missing_ok=True)
    return constants_to_initializers(fp32, Path(work) / "int8-source.onnx"), cache


def quantize_targets(model, recipe: Int8Recipe) -> tuple[list[str], list[str]]:
    """(nodes to quantize, nodes of the recipe's op types kept in FP32 by its groups)."""
    kept = set(nodes_of_groups(model, recipe.keep_fp32))
    candidates = [n.name for n in model.graph.node if n.op_type in recipe.op_types]
    return [n for n in candidates if n not in kept], [n for n in candidates if n in kept]


@contextmanager
def quiet_quantizer():
    """ORT's quantizer logs advice at WARNING level through the root logger; keep the export's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def ort_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise missing_package("onnxruntime", "INT8 export", "pip install onnxruntime") from None
    return quantization


def calibration_reader(frames: np.ndarray, batch: int = 1):
    q = ort_quantization()

    class FrameReader(q.CalibrationDataReader):
        """Feeds uint8 frames (N, S, S, 3) to the calibrator in batches."""

        def __init__(self) -> None:
            self._batches = iter([frames[i:i + batch] for i in range(0, len(frames), batch)])

        def get_next(self):
            x = next(self._batches, None)
            return None if x is None else {"frames": np.ascontiguousarray(x)}

    return FrameReader()


def minmax_ranges(src: Path, frames: np.ndarray, op_types: list[str], cache: Path) -> Path:
    """ONNX Runtime's min-max activation ranges of the graph `src` on `frames`, written to `cache` in its
    calibration-cache format (`quantize_static` then reads them instead of calibrating). Returns `cache`.

    The same numbers as its MinMax calibrator, in linear time: the same tensors (its rule: the float inputs
    and outputs, not initializers, of the nodes of `op_types`, on the graph as its loader shape-infers it),
    each reduced by a ReduceMin and a ReduceMax node in a session without graph optimisations, one frame per
    run, merged over frames by nanmin/nanmax as it merges them. Its calibrator places each pair by scanning
    the node list (and the graph's outputs) from the start, so building its graph grows with the square of the
    node count: half a minute of the minute a 10-step graph takes to quantize. Here each pair follows the node
    that makes its tensor, in one pass.
    """
    import onnxruntime as ort
    from onnx import TensorProto, helper
    from onnxruntime.quantization.calibrate import CalibrationMethod as OrtMethod
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    model = load_model_with_shape_infer(Path(src))
    g = model.graph
    infos = {vi.name: vi for vi in g.value_info}
    infos.update({vi.name: vi for vi in g.output})
    infos.update({vi.name: vi for vi in g.input})
    weights = {t.name for t in g.initializer}
    floats = {TensorProto.FLOAT, TensorProto.FLOAT16}
    chosen: dict[str, int] = {}  # tensor → element type, in graph order
    for node in g.node:
        if op_types and node.op_type not in op_types:
            continue
        for name in (*node.input, *node.output):
            info = infos.get(name)
            if name and name not in weights and info is not None and info.type.HasField("tensor_type") \
                    and info.type.tensor_type.elem_type in floats:
                chosen.setdefault(name, info.type.tensor_type.elem_type)

    taken = set(infos) | weights | {o for n in g.node for o in n.output}
    prefix = "ddad_range"
    while any(t.startswith(prefix) for t in taken):  # names of the graph's own stay its own
        prefix += "_"
    reduced = {name: (f"{prefix}_{i}_min", f"{prefix}_{i}_max") for i, name in enumerate(chosen)}

    def reducers(name: str) -> list:
        low, high = reduced[name]
        return [helper.make_node("ReduceMin", [name], [low], keepdims=1, name=low),
                helper.make_node("ReduceMax", [name], [high], keepdims=1, name=high)]

    nodes = [n for vi in g.input if vi.name in reduced for n in reducers(vi.name)]
    for node in g.node:
        nodes.append(node)
        nodes.extend(n for out in node.output if out in reduced for n in reducers(out))
    del g.node[:]
    g.node.extend(nodes)
    for name, (low, high) in reduced.items():
        g.output.extend(helper.make_tensor_value_info(o, chosen[name], None) for o in (low, high))

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = [o for pair in reduced.values() for o in pair]
    runs = [session.run(wanted, {"frames": np.ascontiguousarray(frames[i:i + 1])}) for i in range(len(frames))]
    ranges = {}
    for j, name in enumerate(reduced):
        lows = [run[2 * j].reshape(-1) for run in runs]
        highs = [run[2 * j + 1].reshape(-1) for run in runs]
        ranges[name] = (np.nanmin(lows, axis=0), np.nanmax(highs, axis=0))
    save_tensors_data(TensorsData(OrtMethod.MinMax, ranges), Path(cache))
    return Path(cache)


def calibration_method(recipe: Int8Recipe):
    """ONNX Runtime's calibration method for the recipe's (min-max, entropy or percentile)."""
    q = ort_quantization()
    return {CalibrationMethod.MINMAX: q.CalibrationMethod.MinMax,
            CalibrationMethod.ENTROPY: q.CalibrationMethod.Entropy,
            CalibrationMethod.PERCENTILE: q.CalibrationMethod.Percentile}[recipe.method]


def quantizer_options(recipe: Int8Recipe, types: list[str], outputs: set[str]) -> dict:
    """`quantize_static`'s extra_options for the bundle's file: symmetric activations and weights, FP32
    biases, Q/DQ on the outputs of the `outputs` types only (of the quantized `types`)."""
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
             "OpTypesToExcludeOutputQuantization": [t for t in types if t not in outputs]}
    if recipe.method is CalibrationMethod.PERCENTILE:
        extra["CalibPercentile"] = recipe.percentile
    return extra


def quantize_file(src: Path, dst: Path, calibration: np.ndarray, recipe: Int8Recipe, cache: Path,
                  exclude: list[str]) -> Path:
    """Write the INT8 version of the FP32 graph `src` to `dst`; returns `dst`.

    `src` must hold its weights as initializers (`quantization_inputs`). `cache` holds the activation
    ranges (computed from `calibration` frames on first use, then reused). Q/DQ on the inputs of the
    recipe's op types and on the outputs of its `quantize_outputs` types, S8S8, symmetric, FP32 biases;
    the nodes in `exclude` read float tensors.
    """
    types = list(recipe.op_types)
    outputs = set(recipe.quantize_outputs)
    q = ort_quantization()
    if recipe.method is CalibrationMethod.MINMAX and not Path(cache).is_file():
        minmax_ranges(src, calibration, types, cache)  # its own calibrator's numbers, without its quadratic graph
    with quiet_quantizer():
        q.quantize_static(
            str(src), str(dst), calibration_reader(calibration) if not Path(cache).is_file() else None,
            quant_format=q.QuantFormat.QDQ, op_types_to_quantize=types,
            per_channel=True, activation_type=q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8, calibrate_method=calibration_method(recipe),
            nodes_to_exclude=list(exclude), extra_options=quantizer_options(recipe, types, outputs),
            calibration_cache_path=str(cache))
    read_float(Path(dst), set(exclude), set(types), outputs, recipe.keep_fp32)
    return Path(dst)
