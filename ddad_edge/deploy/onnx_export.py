"""Export the one per-frame graph (`FrameGraph`) to ONNX, and check that it is the graph we meant.

The graph takes `frames` uint8 (N, S, S, 3) with a dynamic batch N and a static image size S, and
returns `anomaly_map` float32 (N, 1, S, S) and `score` float32 (N,). All K conditioned DDIM steps are
unrolled inside it: the UNet's weights are stored once and used K times, and there is no control flow
(no Loop, If or Scan), so nothing happens in Python between steps and TensorRT can fuse the whole frame.

Opset 17 because TensorRT 8.6 (JetPack 6.0) reads up to 17. The TorchScript exporter (`dynamo=False`)
is used on purpose: at opset 17 it writes GroupNorm as Reshape → InstanceNormalization → Reshape → Mul
→ Add, which TensorRT 8.6 parses and fuses, and it keeps the module path in every node name
(`/pipeline/unet/...`, `/pipeline/scorer/...`), which the precision stage uses to find the time
embedding, the blur and the distances. The dynamo exporter targets opset 18+ (GroupNormalization),
which TensorRT 8.6 cannot read. A GroupNorm with one channel per group (DDAD-S's 32-channel layers at
full resolution: 32 groups) is the instance norm of each channel with the GroupNorm's own scale and bias,
and is written as that one InstanceNormalization node, the same arithmetic in two full-size passes fewer
(ONNX Runtime on 2 x86 cores: 3.0 against 4.3 ms for GroupNorm + SiLU at 32 x 256 x 256).
"""

from __future__ import annotations

import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ddad_edge.errors import DdadError
from ddad_edge.model.pipeline import DDADPipeline, FrameGraph
from ddad_edge.runtime.base import INPUT_NAME, OUTPUT_NAMES

OPSET = 17
BATCH_DIM = "N"
TRACE_BATCH = 2  # not 1, so no size-1 broadcast of the batch can be baked into the graph
CONTROL_FLOW_OPS = frozenset({"Loop", "If", "Scan"})
STEM_WEIGHT = "pipeline.unet.stem.weight"  # consumed once per UNet call: counts the unrolled steps


@dataclass(frozen=True)
class GraphSummary:
    """What an exported graph holds, as checked by `check_graph`."""

    opset: int
    image_size: int
    unet_calls: int  # UNet evaluations unrolled in the graph (= K steps)
    nodes: int
    op_counts: dict[str, int]
    parameters: int  # number of weights in initializers (each stored once)

    def as_dict(self) -> dict:
        return {"opset": self.opset, "image_size": self.image_size, "unet_calls": self.unet_calls,
                "nodes": self.nodes, "parameters": self.parameters, "op_counts": dict(self.op_counts)}


def export_onnx(pipeline: DDADPipeline, path: Path, opset: int = OPSET) -> Path:
    """Write `FrameGraph(pipeline)` to `path` as ONNX (weights inside the file) and check it; returns `path`.

    The pipeline must be deterministic (eta = 0), so the graph is a pure function of the frame.
    """
    if pipeline.eta != 0.0:
        raise DdadError(f"export needs a deterministic sampler (eta = 0), this pipeline has eta = {pipeline.eta}")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = FrameGraph(pipeline).eval()
    size = pipeline.unet.cfg.image_size
    frames = torch.zeros((TRACE_BATCH, size, size, 3), dtype=torch.uint8)
    axes = {INPUT_NAME: {0: BATCH_DIM}, OUTPUT_NAMES[0]: {0: BATCH_DIM}, OUTPUT_NAMES[1]: {0: BATCH_DIM}}
    with warnings.catch_warnings(), torch.no_grad(), channel_norms(graph):
        # The tracer warns about Python floats and shapes it turns into constants; for this graph those
        # are exactly the step coefficients and the static image size, so the warnings say nothing new.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (frames,), str(path), dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=axes,
                          do_constant_folding=True)
    model = onnx.load(str(path))
    _set_output_shapes(model, size)
    _own_norm_parameters(model)
    model.producer_name = "ddad-edge"
    onnx.save(model, str(path))
    check_graph(path, size, len(pipeline.timesteps))
    return path


class _ChannelNorm(nn.Module):
    """A GroupNorm with one channel per group, as the instance norm it is: the same parameters (same
    initializer names), the same epsilon, exported as one InstanceNormalization node."""

    def __init__(self, norm: nn.GroupNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)


@contextmanager
def channel_norms(module: nn.Module):
    """Within the block, every affine GroupNorm of `module` with as many groups as channels is a `_ChannelNorm`;
    the GroupNorms are put back after, so the caller's module is left as it was."""
    swapped = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.GroupNorm) and child.affine and child.num_groups == child.num_channels:
                setattr(parent, name, _ChannelNorm(child))
                swapped.append((parent, name, child))
    try:
        yield
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _set_output_shapes(model, size: int) -> None:
    """Write the static output shapes: the tracer names the map's spatial dims as if they were dynamic."""
    shapes = {OUTPUT_NAMES[0]: [BATCH_DIM, 1, size, size], OUTPUT_NAMES[1]: [BATCH_DIM]}
    for out in model.graph.output:
        dims = out.type.tensor_type.shape.dim
        del dims[:]
        for d in shapes[out.name]:
            dim = dims.add()
            if isinstance(d, str):
                dim.dim_param = d
            else:
                dim.dim_value = d


def _own_norm_parameters(model) -> None:
    """Give every InstanceNormalization its scale and bias as initializers of its own.

    The exporter stores equal initializers once and feeds the others through an Identity; to TensorRT's
    parser an Identity output is a computed tensor, and its InstanceNormalization plugin (8.6) refuses a
    scale or bias that is not an initializer (see deploy/trt_rules.py).
    """
    from onnx import TensorProto

    g = model.graph
    initializers = {t.name: t for t in g.initializer}
    producer = {out: n for n in g.node for out in n.output}
    for node in g.node:
        if node.op_type != "InstanceNormalization":
            continue
        for name in node.input[1:]:
            identity = producer.get(name)
            if identity is not None and identity.op_type == "Identity" and identity.input[0] in initializers \
                    and name not in initializers:
                own = TensorProto()
                own.CopyFrom(initializers[identity.input[0]])
                own.name = name
                g.initializer.append(own)
                initializers[name] = own
    # an Identity whose output is now an initializer of its own is no longer needed (nor allowed: one producer)
    keep = [n for n in g.node if n.op_type != "Identity" or n.output[0] not in initializers]
    del g.node[:]
    g.node.extend(keep)


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def check_graph(path: Path, image_size: int, steps: int | None = None) -> GraphSummary:
    """Check an exported graph: onnx.checker, opset, I/O names, types and shapes, no control flow, K unrolled.

    Raises DdadError naming what is wrong; returns the summary of the graph.
    """
    import onnx
    from onnx import TensorProto

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise DdadError(f"{path} fails onnx.checker: {str(exc).splitlines()[0][:200]}") from None
    opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    g = model.graph
    expected_in = [(INPUT_NAME, TensorProto.UINT8, [BATCH_DIM, image_size, image_size, 3])]
    got_in = [(i.name, i.type.tensor_type.elem_type, _dims(i)) for i in g.input]
    if got_in != expected_in:
        raise DdadError(f"{path}: input {got_in} is not frames uint8 (N, {image_size}, {image_size}, 3)")
    expected_out = [(OUTPUT_NAMES[0], TensorProto.FLOAT, [BATCH_DIM, 1, image_size, image_size]),
                    (OUTPUT_NAMES[1], TensorProto.FLOAT, [BATCH_DIM])]
    got_out = [(o.name, o.type.tensor_type.elem_type, _dims(o)) for o in g.output]
    if got_out != expected_out:
        raise DdadError(f"{path}: outputs {got_out} are not anomaly_map float32 (N, 1, S, S) and score (N,)")
    ops = Counter(n.op_type for n in g.node)
    flow = sorted(CONTROL_FLOW_OPS & set(ops))
    if flow:
        raise DdadError(f"{path}: the graph holds control flow ({', '.join(flow)}); the steps must be unrolled")
    calls = sum(1 for n in g.node for name in n.input if name == STEM_WEIGHT)
    if steps is not None and calls != steps:
        raise DdadError(f"{path}: the graph evaluates the UNet {calls} times, the sampler has {steps} steps")
    params = sum(int(_numel(t)) for t in g.initializer)
    return GraphSummary(opset=opset, image_size=image_size, unet_calls=calls, nodes=len(g.node),
                        op_counts=dict(sorted(ops.items())), parameters=params)


def _numel(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= d
    return n
