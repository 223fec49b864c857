"""FP16 conversion of the exported graph, with the parts that measurably lose accuracy kept in FP32.

The graph's parts that FP16 can hurt are named as `NodeGroup`s and found by the node names the exporter
writes (module paths, see onnx_export.py):

  normalization   InstanceNormalization (GroupNorm's export): a variance over many values
  softmax         attention weights
  time_embedding  sin/cos of t up to 250 and its MLP (incl. each block's projection of it)
  blur            the 33×33 Gaussian blur of the map and its padding
  distances       cosine similarity of features (sums of squares over 128–1024 channels), the pixel
                  distance, the fusion ratio and the score

`measure_fp16_groups` puts one group at a time in FP16 (all else FP32) and reports the error each group
causes on its own, with FP16 rounding emulated (`emulate_fp16`: ONNX Runtime on a CPU cannot show it);
a recipe keeps a group in FP32 when that error passes its limit, or always. The conversion keeps the
graph's inputs and outputs as they are (uint8 in, float32 out), so a runner never sees FP16.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import numpy as np

from ddad_edge.deploy.fidelity import OutputError, output_error, run_onnx
from ddad_edge.errors import DdadError, missing_package

FP16_MAX = 65504.0
# Always FP32 in an FP16 file, whatever a recipe measures: TensorRT 8.6 parses InstanceNormalization into its
# InstanceNormalization_TRT plugin and hands it scale and bias as float32 fields whatever the initializer's
# type (onnx-tensorrt 8.6-GA onnx2trt_utils.cpp, instanceNormPluginHelper), so FP16 parameters would be read
# as garbage; and the plugin wants them as initializers, not computed by a Cast (see trt_rules.py).
ALWAYS_FP32_OPS = ("InstanceNormalization",)


class NodeGroup(str, Enum):
    """Parts of the exported graph whose precision is decided together."""

    NORMALIZATION = "normalization"
    SOFTMAX = "softmax"
    TIME_EMBEDDING = "time_embedding"
    BLUR = "blur"
    DISTANCES = "distances"


_SCORER = re.compile(r"^/pipeline/scorer/(?!extractor/)")
# the feature extractor's nodes: /pipeline/scorer/extractor/layer2/layer2.0/conv1/Conv
BACKBONE = re.compile(r"^/pipeline/scorer/extractor/")
_BLUR = re.compile(r"^/pipeline/scorer/(Conv|Pad)(_\d+)?$")
# sin/cos of t and what makes t: /pipeline/unet_3/Sin, /pipeline/unet/Cast; the MLP and each block's emb,
# in every unrolled UNet call (the exporter names the second call's /down.0/block/emb_1/Gemm)
_TIME = re.compile(r"^/pipeline/unet(_\d+)?/(Sin|Cos|Mul|Cast|Unsqueeze|Concat)(_\d+)?$|/time_mlp/|/emb(_\d+)?/")


def group_of(node) -> NodeGroup | None:
    """The group a node of the exported graph belongs to, or None."""
    name = node.name
    if node.op_type in ("InstanceNormalization", "BatchNormalization", "GroupNormalization"):
        return NodeGroup.NORMALIZATION
    if node.op_type == "Softmax":
        return NodeGroup.SOFTMAX
    if _TIME.search(name):
        return NodeGroup.TIME_EMBEDDING
    if _BLUR.match(name):
        return NodeGroup.BLUR
    if _SCORER.match(name):
        return NodeGroup.DISTANCES
    return None


def nodes_of_groups(model, groups) -> list[str]:
    """Names of the nodes of `model` (onnx.ModelProto) in any of `groups`."""
    wanted = {NodeGroup(g) for g in groups}
    return [n.name for n in model.graph.node if group_of(n) in wanted]


def group_sizes(model) -> dict[str, int]:
    """How many nodes each group has in `model` (every group listed, 0 where absent)."""
    sizes = {g.value: 0 for g in NodeGroup}
    for n in model.graph.node:
        g = group_of(n)
        if g is not None:
            sizes[g.value] += 1
    return sizes


def convert_fp16(src: Path, dst: Path, keep_fp32_nodes: list[str] | tuple[str, ...] = ()) -> Path:
    """Write an FP16 copy of the FP32 graph `src` to `dst`, with `keep_fp32_nodes` (names) left in FP32.

    Inputs and outputs keep their types; casts are inserted around the kept nodes. ONNX Runtime's float16
    tool does the conversion; it also rounds every tensor between two kept nodes through FP16 (a cast
    down and straight back up), which would defeat keeping them, so those round trips are removed.
    Returns `dst`.
    """
    import onnx

    try:
        from onnxruntime.transformers import float16
    except ImportError:
        raise missing_package("onnxruntime", "FP16 export", "pip install onnxruntime") from None

    model = onnx.load(str(src))
    fp32_weights = {t.name: t for t in model.graph.initializer}
    fp32_weights.update({n.output[0]: n.attribute[0].t for n in model.graph.node
                         if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    converted = float16.convert_float_to_float16(
        model, keep_io_types=True, op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *ALWAYS_FP32_OPS],
        node_block_list=list(keep_fp32_nodes), max_finite_val=FP16_MAX)
    _drop_round_trips(converted.graph)
    _restore_fp32_parameters(converted.graph, fp32_weights)
    _sort_topologically(converted.graph)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - a converter bug, not a user error
        raise DdadError(f"the FP16 conversion of {src} is not valid ONNX: {str(exc).splitlines()[0][:200]}") \
            from None
    dst = Path(dst)
    onnx.save(converted, str(dst))
    return dst


def _sort_topologically(graph) -> None:
    """Reorder `graph.node` so every node comes after the producers of its inputs (the converter may
    append the casts it inserts after their consumers)."""
    produced_by = {out: i for i, n in enumerate(graph.node) for out in n.output if out}
    nodes = list(graph.node)
    state = [0] * len(nodes)  # 0 new, 1 visiting, 2 placed
    order: list[int] = []
    for start in range(len(nodes)):
        stack = [(start, iter(nodes[start].input))]
        if state[start]:
            continue
        state[start] = 1
        while stack:
            i, inputs = stack[-1]
            for name in inputs:
                j = produced_by.get(name)
                if j is not None and state[j] == 0:
                    state[j] = 1
                    stack.append((j, iter(nodes[j].input)))
                    break
            else:
                stack.pop()
                state[i] = 2
                order.append(i)
    del graph.node[:]
    graph.node.extend(nodes[i] for i in order)




def _restore_fp32_parameters(graph, fp32_weights: dict) -> None:
    """Give each ALWAYS_FP32_OPS node its own float32 initializers again.

    The converter turns every float initializer and Constant into FP16 and feeds a blocked node through a
    Cast back to FP32; a Cast is a computed tensor to TensorRT's parser, not an initializer. Each such Cast
    of a constant is replaced by a float32 initializer (the source's values, under the Cast's output name).
    """
    from onnx import TensorProto

    producer = {out: n for n in graph.node for out in n.output}
    initializers = {t.name for t in graph.initializer} | {o for o, n in producer.items() if n.op_type == "Constant"}
    dropped = set()
    for node in graph.node:
        if node.op_type not in ALWAYS_FP32_OPS:
            continue
        for name in node.input[1:]:
            cast = producer.get(name)
            if cast is None or cast.op_type != "Cast" or cast.input[0] not in initializers:
                continue
            source = fp32_weights.get(cast.input[0])
            if source is None or source.data_type != TensorProto.FLOAT or id(cast) in dropped:
                continue
            restored = TensorProto()
            restored.CopyFrom(source)
            restored.name = name
            graph.initializer.append(restored)
            dropped.add(id(cast))
    keep = [n for n in graph.node if id(n) not in dropped]
    used = {name for n in keep for name in n.input} | {o.name for o in graph.output}
    keep = [n for n in keep if n.op_type != "Constant" or n.output[0] in used]
    unused = [t for t in graph.initializer if t.name not in used]
    del graph.node[:]
    graph.node.extend(keep)
    for t in unused:
        graph.initializer.remove(t)


def _drop_round_trips(graph) -> None:
    """Remove Cast(→FP16) → Cast(→FP32) pairs: readers of the second cast read the FP32 tensor itself
    (a graph output keeps its name through an Identity)."""
    from onnx import TensorProto

    def cast_to(node) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    producer = {out: n for n in graph.node for out in n.output}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    dropped = set()
    for node in graph.node:
        up = producer.get(node.input[0]) if cast_to(node) == TensorProto.FLOAT else None
        if up is None or cast_to(up) != TensorProto.FLOAT16:
            continue
        if node.output[0] in outputs:
            node.op_type = "Identity"
            del node.attribute[:]
            node.input[0] = rename.get(up.input[0], up.input[0])
            continue
        rename[node.output[0]] = up.input[0]
        dropped.add(id(node))
    keep = [n for n in graph.node if id(n) not in dropped]
    for n in keep:
        for i, name in enumerate(n.input):
            while name in rename:  # a chain of round trips resolves to its first FP32 tensor
                name = rename[name]
            n.input[i] = name
    used = {name for n in keep for name in n.input} | outputs
    keep = [n for n in keep if cast_to(n) != TensorProto.FLOAT16 or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(keep)


def emulate_fp16(src: Path, dst: Path, fp16_nodes: list[str] | tuple[str, ...] | set[str]) -> Path:
    """Write a copy of the FP32 graph `src` in which `fp16_nodes` see and produce FP16-rounded values.

    Every float input and output of those nodes is rounded through FP16 (Cast down and up), while the
    arithmetic stays FP32: the error model of a GPU that stores FP16 and accumulates in FP32. ONNX
    Runtime on a CPU cannot measure FP16 directly, because for ops without FP16 kernels it inserts casts
    and removes the FP16 round trips again. Returns `dst`.
    """
    import onnx
    from onnx import TensorProto, helper

    model = onnx.shape_inference.infer_shapes(onnx.load(str(src)))
    g = model.graph
    floats = {v.name for v in list(g.value_info) + list(g.input) + list(g.output)
              if v.type.tensor_type.elem_type == TensorProto.FLOAT}
    floats |= {t.name for t in g.initializer if t.data_type == TensorProto.FLOAT}
    floats |= {n.output[0] for n in g.node
               if n.op_type == "Constant" and n.attribute and n.attribute[0].t.data_type == TensorProto.FLOAT}
    chosen = set(fp16_nodes)
    nodes = list(g.node)
    # A graph output made by a chosen node is produced under another name, then rounded into its own.
    for out in g.output:
        for node in nodes:
            if node.name in chosen and out.name in node.output:
                raw = out.name + "__fp32"
                node.output[list(node.output).index(out.name)] = raw
                floats.add(raw)
                for other in nodes:
                    for i, name in enumerate(other.input):
                        if name == out.name:
                            other.input[i] = raw
                nodes.extend(_round_trip(helper, TensorProto, raw, out.name))
    from_chosen = {name for n in nodes if n.name in chosen for name in n.output if name in floats}
    to_round = from_chosen | {name for n in nodes if n.name in chosen for name in n.input if name in floats}
    casts = [_round_trip(helper, TensorProto, name, name + "__fp16_rounded") for name in sorted(to_round)]
    for node in nodes:
        if node.op_type == "Cast" and node.name.startswith("fp16_round/"):
            continue
        for i, name in enumerate(node.input):
            if name in to_round and (node.name in chosen or name in from_chosen):
                node.input[i] = name + "__fp16_rounded"
    del g.node[:]
    g.node.extend(nodes)
    for pair in casts:
        g.node.extend(pair)
    _sort_topologically(g)
    dst = Path(dst)
    onnx.save(model, str(dst))
    return dst


def _round_trip(helper, tensor_proto, name: str, rounded: str) -> list:
    """Cast `name` (float32) down to FP16 and back up, into `rounded`."""
    return [helper.make_node("Cast", [name], [rounded + "__half"], to=tensor_proto.FLOAT16,
                             name=f"fp16_round/{rounded}/down"),
            helper.make_node("Cast", [rounded + "__half"], [rounded], to=tensor_proto.FLOAT,
                             name=f"fp16_round/{rounded}/up")]


def measure_fp16_groups(src: Path, work: Path, frames: np.ndarray, ref_maps: np.ndarray, ref_scores: np.ndarray,
                        groups=tuple(NodeGroup)) -> dict[str, OutputError]:
    """The emulated FP16 error (see `emulate_fp16`) of each group alone, of every other node ("rest") and of
    the whole graph ("all"), against reference outputs on `frames` (N, S, S, 3) uint8.

    `work` is a folder for temporary files.
    """
    import onnx

    model = onnx.load(str(src))
    grouped = set(nodes_of_groups(model, list(NodeGroup)))
    plan = {NodeGroup(g).value: set(nodes_of_groups(model, [g])) for g in groups}
    plan["rest"] = {n.name for n in model.graph.node if n.name not in grouped}
    plan["all"] = {n.name for n in model.graph.node}
    results: dict[str, OutputError] = {}
    for key, names in plan.items():
        if not names:
            continue
        path = emulate_fp16(src, Path(work) / f"emulated-fp16-{key}.onnx", names)
        results[key] = output_error(*run_onnx(path, frames), ref_maps, ref_scores)
        path.unlink()
    return results


def emulated_error(src: Path, work: Path, keep_fp32_nodes, frames: np.ndarray, ref_maps: np.ndarray,
                   ref_scores: np.ndarray) -> OutputError:
    """Emulated FP16 error of the graph with `keep_fp32_nodes` in FP32 and everything else in FP16."""
    import onnx

    keep = set(keep_fp32_nodes)
    names = [n.name for n in onnx.load(str(src)).graph.node if n.name not in keep]
    path = emulate_fp16(src, Path(work) / "emulated-fp16.onnx", names)
    try:
        return output_error(*run_onnx(path, frames), ref_maps, ref_scores)
    finally:
        path.unlink()
