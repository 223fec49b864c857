"""Hold an ONNX file to what one TensorRT version's ONNX parser accepts, so a bundle that ONNX Runtime runs
does not first fail on the Jetson.

Where each rule comes from (onnx/onnx-tensorrt, release branches 8.6-GA and 10.1-GA):
- operators and the types of their data input (input 0), and the opset range: the support table of
  docs/operators.md, extracted into trt_support/ by scripts/extract_trt_ops.py. 8.6 casts INT64 down to
  INT32 and both cast DOUBLE down to FLOAT (the tables' notes), so those count as the narrower type.
- UINT8 only at the graph's edges: ModelImporter.cpp refuses a node that produces a UINT8 tensor that is
  not a graph output ("TensorRT does not support UINT8 types for intermediate tensors!"), and most
  importers refuse a UINT8 input (notInvalidType); 10.x docs: "UINT8 is only supported as network input or
  output tensor types". So a UINT8 graph input must feed Cast nodes only (NVIDIA/TensorRT issue #3985).
- Q/DQ: INT8 with zero points present and 0 (8.6's QuantDequantLinearHelper requires all three inputs and
  "only supports symmetric quantization"); a weight's per-channel scales on axis 0 (the output channels of
  a convolution's weights, where TensorRT's INT8 kernels take them).
- InstanceNormalization: scale and bias must be initializers (both importers assert it). On 8.6 it becomes
  the InstanceNormalization_TRT plugin unless the parser flag NATIVE_INSTANCENORM is set, and
  onnx2trt_utils.cpp hands the plugin scale and bias as PluginFieldType::kFLOAT32 whatever the
  initializer's type: an FP16 initializer is then read as half as many garbled floats, so on 8.6 they must
  be float32. 10.x (native by default) asks input, scale and bias to have one type.
Plugins the graph will use are listed in the verdict (a device must have libnvinfer_plugin loaded).

Not checked: the tables' per-operator restrictions in prose (Resize modes, constant axes), which the
exporter's fixed opset-17 graph meets; a real parse on the device (`ddad-edge build`) closes that.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ddad_edge.errors import DdadError, missing_package
from ddad_edge.runtime.trt_compat import ApiFamily, TrtVersion

TABLE_DIR = Path(__file__).resolve().parent / "trt_support"  # package data

# ONNX TensorProto.DataType numbers → the tables' type names.
_ONNX_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "FP32",
               16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 22: "INT4"}
_UINT8, _INT8, _FLOAT = 2, 3, 1
_QDQ = ("QuantizeLinear", "DequantizeLinear")
# Operators whose importer makes a plugin, by table (the importer sources of that branch).
_PLUGINS = {
    "8.6-GA": {"InstanceNormalization": "InstanceNormalization_TRT", "RoiAlign": "ROIAlign_TRT"},
    "10.1-GA": {"RoiAlign": "ROIAlign_TRT", "DeformConv": "DeformableConv_TRT"},
}
# Operators whose table types are those of the output, not of input 0 (a shape tensor).
_OUTPUT_TYPED = frozenset({"ConstantOfShape", "Constant", "Cast", "CastLike"})

RULE_OPSET = "opset in the parser's range"
RULE_OP = "operator supported"
RULE_TYPE = "data input of a supported type"
RULE_UINT8 = "UINT8 only as a graph input feeding Cast, or a graph output"
RULE_QDQ = "Q/DQ INT8 with zero point 0"
RULE_AXIS = "Q/DQ weights per-channel on axis 0"
RULE_NORM = "InstanceNormalization scale and bias float32 initializers (8.6 plugin)"
RULE_NORM_TYPES = "InstanceNormalization input, scale and bias of one type"


@dataclass(frozen=True)
class SupportTable:
    """One branch's support table: operator → (supported, data input types)."""

    branch: str  # e.g. "10.1-GA"
    source: str  # "branch 10.1-GA, commit …" as in the file's header
    opsets: tuple[int, int]
    ops: dict[str, tuple[bool, frozenset[str]]]

    @property
    def version(self) -> TrtVersion:
        return TrtVersion.parse(self.branch.split("-")[0])


@dataclass(frozen=True)
class Violation:
    """A node (or "model") that breaks one rule."""

    node: str
    op: str
    rule: str
    detail: str


@dataclass(frozen=True)
class RulesVerdict:
    """What the rules of one TensorRT version say about one ONNX file."""

    tensorrt: str  # the version checked, e.g. "10.16"
    table: str  # the table used (its branch and commit), with "nearest" when not the version's own
    violations: tuple[Violation, ...] = ()
    plugins: tuple[str, ...] = ()  # plugins the parser will create for this graph
    ops: int = 0  # operator types checked

    @property
    def ok(self) -> bool:
        return not self.violations

    def first_line(self, name: str) -> str:
        """One line: the first violation's node and rule, and how many more."""
        v = self.violations[0]
        more = f" (+{len(self.violations) - 1} more)" if len(self.violations) > 1 else ""
        return (f"{name} does not parse on TensorRT {self.tensorrt}: node {v.node} ({v.op}) breaks "
                f"'{v.rule}': {v.detail}{more}")

    def as_dict(self) -> dict:
        """For the manifest: verdict, table source, plugins, the first few violations."""
        return {"ok": self.ok, "table": self.table, "plugins": list(self.plugins),
                "violations": [f"{v.node} ({v.op}): {v.rule}: {v.detail}" for v in self.violations[:5]],
                "violation_count": len(self.violations)}


def _read_table(path: Path) -> SupportTable:
    branch = path.stem.removeprefix("onnx-tensorrt-")
    source, opsets, ops = branch, (0, 0), {}
    for line in path.read_text().splitlines():
        if line.startswith("# branch "):
            source = line[2:]
        elif line.startswith("opset "):
            low, high = line.split()[1:]
            opsets = (int(low), int(high))
        elif line and not line.startswith("#"):
            name, flag, types = line.split()
            ops[name] = (flag == "Y", frozenset() if types == "-" else frozenset(types.split(",")))
    return SupportTable(branch, source, opsets, ops)


@lru_cache(maxsize=None)
def support_tables() -> tuple[SupportTable, ...]:
    """Every table in the package, oldest first."""
    tables = [_read_table(p) for p in TABLE_DIR.glob("onnx-tensorrt-*.txt")]
    return tuple(sorted(tables, key=lambda t: t.version))


def table_for(version: TrtVersion) -> tuple[SupportTable, bool]:
    """(the newest table at or below `version`, whether it is the version's own major.minor)."""
    version.family  # noqa: B018 - refuses versions before 8.6 with one line
    usable = [t for t in support_tables() if t.version <= version]
    if not usable:
        raise DdadError(f"no onnx-tensorrt support table at or below TensorRT {version} in {TABLE_DIR}")
    table = usable[-1]
    return table, (table.version.major, table.version.minor) == (version.major, version.minor)


def _tensor_types(model) -> dict[str, int]:
    """Tensor name → ONNX element type, from inputs, outputs, initializers, constants and shape inference."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.input, *g.output]
             if v.type.HasField("tensor_type")}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].type == onnx.AttributeProto.TENSOR:
            types[n.output[0]] = n.attribute[0].t.data_type
    return types


def _constants(model) -> dict:
    """Initializers and Constant outputs as numpy arrays, by name."""
    from onnx import numpy_helper

    values = {t.name: t for t in model.graph.initializer}
    values.update({n.output[0]: n.attribute[0].t for n in model.graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    return {name: numpy_helper.to_array(t) for name, t in values.items()}


def _type_name(elem_type: int, family: ApiFamily) -> str:
    name = _ONNX_TYPES.get(elem_type, f"type {elem_type}")
    return "INT32" if name == "INT64" and family is ApiFamily.TRT8 else name


def check_model(model, version: TrtVersion | str) -> RulesVerdict:
    """The verdict of TensorRT `version`'s parser rules on `model` (onnx.ModelProto)."""
    version = version if isinstance(version, TrtVersion) else TrtVersion.parse(version)
    family = version.family
    table, exact = table_for(version)
    label = f"{version.major}.{version.minor}"
    g = model.graph
    types = _tensor_types(model)
    consts = _constants(model)
    inputs = {i.name for i in g.input}
    outputs = {o.name for o in g.output}
    found: list[Violation] = []
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if not table.opsets[0] <= opset <= table.opsets[1]:
        found.append(Violation("model", "opset", RULE_OPSET,
                               f"opset {opset}, the parser reads {table.opsets[0]}-{table.opsets[1]}"))
    plugins = _PLUGINS.get(table.branch, {})
    used_plugins = set()
    for node in g.node:
        where = (node.name or node.output[0], node.op_type)
        if node.domain not in ("", "ai.onnx"):
            found.append(Violation(*where, RULE_OP, f"domain {node.domain} needs a plugin TensorRT does not ship"))
            continue
        supported, allowed = table.ops.get(node.op_type, (False, frozenset()))
        if not supported:
            found.append(Violation(*where, RULE_OP, f"not in TensorRT {label}'s table ({table.branch})"))
            continue
        if node.op_type in plugins:
            used_plugins.add(plugins[node.op_type])
        first = node.input[0] if node.input else ""
        if types.get(first) == _UINT8:
            if not (first in inputs and node.op_type == "Cast"):
                found.append(Violation(*where, RULE_UINT8, f"input {first} is UINT8; cast it to float first"))
        elif first in types and allowed and node.op_type not in _OUTPUT_TYPED:
            name = _type_name(types[first], family)
            if name not in allowed:
                found.append(Violation(*where, RULE_TYPE, f"input {first} is {name}, TensorRT {label} takes "
                                                          f"{','.join(sorted(allowed))}"))
        for out in node.output:
            if types.get(out) == _UINT8 and out not in outputs:
                found.append(Violation(*where, RULE_UINT8, f"output {out} is an intermediate UINT8 tensor"))
        if node.op_type in _QDQ:
            found.extend(_qdq_violations(node, where, consts))
        if node.op_type == "InstanceNormalization":
            found.extend(_norm_violations(node, where, types, consts, family))
    return RulesVerdict(label, f"{table.source}{'' if exact else f' (nearest table to {label})'}",
                        tuple(found), tuple(sorted(used_plugins)), len({n.op_type for n in g.node}))


def _qdq_violations(node, where: tuple[str, str], consts: dict) -> list[Violation]:
    if len(node.input) < 3 or not node.input[2]:
        return [Violation(*where, RULE_QDQ, "no zero point (TensorRT 8.6 needs an INT8 zero point of 0)")]
    zero = consts.get(node.input[2])
    if zero is None:
        return [Violation(*where, RULE_QDQ, f"zero point {node.input[2]} is not a constant")]
    if zero.dtype.name != "int8":
        return [Violation(*where, RULE_QDQ, f"zero point {node.input[2]} is {zero.dtype.name}, not int8")]
    if zero.any():
        return [Violation(*where, RULE_QDQ, f"zero point {node.input[2]} is not 0 (max |z| {abs(zero).max()})")]
    scale = consts.get(node.input[1])
    if node.op_type == "DequantizeLinear" and node.input[0] in consts and scale is not None and scale.size > 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if axis != 0:
            return [Violation(*where, RULE_AXIS, f"weight {node.input[0]} is quantized per channel on axis {axis}")]
    return []


def _norm_violations(node, where: tuple[str, str], types: dict, consts: dict,
                     family: ApiFamily) -> list[Violation]:
    scale, bias = node.input[1], node.input[2]
    if scale not in consts or bias not in consts:
        return [Violation(*where, RULE_NORM, "scale and bias must be initializers")]
    if family is ApiFamily.TRT8 and (types.get(scale) != _FLOAT or types.get(bias) != _FLOAT):
        return [Violation(*where, RULE_NORM, f"scale {scale} is {_type_name(types.get(scale, 0), family)}, "
                                             "the plugin reads its fields as float32")]
    if len({types.get(node.input[0]), types.get(scale), types.get(bias)}) > 1:
        return [Violation(*where, RULE_NORM_TYPES, "input, scale and bias differ in type")]
    return []


def check_trt_rules(path: Path, version: TrtVersion | str) -> RulesVerdict:
    """The verdict of TensorRT `version`'s parser rules on the ONNX file `path`."""
    return check_file(path, [version])[0]


def check_file(path: Path, versions) -> list[RulesVerdict]:
    """The verdicts of several TensorRT versions on one ONNX file (loaded once)."""
    try:
        import onnx
    except ImportError:
        raise missing_package("onnx", "checking an ONNX file against TensorRT's parser rules",
                              "pip install onnx") from None
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # a damaged or foreign file: protobuf's own error, in one line
        raise DdadError(f"TensorRT cannot parse {Path(path).name}: not an ONNX file "
                        f"({str(exc).splitlines()[0][:120]})") from None
    return [check_model(model, v) for v in versions]


def require_parsable(path: Path, versions) -> list[RulesVerdict]:
    """The verdicts of `versions` on `path`; DdadError (one line: node and rule) at the first that fails."""
    verdicts = check_file(path, versions)
    for verdict in verdicts:
        if not verdict.ok:
            raise DdadError(verdict.first_line(Path(path).name))
    return verdicts


def versions_named(names) -> list[str]:
    """Distinct major.minor labels of `names`, in version order ("10.16.1" → "10.16")."""
    parsed = {TrtVersion.parse(str(n)) for n in names}
    return [f"{v.major}.{v.minor}" for v in sorted({TrtVersion(v.major, v.minor) for v in parsed})]


def tensorrt_rules_summary(path: Path, versions, log: Callable[[str], None] = print) -> dict[str, dict]:
    """Check `path` against each of `versions` (the build profiles': tensorrt_profile.profile_tensorrt_versions)
    for the manifest (version → verdict); says the result in the log.

    A violation is recorded, not raised: the bundle still runs on ONNX Runtime; `export --target tensorrt` and
    `build` refuse it.
    """
    verdicts = check_file(path, versions)
    for v in verdicts:
        log(f"  TensorRT {v.tensorrt} parser rules: " + ("ok" if v.ok else v.first_line(Path(path).name))
            + (f"; plugins {', '.join(v.plugins)}" if v.plugins else ""))
    return {v.tensorrt: v.as_dict() for v in verdicts}


def refuse_unparsable(recorded: dict[str, dict], name: str) -> None:
    """DdadError with the first recorded violation (a manifest's `tensorrt_rules`), if any version has one."""
    for version, verdict in recorded.items():
        if not verdict.get("ok", False):
            more = verdict.get("violation_count", 1) - 1
            raise DdadError(f"{name} does not parse on TensorRT {version}: node {verdict['violations'][0]}"
                            f"{f' (+{more} more)' if more > 0 else ''}")


def log_parser_rules(path: Path, version: TrtVersion, log: Callable[[str], None] = print) -> RulesVerdict:
    """Before a build: the installed version's rules on `path`, raised as one line when broken, else logged."""
    (verdict,) = require_parsable(path, [version])
    log(f"{Path(path).name} meets TensorRT {verdict.tensorrt}'s parser rules ({verdict.table})"
        + (f"; plugins: {', '.join(verdict.plugins)}" if verdict.plugins else ""))
    return verdict
