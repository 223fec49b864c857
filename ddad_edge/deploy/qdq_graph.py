"""Edits of a quantized graph's Q/DQ pairs, and the check that they are what TensorRT takes.

The quantizer shares one Q/DQ pair among all readers of a tensor. `read_float` gives float readers back
the unrounded tensor: a node kept in FP32 (by the recipe's groups or by the fallback) reads its input
unquantized, never a dequantized copy (what it reads may still carry the output rounding of quantized
convolutions further up), and the float arithmetic between the last convolutions (and the extractor's
feature maps) and the map and score reads float tensors: the UNet's prediction is not rounded to INT8 on its
way to the map, and no graph output is written by a Q/DQ pair. A tensor rounded for a convolution's input
is rounded for that convolution alone: the float ops beside it (the GroupNorm and the shape arithmetic that
read the UNet's skip concatenation with its 1x1 convolution) read it unrounded, and ONNX Runtime fuses the
convolution, which it does not while the Dequantize node has other readers.

`check_symmetric`: every zero point is 0 and INT8, as TensorRT requires.
"""

from __future__ import annotations

from pathlib import Path

from ddad_edge.deploy.precision import BACKBONE, nodes_of_groups
from ddad_edge.errors import DdadError


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


def read_float(path: Path, kept: set[str], quantized_types: set[str], output_types: set[str],
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
