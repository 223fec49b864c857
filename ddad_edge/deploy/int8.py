"""INT8 as explicit Q/DQ nodes, calibrated on nominal images, with an accuracy-guided fallback.

ONNX Runtime's `quantize_static` writes the file: QDQ format, signed INT8 activations and weights, both
symmetric (every zero point 0, as TensorRT requires), per-channel weights, biases left in FP32 (TensorRT
dequantizes only INT8 tensors), Q/DQ on the inputs of convolutions and matrix products (TensorRT's recommended
placement; it fuses each pair into the INT8 kernel that reads it) and on the outputs of the recipe's
`quantize_outputs` types (convolutions by default). The output pair is what lets ONNX Runtime on a CPU fuse a
convolution into QLinearConv: without it, every convolution of the file runs in float on weights dequantized
on every call, slower than the FP32 file; TensorRT fuses it into a convolution that writes INT8. A node kept
in FP32 (by the recipe's groups or by the fallback) reads its input unquantized, never a dequantized copy
(what it reads may still carry the output rounding of quantized convolutions further up), and the float
arithmetic between the last convolutions (and the extractor's feature maps) and the map and score reads float
tensors: the UNet's prediction is not rounded to INT8 on its way to the map, and no graph output is written by
a Q/DQ pair. A tensor rounded for a convolution's input is rounded for that convolution alone: the float ops
beside it (the GroupNorm and the shape arithmetic that read the UNet's skip concatenation with its 1x1
convolution) read it unrounded, and ONNX Runtime fuses the convolution, which it does not while the Dequantize
node has other readers. Activation ranges come from nominal training images only, by the recipe's method
(min-max, entropy or percentile), computed once and reused for every retry.

Fallback: the file is judged on held-out nominal and painted-defect images against the FP32 reference.
If the score rank correlation falls below the recipe's minimum, or the map or score error passes the
recipe's tolerance, the quantized nodes are ranked, and the worst are kept in FP32 for the next try,
together with every node that shares their weights (the same UNet convolution in each unrolled step); the
number kept doubles each round. The report lists them. The recipe's `sensitivity` says how they are ranked:
  output  each weight group quantized alone, on a few frames: its error in the map and the score, as a
          fraction of the tolerance. It measures what is judged, so a node whose small rounding reaches
          the map unattenuated (the UNet's last convolutions) is found. One file serves every group: the
          first try's, with each rounding behind a switch (`switchable`), run once per group.
  local   the relative error each node adds to its own output (after its own output rounding, minus that
          of its input, FP32 vs Q/DQ), from one run of the file: fast, but blind to how much of a node's
          error reaches the map (on a 1-step student it ranked the UNet's output convolution 53rd of 62,
          though that node alone used 2.7 times the map budget).
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ddad_edge.deploy.fidelity import FidelitySet, output_error, rank_correlation, run_onnx
from ddad_edge.deploy.precision import BACKBONE, nodes_of_groups
from ddad_edge.deploy.recipes import CalibrationMethod, Int8Recipe, Sensitivity, Tolerance
from ddad_edge.errors import DdadError, missing_package
from ddad_edge.progress import Progress
from ddad_edge.runtime.ort_session import open_session


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


def quantize_first_try(fp32: Path, dst: Path, calibration: np.ndarray, recipe: Int8Recipe, work: Path) -> Path:
    """The file `quantize_int8` writes on its first try, without judging it (no fallback): every node of the
    recipe's op types quantized but those in its keep_fp32 groups. Benchmarks time this file. Returns `dst`.
    """
    import onnx

    _, kept = _targets(onnx.load(str(fp32)), recipe)
    source, cache = quantization_inputs(fp32, work)
    return quantize_file(source, dst, calibration, recipe, cache, kept)


@contextmanager
def _quiet_quantizer():
    """ORT's quantizer logs advice at WARNING level through the root logger; keep the export's output readable."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _ort_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise missing_package("onnxruntime", "INT8 export", "pip install onnxruntime") from None
    return quantization


def _reader(frames: np.ndarray, batch: int = 1):
    q = _ort_quantization()

    class FrameReader(q.CalibrationDataReader):
        """Feeds uint8 frames (N, S, S, 3) to the calibrator in batches."""

        def __init__(self) -> None:
            self._batches = iter([frames[i:i + batch] for i in range(0, len(frames), batch)])

        def get_next(self):
            x = next(self._batches, None)
            return None if x is None else {"frames": np.ascontiguousarray(x)}

    return FrameReader()


def quantize_file(src: Path, dst: Path, calibration: np.ndarray, recipe: Int8Recipe, cache: Path,
                  exclude: list[str], activation_unsigned: bool = False, qoperator: bool = False,
                  op_types: tuple[str, ...] | None = None, quantize_bias: bool = False,
                  output_types: tuple[str, ...] | None = None) -> Path:
    """Write the INT8 version of the FP32 graph `src` to `dst`; returns `dst`.

    `src` must hold its weights as initializers (`quantization_inputs`). `cache` holds the activation
    ranges (computed from `calibration` frames on first use, then reused). The defaults make the bundle's
    file: Q/DQ on the inputs of the recipe's op types and on the outputs of its `quantize_outputs` types,
    S8S8, symmetric, FP32 biases; the nodes in `exclude` read float tensors. `activation_unsigned`,
    `qoperator`, `quantize_bias`, `op_types` and `output_types` (None: the recipe's) make CPU variants for
    the report only.
    """
    types = list(op_types if op_types is not None else recipe.op_types)
    outputs = set(output_types if output_types is not None else recipe.quantize_outputs)
    q = _ort_quantization()
    methods = {CalibrationMethod.MINMAX: q.CalibrationMethod.MinMax,
               CalibrationMethod.ENTROPY: q.CalibrationMethod.Entropy,
               CalibrationMethod.PERCENTILE: q.CalibrationMethod.Percentile}
    extra = {"ActivationSymmetric": not activation_unsigned, "WeightSymmetric": True, "QuantizeBias": quantize_bias,
             "OpTypesToExcludeOutputQuantization": [t for t in types if t not in outputs]}
    if recipe.method is CalibrationMethod.PERCENTILE:
        extra["CalibPercentile"] = recipe.percentile
    with _quiet_quantizer():
        q.quantize_static(
            str(src), str(dst), _reader(calibration) if not Path(cache).is_file() else None,
            quant_format=q.QuantFormat.QOperator if qoperator else q.QuantFormat.QDQ,
            op_types_to_quantize=types,
            per_channel=True, activation_type=q.QuantType.QUInt8 if activation_unsigned else q.QuantType.QInt8,
            weight_type=q.QuantType.QInt8, calibrate_method=methods[recipe.method],
            nodes_to_exclude=list(exclude), extra_options=extra, calibration_cache_path=str(cache))
    if not qoperator:
        _read_float(Path(dst), set(exclude), set(types), outputs, recipe.keep_fp32)
    return Path(dst)


def _rounded(producer: dict, name: str):
    """(Quantize node, Dequantize node) when tensor `name` is an activation rounded by a Q/DQ pair, else None."""
    dq = producer.get(name)
    q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    return (q, dq) if q is not None and q.op_type == "QuantizeLinear" else None


def _input_rounding(producer: dict, q, quantized: set[str], output_types: set[str]) -> bool:
    """Whether Quantize node `q` rounds a tensor for the quantized nodes that read it, not as the output of
    the quantized node that writes it (`output_types`: the recipe's quantize_outputs). Only the first kind
    may be skipped by float readers: an output pair is what lets ONNX Runtime fuse its writer."""
    writer = producer.get(q.input[0])
    return writer is None or writer.name not in quantized or writer.op_type not in output_types


def _float_readers(model, producer: dict, kept: set[str], quantized_types: set[str],
                   float_groups: tuple[str, ...]) -> set[str]:
    """Names of the nodes that must read float tensors: those kept in FP32, and every node from which a graph
    output is reached without passing a node of the quantized types other than those of the `float_groups`
    (the recipe's keep_fp32: the blur) or entering the feature extractor: the sampler's arithmetic after the
    UNet's last convolution, the distances. The map and score are computed in float from the UNet's
    prediction and the feature maps on. The walk stops at every other convolution, kept by the fallback or
    not, and at the extractor's feature maps: upstream of them the graph is quantized as usual (inside the
    extractor, the residual additions that lead to a feature map read their convolutions' INT8 outputs like
    the rest of it, so ONNX Runtime fuses those convolutions too)."""
    through = set(nodes_of_groups(model, float_groups))
    readers = {name for name in kept}
    todo = [producer[o.name] for o in model.graph.output if o.name in producer]
    seen: set[str] = set()
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in quantized_types and node.name not in through:
            continue  # one of the last convolutions: what it reads is its own business
        if BACKBONE.match(node.name):
            continue  # a feature map's last node: the extractor is quantized as a whole
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            readers.add(node.name)
        todo.extend(producer[i] for i in node.input if i in producer)
    return readers


def _read_float(path: Path, kept: set[str], quantized_types: set[str], output_types: set[str],
                float_groups: tuple[str, ...]) -> int:
    """Rewire every float reader (`_float_readers`) that reads a dequantized activation to the float tensor
    before its Quantize node, and every other reader that is not a quantized node to it too where the pair
    rounds an input only (`_input_rounding`); give a graph output written by a Q/DQ pair back to the float
    tensor, and drop the Q/DQ nodes nobody reads any more with their scales and zero points. Returns the
    tensors rewired.

    The quantizer shares one Q/DQ pair among all readers of a tensor, so a quantized convolution's output
    pair would also feed a node kept in FP32 (the fallback keeps a node in FP32 precisely because INT8 at its
    input costs too much) and the float arithmetic that makes the map; and a pair made for a quantized
    convolution's input would also feed the GroupNorm and the shape arithmetic beside it, rounding them
    for nothing, and ONNX Runtime would not fuse that convolution into QLinearConv while its Dequantize
    node has other readers. Weights (DQ of an INT8 initializer) are left alone: a kept node's own weights
    are never quantized, and a weight shared with a quantized node is quantized for all of its readers.
    """
    import onnx

    model = onnx.load(str(path))
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    readers = _float_readers(model, producer, kept, quantized_types, float_groups)
    quantized = {n.name for n in g.node if n.op_type in quantized_types and n.name not in kept}
    rewired = 0
    for node in g.node:
        for i, name in enumerate(node.input):
            pair = _rounded(producer, name)
            if pair is None:
                continue
            if node.name in readers or (node.name not in quantized
                                        and _input_rounding(producer, pair[0], quantized, output_types)):
                node.input[i] = pair[0].input[0]
                rewired += 1
    for out in g.output:  # a graph output written by a Q/DQ pair: the float tensor takes the output's name
        pair = _rounded(producer, out.name)
        if pair is not None:
            q, dq = pair
            x = q.input[0]
            g.node.remove(dq)
            for n in g.node:
                n.output[:] = [out.name if o == x else o for o in n.output]
                n.input[:] = [out.name if i == x else i for i in n.input]
            rewired += 1
    if rewired:
        graph_outputs = {o.name for o in g.output}
        dropped: set[str] = set()
        while True:  # drop DQ nodes, then Q nodes, that nothing reads
            read = {i for n in g.node for i in n.input} | graph_outputs
            dead = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
                    and not any(o in read for o in n.output)]
            if not dead:
                break
            for n in dead:
                dropped.update(n.input[1:])  # scale and zero point
                g.node.remove(n)
        read = {i for n in g.node for i in n.input} | {i.name for i in g.input}
        for t in [t for t in g.initializer if t.name in dropped and t.name not in read]:
            g.initializer.remove(t)
        onnx.save(model, str(path))
    return rewired


def check_symmetric(path: Path) -> int:
    """Number of Q/DQ pairs' zero points in `path`; raises DdadError if any is not 0 or not INT8."""
    import onnx
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    count = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2:
            zp = inits.get(node.input[2])
            if zp is None:
                continue
            if zp.data_type not in (TensorProto.INT8, TensorProto.INT32) or numpy_helper.to_array(zp).any():
                raise DdadError(f"{path}: node {node.name} has a non-symmetric or non-INT8 zero point")
            count += 1
    return count


def _targets(model, recipe: Int8Recipe) -> tuple[list[str], list[str]]:
    """(nodes to quantize, nodes of the recipe's op types kept in FP32 by its groups)."""
    kept = set(nodes_of_groups(model, recipe.keep_fp32))
    candidates = [n.name for n in model.graph.node if n.op_type in recipe.op_types]
    return [n for n in candidates if n not in kept], [n for n in candidates if n in kept]


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


def rank_sensitive_nodes(fp32: Path, qdq: Path, frames: np.ndarray, targets: list[str]) -> list[tuple[str, float]]:
    """Quantized nodes ranked by the relative error each adds (output error minus input error), worst first.

    A node's output is read after its own output Q/DQ where only float ops read that pair, so the rounding
    of a convolution's output is charged to that convolution; a pair that a quantized op reads is charged to
    that reader, whose fallback removes it. Runs both graphs on `frames` (a few
    suffice), one frame at a time, with every target's data input and output exposed; only running sums
    are kept, so memory stays at one frame's activations per graph.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(fp32))
    by_name = {n.name: n for n in model.graph.node}
    pairs = [(name, by_name[name].input[0], by_name[name].output[0]) for name in targets if name in by_name]
    wanted = {t for _, i, o in pairs for t in (i, o)}
    written = {o for _, _, o in pairs}
    sessions, aliases = [], []
    for path in (fp32, qdq):
        m = onnx.load(str(path))
        alias = {t: t for t in wanted}
        if path == qdq:
            readers = {}
            for n in m.graph.node:
                for t in n.input:
                    readers.setdefault(t, []).append(n)
            quantized = set(targets)
            for q in m.graph.node:
                dqs = [n for n in readers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
                if q.op_type != "QuantizeLinear" or q.input[0] not in written or not dqs:
                    continue
                # a pair that a quantized op reads is that op's input rounding (keeping the reader in FP32
                # removes it); a pair only float ops read is the writer's output rounding
                if not any(r.name in quantized for dq in dqs for r in readers.get(dq.output[0], [])):
                    alias[q.input[0]] = dqs[0].output[0]
        present = {o for n in m.graph.node for o in n.output}
        known = {o.name for o in m.graph.output}
        for t in sorted(set(alias.values()) & present - known):
            m.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
        sessions.append(open_session(m.SerializeToString(), purpose="ranking INT8 nodes by sensitivity"))
        aliases.append(alias)
    exposed = [{o.name for o in sess.get_outputs()} for sess in sessions]
    names = sorted(t for t in wanted if aliases[0][t] in exposed[0] and aliases[1][t] in exposed[1])
    diff2 = dict.fromkeys(names, 0.0)
    ref2 = dict.fromkeys(names, 0.0)
    for i in range(len(frames)):
        feed = {"frames": np.ascontiguousarray(frames[i:i + 1])}
        ref = sessions[0].run([aliases[0][t] for t in names], feed)
        quant = sessions[1].run([aliases[1][t] for t in names], feed)
        for name, r, q in zip(names, ref, quant):
            r = np.asarray(r, np.float64)
            diff2[name] += float(np.square(np.asarray(q, np.float64) - r).sum())
            ref2[name] += float(np.square(r).sum())

    def rel(t: str) -> float:
        return float(np.sqrt(diff2[t] / max(ref2[t], 1e-24))) if t in diff2 else 0.0

    ranked = [(name, rel(o) - rel(i)) for name, i, o in pairs]
    ranked.sort(key=lambda item: -item[1])
    return ranked


SWITCH_INPUT = "int8_groups"  # the switchable file's extra input: one 0/1 entry per weight group


def switchable(qdq: Path, source: Path, groups: list[tuple[str, ...]]):
    """The INT8 file `qdq` with every rounding behind a switch, as an onnx ModelProto.

    What a node reads from a Dequantize output d of a rounded tensor x becomes d where an entry of graph
    input SWITCH_INPUT (G,) float (one per group of `groups`) is above 0.5, else x: for a quantized node,
    its own group's entry (its input and weight rounding: kept in FP32, it reads x); for a float node, the
    entry of the convolution whose output rounding it reads. With one entry 1 and the others 0 the file
    computes that group alone in INT8 as the fallback makes it with every other target kept in FP32, with
    one difference: the roundings are emulated, every convolution runs in float on dequantized values
    (ONNX Runtime fuses none), where the judged file runs integer kernels. `source` (the FP32 graph with
    initializers, `quantization_inputs`) gives the float weights. Returns (model, the number of Dequantize
    outputs some reader still reads unswitched: on in every run; 0 unless the quantizer's names change).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model, src = onnx.load(str(qdq)), onnx.load(str(source))
    float_weights = {t.name: t for t in src.graph.initializer}
    inits = {t.name for t in model.graph.initializer}
    group_of = {name: i for i, group in enumerate(groups) for name in group}
    graph_nodes = list(model.graph.node)
    producer = {o: n for n in graph_nodes for o in n.output}
    readers: dict[str, list[int]] = {}  # tensor → indices of the nodes that read it
    for i, n in enumerate(graph_nodes):
        for t in n.input:
            readers.setdefault(t, []).append(i)
    half = "int8_switch_half"
    nodes, added = [], [numpy_helper.from_array(np.array(0.5, np.float32), half)]

    def switch(d: str, x: str, entry: int, tag: str) -> str:
        """d where SWITCH_INPUT[entry] > 0.5 else x, appended to the graph; returns its output's name."""
        added.append(numpy_helper.from_array(np.array(entry, np.int64), f"{tag}_index"))
        nodes.extend([
            helper.make_node("Gather", [SWITCH_INPUT, f"{tag}_index"], [f"{tag}_entry"], name=f"{tag}_gather"),
            helper.make_node("Greater", [f"{tag}_entry", half], [f"{tag}_on"], name=f"{tag}_on"),
            helper.make_node("Where", [f"{tag}_on", d, x], [f"{tag}_out"], name=f"{tag}_where")])
        return f"{tag}_out"

    rewire: dict[tuple[int, str], str] = {}  # (index of a reader, tensor it reads) → the switched tensor instead
    for node in graph_nodes:
        nodes.append(node)
        if node.op_type != "DequantizeLinear":
            continue
        d, tag = node.output[0], f"{node.name or node.output[0]}_int8_switch"
        by_entry: dict[int, list[int]] = {}  # group → the readers whose view of d it switches
        if node.input[0] in inits:  # a weight: its float values come from the source graph
            weight = float_weights.get(node.input[0].removesuffix("_quantized"))
            if weight is None:
                continue
            x = f"{weight.name}_int8_switch_float"
            added.append(numpy_helper.from_array(numpy_helper.to_array(weight), x))
            for r in readers.get(d, []):
                if graph_nodes[r].name in group_of:
                    by_entry.setdefault(group_of[graph_nodes[r].name], []).append(r)
        else:
            q = producer.get(node.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                continue
            x = q.input[0]
            writer = producer.get(x)
            wrote = group_of.get(writer.name) if writer is not None else None
            for r in readers.get(d, []):
                entry = group_of.get(graph_nodes[r].name, wrote)
                if entry is not None:
                    by_entry.setdefault(entry, []).append(r)
        for k, (entry, rs) in enumerate(by_entry.items()):
            out = switch(d, x, entry, f"{tag}{k}")
            for r in rs:
                rewire[(r, d)] = out
    for (r, d), out in rewire.items():
        reader = graph_nodes[r]
        for i, t in enumerate(reader.input):
            if t == d:
                reader.input[i] = out
    dequantized = {n.output[0] for n in graph_nodes if n.op_type == "DequantizeLinear"}
    unswitched = len({t for n in graph_nodes for t in n.input if t in dequantized})
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(added)
    model.graph.input.append(helper.make_tensor_value_info(SWITCH_INPUT, TensorProto.FLOAT, [len(groups)]))
    return model, unswitched


def rank_by_output_error(fp32: Path, qdq: Path, source: Path, targets: list[str], siblings: dict[str, list[str]],
                         frames: np.ndarray, tolerance: Tolerance,
                         log: Callable[[str], None] = print) -> list[tuple[str, float]]:
    """Quantized nodes ranked by the error each weight group makes in the graph's outputs on its own, worst first.

    Each group of targets sharing a weight (`_weight_groups`) is switched on alone in the `switchable` version
    of the INT8 file `qdq` and run on `frames` (one at a time: the file holds float and INT8 weights and runs
    unfused); its measure is max(map error / tolerance.map_rel, score error / tolerance.score_rel) against the
    FP32 file on the same frames: 1.0 uses the whole budget alone. Every node of a group gets its group's
    measure. One session serves every group.
    """
    groups = _distinct_groups(targets, siblings)
    log(f"int8 fallback: measuring each of {len(groups)} weight groups quantized alone on {len(frames)} frames")
    ref_maps, ref_scores = run_onnx(fp32, frames)
    model, unswitched = switchable(qdq, source, groups)
    if unswitched:
        log(f"int8 fallback: {unswitched} roundings could not be switched and stay on in every measurement")
    session = open_session(model.SerializeToString(), purpose="ranking INT8 nodes by their error in the outputs")
    del model
    ranked: list[tuple[str, float]] = []
    with Progress("int8 fallback: groups measured", total=len(groups)) as bar:
        for i, group in enumerate(groups):
            mask = (np.arange(len(groups)) == i).astype(np.float32)
            outs = [session.run(["anomaly_map", "score"], {"frames": np.ascontiguousarray(frames[j:j + 1]),
                                                           SWITCH_INPUT: mask}) for j in range(len(frames))]
            maps = np.concatenate([np.asarray(m, np.float32) for m, _ in outs])
            scores = np.concatenate([np.asarray(s, np.float32) for _, s in outs])
            err = output_error(maps, scores, ref_maps, ref_scores)
            measure = max(err.map_rel / tolerance.map_rel, err.score_rel / tolerance.score_rel)
            ranked.extend((name, measure) for name in group)
            bar.update(i + 1)
    ranked.sort(key=lambda item: -item[1])
    worst = ", ".join(f"{name} {m:.2g}" for name, m in ranked[:3])
    log(f"int8 fallback: worst alone (fraction of the budget): {worst}")
    return ranked


def quantize_int8(fp32: Path, dst: Path, calibration: np.ndarray, fid: FidelitySet, ref_maps: np.ndarray,
                  ref_scores: np.ndarray, recipe: Int8Recipe, tolerance: Tolerance, work: Path,
                  log: Callable[[str], None] = print) -> Int8Result:
    """Make the INT8 Q/DQ file of `fp32` at `dst`, falling back until the recipe's budget is met.

    calibration: nominal training frames (N, S, S, 3) uint8; fid: held-out frames with labels;
    ref_maps/ref_scores: the FP32 reference outputs on fid.frames. Raises DdadError when every round misses.
    """
    import onnx

    model = onnx.load(str(fp32))
    targets, kept = _targets(model, recipe)
    source, cache = quantization_inputs(fp32, work)
    siblings = _weight_groups(onnx.load(str(source)), targets)
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


def _weight_groups(model, targets: list[str]) -> dict[str, list[str]]:
    """For each target, the targets that read the same weight initializer (itself included).

    The K unrolled steps call the same UNet, so each of its convolutions appears K times over one
    weight tensor; the quantizer puts Q/DQ on a weight for all its readers, so they share one precision.
    """
    inits = {t.name for t in model.graph.initializer}
    wanted = set(targets)
    by_weight: dict[str, list[str]] = {}
    weight_of = {}
    for node in model.graph.node:
        if node.name in wanted and len(node.input) > 1 and node.input[1] in inits:
            by_weight.setdefault(node.input[1], []).append(node.name)
            weight_of[node.name] = node.input[1]
    return {name: by_weight.get(weight_of.get(name, ""), [name]) for name in targets}


def _distinct_groups(targets: list[str], siblings: dict[str, list[str]]) -> list[tuple[str, ...]]:
    """The weight groups of `targets` (`_weight_groups`), each once, in the order of their first target."""
    return list(dict.fromkeys(tuple(siblings.get(t, [t])) for t in targets))


def _with_weight_siblings(names: list[str], siblings: dict[str, list[str]]) -> list[str]:
    """`names` plus every node sharing a weight with one of them, in order, without repeats."""
    out: dict[str, None] = {}
    for name in names:
        for sibling in siblings.get(name, [name]):
            out[sibling] = None
    return list(out)
