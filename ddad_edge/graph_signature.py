"""The signature of an ONNX graph, read without the `onnx` package, binding a model file to its manifest.

A bundle's sha256 list proves its files are the ones written, not that they belong together: another
bundle's model.onnx, re-hashed, would run under this manifest's thresholds and precision. Export records
the graph's signature (its inputs and outputs with element types and shapes, how many nodes of each op it
has, and its initializers' element types) and loading compares it with the file: steps and scoring change
the op counts (each step unrolls one UNet; the fused map adds the feature extractor), FP16 shows in FLOAT16
initializers, INT8 in QuantizeLinear / DequantizeLinear nodes. The precision is also checked against the
file on bundles made before signatures were recorded.

The device half has ONNX Runtime but not always the `onnx` package, and ONNX Runtime does not list a
graph's nodes, so the protobuf wire format is read here directly: only the fields named below, skipping
weights' bytes without copying them.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

# TensorProto.DataType numbers (onnx.proto3) and the names the signature records them by.
ELEM_TYPES = {1: "float", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64", 8: "string",
              9: "bool", 10: "float16", 11: "double", 12: "uint32", 13: "uint64", 16: "bfloat16"}
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


class GraphFormatError(ValueError):
    """The bytes are not an ONNX model this reader understands."""


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise GraphFormatError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: memoryview):
    """(field number, wire type, value) of each field of one message: an int, or a memoryview of the bytes."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == 2:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise GraphFormatError("a field runs past the end of its message")
            value, pos = data[pos:pos + size], pos + size
        elif wire == 5:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise GraphFormatError(f"wire type {wire} is not used by ONNX")
        yield field, wire, value


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace")


def _value_info(data: memoryview) -> list:
    """[name, element type, dims] of a ValueInfoProto; a dim is its size or its symbolic name."""
    name, elem, dims = "", "", []
    for field, _, value in _fields(data):
        if field == 1:
            name = _text(value)
        elif field == 2:  # TypeProto
            for f2, _, tensor in _fields(value):
                if f2 != 1:  # tensor_type only: ddad-edge graphs have no sequences or maps
                    continue
                for f3, _, v3 in _fields(tensor):
                    if f3 == 1:
                        elem = ELEM_TYPES.get(v3, str(v3))
                    elif f3 == 2:  # TensorShapeProto
                        for f4, _, dim in _fields(v3):
                            if f4 == 1:
                                size = next((v if f5 == 1 else _text(v) for f5, _, v in _fields(dim)
                                             if f5 in (1, 2)), "?")
                                dims.append(size)
    return [name, elem, dims]


def graph_signature(model: Path | bytes) -> dict[str, Any]:
    """{inputs, outputs: [[name, type, dims]], ops: {op_type: count}, initializers: {type: count}} of an ONNX
    model file (or its bytes). Raises GraphFormatError when it is not one."""
    raw = Path(model).read_bytes() if isinstance(model, (str, Path)) else bytes(model)
    graph = None
    for field, wire, value in _fields(memoryview(raw)):
        if field == 7 and wire == 2:
            graph = value
    if graph is None:
        raise GraphFormatError("no graph in the file")
    ops: Counter[str] = Counter()
    inits: Counter[str] = Counter()
    inputs, outputs, init_names = [], [], set()
    for field, wire, value in _fields(graph):
        if wire != 2:
            continue
        if field == 1:  # NodeProto: op_type is field 4, domain 7
            op, domain = "", ""
            for f, _, v in _fields(value):
                if f == 4:
                    op = _text(v)
                elif f == 7:
                    domain = _text(v)
            ops[f"{domain}:{op}" if domain not in ("", "ai.onnx") else op] += 1
        elif field == 5:  # TensorProto: data_type 2, name 8
            elem, name = "", ""
            for f, w, v in _fields(value):
                if f == 2 and w == 0:
                    elem = ELEM_TYPES.get(v, str(v))
                elif f == 8:
                    name = _text(v)
            inits[elem] += 1
            init_names.add(name)
        elif field == 11:
            inputs.append(_value_info(value))
        elif field == 12:
            outputs.append(_value_info(value))
    inputs = [i for i in inputs if i[0] not in init_names]  # older IRs list initializers as inputs too
    return {"inputs": inputs, "outputs": outputs, "ops": dict(sorted(ops.items())),
            "initializers": dict(sorted(inits.items()))}


def precision_mismatch(signature: dict[str, Any], precision: str) -> str | None:
    """Why a graph of this signature is not of `precision` (fp32, fp16, int8), or None when it is."""
    qdq = sum(signature["ops"].get(op, 0) for op in QDQ_OPS)
    fp16 = signature["initializers"].get("float16", 0)
    if precision == "int8" and not qdq:
        return "it has no QuantizeLinear/DequantizeLinear nodes, so it is not an INT8 graph"
    if precision in ("fp32", "fp16") and qdq:
        return f"it has {qdq} QuantizeLinear/DequantizeLinear nodes: it is an INT8 graph"
    if precision == "fp32" and fp16:
        return f"it has {fp16} float16 initializers: it is an FP16 graph"
    if precision == "fp16" and not fp16:
        return "it has no float16 initializers, so it is not an FP16 graph"
    return None


def signature_difference(recorded: dict[str, Any], actual: dict[str, Any]) -> str | None:
    """The first way `actual` differs from `recorded`, in words, or None when they are the same."""
    for key in ("inputs", "outputs"):
        if recorded.get(key) != actual[key]:
            return f"{key} {actual[key]} where the manifest records {recorded.get(key)}"
    for key in ("ops", "initializers"):
        want, have = recorded.get(key) or {}, actual[key]
        diff = [f"{name} {want.get(name, 0)} -> {have.get(name, 0)}" for name in sorted(set(want) | set(have))
                if want.get(name, 0) != have.get(name, 0)]
        if diff:
            more = f" (and {len(diff) - 4} more)" if len(diff) > 4 else ""
            what = "op counts" if key == "ops" else "initializer types"
            return f"{what} differ (manifest -> file): {', '.join(diff[:4])}{more}"
    return None
