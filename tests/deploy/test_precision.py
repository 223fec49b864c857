"""FP16 conversion and INT8 quantization of the exported graph, recipes and thresholds.

FP16: the node groups exist in the real graph, nodes kept in FP32 really compute in FP32 (no FP16 round
trips left between them), and the fp16 bundle keeps exactly the groups its own measurements condemn.
INT8: Q/DQ symmetric with zero points 0, the blur left in float, and the accuracy-guided fallback finds
a node that is made sensitive on purpose.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto
from torch import nn

from ddad_edge.bundle import Precision
from ddad_edge.deploy.fidelity import FidelitySet, output_error, rank_correlation, run_onnx
from ddad_edge.deploy.int8 import quantize_file
from ddad_edge.deploy.int8_fallback import Attempt, missed, quantize_int8
from ddad_edge.deploy.precision import NodeGroup, convert_fp16, emulate_fp16, group_of, nodes_of_groups
from ddad_edge.deploy.qdq_graph import check_symmetric
from ddad_edge.deploy.recipes import Int8Recipe, Sensitivity, Tolerance, load_recipe, recipe_for
from ddad_edge.deploy.thresholds import ThresholdRule, compute_thresholds
from ddad_edge.errors import DdadError
from ddad_edge.runtime.ort_session import session_options
from tests.deploy.tiny_bundles import prepared, tiny_bundle, tiny_project

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


@pytest.fixture(scope="module")
def prep(project):
    return prepared(project)


def _float_input_types(model) -> dict[str, list[int]]:
    """Element types of each node's float-ish inputs, after shape inference."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)}
    types.update({t.name: t.data_type for t in inferred.graph.initializer})
    return {n.name: [types.get(i) for i in n.input if types.get(i) in (TensorProto.FLOAT, TensorProto.FLOAT16)]
            for n in inferred.graph.node}


def test_every_node_group_is_found_in_the_exported_graph(prep):
    model = onnx.load(str(prep.fp32))
    for group in NodeGroup:
        assert nodes_of_groups(model, [group]), f"no {group.value} nodes: did the exporter rename them?"
    blur = nodes_of_groups(model, [NodeGroup.BLUR])
    assert sum(1 for n in model.graph.node if n.name in blur and n.op_type == "Conv") == 2  # separable blur
    outputs = {o.name for o in model.graph.output}
    producers = [n for n in model.graph.node if set(n.output) & outputs]
    assert {group_of(n) for n in producers} <= {NodeGroup.BLUR, NodeGroup.DISTANCES}
    # every matrix product of the UNet is the time embedding's, in each of the K unrolled calls
    gemms = [n for n in model.graph.node if n.op_type == "Gemm" and "/unet" in n.name]
    assert any("emb_1/" in n.name for n in gemms)  # the second call's names carry the exporter's suffix
    assert {group_of(n) for n in gemms} == {NodeGroup.TIME_EMBEDDING}, \
        sorted(n.name for n in gemms if group_of(n) is not NodeGroup.TIME_EMBEDDING)[:3]


def test_fp16_with_every_node_kept_is_exactly_fp32(prep, tmp_path):
    model = onnx.load(str(prep.fp32))
    frames = prep.fid.frames[:2]
    ref = run_onnx(prep.fp32, frames)
    kept = convert_fp16(prep.fp32, tmp_path / "kept.onnx", [n.name for n in model.graph.node])
    maps, scores = run_onnx(kept, frames)
    np.testing.assert_array_equal(maps, ref[0])
    np.testing.assert_array_equal(scores, ref[1])
    assert emulate_fp16(prep.fp32, tmp_path / "none.onnx", []) is not None
    np.testing.assert_array_equal(run_onnx(tmp_path / "none.onnx", frames)[0], ref[0])


def test_fp16_file_keeps_float32_io_and_converts_the_rest(prep, tmp_path):
    model = onnx.load(str(prep.fp32))
    keep = nodes_of_groups(model, [NodeGroup.DISTANCES])
    path = convert_fp16(prep.fp32, tmp_path / "f16.onnx", keep)
    converted = onnx.load(str(path))
    assert converted.graph.input[0].type.tensor_type.elem_type == TensorProto.UINT8
    assert all(o.type.tensor_type.elem_type == TensorProto.FLOAT for o in converted.graph.output)
    types = _float_input_types(converted)
    convs = [n.name for n in converted.graph.node if n.op_type == "Conv" and "/unet/" in n.name]
    assert convs and all(TensorProto.FLOAT16 in types[c] for c in convs)
    assert all(TensorProto.FLOAT16 not in types[n] for n in keep if n in types)
    err = output_error(*run_onnx(path, prep.fid.frames[:2]), prep.ref.maps[:2], prep.ref.scores[:2])
    assert err.map_rel < 1e-2


def test_emulated_fp16_rounding_changes_the_output(prep, tmp_path):
    model = onnx.load(str(prep.fp32))
    frames = prep.fid.frames[:2]
    ref = run_onnx(prep.fp32, frames)
    path = emulate_fp16(prep.fp32, tmp_path / "all.onnx", [n.name for n in model.graph.node])
    err = output_error(*run_onnx(path, frames), *ref)
    assert 1e-5 < err.map_rel < 0.5  # FP16 rounding is visible, and not garbage


def test_fp16_bundle_keeps_exactly_the_groups_its_measurements_condemn(project):
    bundle = tiny_bundle(project, "fp16")
    details = json.loads(bundle.file("report.json").read_text())["precision_details"]
    limit = details["keep_if_map_rel_above"]
    measured = details["group_error_alone"]
    assert set(measured) >= {g.value for g in NodeGroup} | {"all", "rest"}
    condemned = {g for g in (x.value for x in NodeGroup) if measured[g]["map_max_rel"] > limit}
    # the default recipe keeps nothing unconditionally; normalization always stays FP32 (TensorRT 8.6's
    # InstanceNormalization plugin reads float32 parameters: precision.ALWAYS_FP32_OPS)
    assert set(details["kept_fp32_groups"]) == condemned | {NodeGroup.NORMALIZATION.value}
    model = onnx.load(str(bundle.model_path))
    types = _float_input_types(model)
    for node in model.graph.node:
        group = group_of(node)
        if group is not None and group.value in condemned and types.get(node.name):
            assert TensorProto.FLOAT16 not in types[node.name], node.name
    emulated = details["emulated_fp16_error"]
    assert emulated["map_max_rel"] <= 1e-2 and emulated["score_max_rel"] <= 1e-2  # the recipe's tolerance
    assert bundle.manifest["calibration"]["kept_fp32_groups"] == details["kept_fp32_groups"]


def test_int8_bundle_is_symmetric_qdq_with_the_blur_in_float(project):
    bundle = tiny_bundle(project, "int8")
    model = onnx.load(str(bundle.model_path))
    assert check_symmetric(bundle.model_path) > 0
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = [n for n in convs if producers.get(n.input[1]) is not None
                 and producers[n.input[1]].op_type == "DequantizeLinear"]
    details = json.loads(bundle.file("report.json").read_text())["precision_details"]
    kept = set(details["kept_fp32_by_recipe"]) | set(details["fallback_nodes"])
    assert quantized
    for n in convs:  # exactly the nodes the report lists as kept read float weights
        assert (n in quantized) == (n.name not in kept), n.name
        if group_of(n) is NodeGroup.BLUR:
            assert n not in quantized
    for out in model.graph.output:
        assert producers[out.name].op_type not in ("QuantizeLinear", "DequantizeLinear")
    for n in quantized:  # biases stay FP32: TensorRT dequantizes INT8 tensors only
        if len(n.input) > 2:
            assert producers.get(n.input[2]) is None or producers[n.input[2]].op_type != "DequantizeLinear"
    assert details["calibration_images"] == 8 and details["attempts"][-1]["budget_met"]
    assert details["attempts"][-1]["score_rank_correlation"] >= 0.98


def _ort_optimized(path: Path, dst: Path):
    """The graph ONNX Runtime runs on the CPU (extended optimisations: its Q/DQ fusions, no CPU layouts)."""
    import onnxruntime as ort

    options = session_options(ort, "extended")
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(str(dst))


def test_int8_bundle_runs_integer_convolutions_in_onnx_runtime(project, tmp_path):
    """Q/DQ on convolution outputs lets ONNX Runtime fuse QLinearConv; with Q/DQ on inputs only it fused
    none and ran every convolution in float on weights dequantized per call (1.5x slower than FP32 at 256
    px). The UNet's prediction, the map and the score stay float: the sampler reads the head's float output."""
    bundle = tiny_bundle(project, "int8")
    model = onnx.load(str(bundle.model_path))
    details = json.loads(bundle.file("report.json").read_text())["precision_details"]
    kept = set(details["kept_fp32_by_recipe"]) | set(details["fallback_nodes"])
    quantized = [n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in kept]
    ran = _ort_optimized(bundle.model_path, tmp_path / "ort.onnx")
    fused = [n for n in ran.graph.node if n.op_type == "QLinearConv"]
    assert len(fused) >= len(quantized) // 2, (len(fused), len(quantized))
    heads = [n for n in model.graph.node if n.op_type == "Conv" and "/unet/head/" in n.name]
    assert heads
    for head in heads:
        readers = [r.op_type for r in model.graph.node if head.output[0] in r.input]
        assert readers and "QuantizeLinear" not in readers, readers
    assert [n.name for n in model.graph.node if n.name in kept and _reads_dequantized_activation(model, n)] == []


def test_int8_rounds_a_convolution_input_for_that_convolution_alone(project, tmp_path):
    """A tensor that a quantized convolution reads and float ops read too (the UNet's skip concatenation,
    read by a 1x1 skip convolution and by a GroupNorm and its shape): the float ops read it unrounded, and
    ONNX Runtime fuses the convolution. While the Dequantize node had other readers it ran the convolution
    in float (20 of the 140 convolutions of 256-px DDAD-S, and the dequantization twice). In the extractor,
    the residual additions read their convolutions' INT8 outputs like any other reader, so those fuse too."""
    bundle = tiny_bundle(project, "int8")
    model = onnx.load(str(bundle.model_path))
    producers = {o: n for n in model.graph.node for o in n.output}
    readers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    details = json.loads(bundle.file("report.json").read_text())["precision_details"]
    kept = set(details["kept_fp32_by_recipe"]) | set(details["fallback_nodes"])
    quantized = {n.name for n in model.graph.node if n.op_type == "Conv" and n.name not in kept}
    input_pairs = 0
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        writer = producers.get(q.input[0])
        if writer is not None and writer.name in quantized:
            continue  # a convolution's output pair: float ops read through it (that is what fuses the writer)
        input_pairs += 1
        for dq in readers.get(q.output[0], []):
            assert {r.name for r in readers.get(dq.output[0], [])} <= quantized, (q.name, dq.name)
    assert input_pairs
    ran = _ort_optimized(bundle.model_path, tmp_path / "ort.onnx")
    fused = {n.name for n in ran.graph.node if n.op_type == "QLinearConv"}
    skips = {n for n in quantized if "/unet/" in n and "/skip/" in n}
    assert skips and skips <= fused, sorted(skips - fused)
    residual = [n for n in model.graph.node if n.name in quantized and "/extractor/" in n.name
                and any(r.op_type == "Add" for r in readers.get(n.output[0], []))]
    assert residual == []  # an extractor convolution read by its block's addition directly stays float
    extractor = {n for n in quantized if "/extractor/" in n}
    assert extractor and len(extractor & fused) >= len(extractor) // 2, (len(extractor & fused), len(extractor))


def _reads_dequantized_activation(model, node) -> bool:
    """Whether `node` reads the output of a DequantizeLinear fed by a QuantizeLinear (a rounded activation)."""
    producers = {o: n for n in model.graph.node for o in n.output}
    for name in node.input:
        dq = producers.get(name)
        q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            return True
    return False


def _random_convs(g: torch.Generator, *convs: nn.Conv2d) -> None:
    for c in convs:
        c.weight.copy_(torch.randn(c.weight.shape, generator=g) * 0.3)
        c.bias.zero_()


def _outlier_channel(writer: nn.Conv2d, reader: nn.Conv2d) -> None:
    """`writer`'s channel 0 becomes a useless outlier (2000) that `reader` ignores: per-tensor INT8 on the
    reader's input then wipes out the channels that carry the signal."""
    writer.bias[0] = 2000.0
    reader.weight[:, 0] = 0.0


class _SensitiveNet(nn.Module):
    """Three convolutions; the second reads a tensor whose range is ruled by a useless outlier channel, so
    per-tensor INT8 on its input wipes out the channels that carry the signal."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 1, 1)
        with torch.no_grad():
            _random_convs(g, self.c1, self.c2, self.c3)
            _outlier_channel(self.c1, self.c2)

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        m = self.c3(torch.relu(self.c2(self.c1(x)))).abs()
        return m, m.flatten(1).amax(dim=1)


def _export_toy(path: Path, net: type[nn.Module] | None = None) -> None:
    """`net` (default _SensitiveNet) as an ONNX file at 16 px with a dynamic batch."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export((net or _SensitiveNet)().eval(), (torch.zeros(2, 16, 16, 3, dtype=torch.uint8),), str(path),
                          dynamo=False, opset_version=17, input_names=["frames"],
                          output_names=["anomaly_map", "score"],
                          dynamic_axes={"frames": {0: "N"}, "anomaly_map": {0: "N"}, "score": {0: "N"}})


def test_int8_fallback_keeps_the_sensitive_node_in_fp32(tmp_path):
    path = tmp_path / "toy.onnx"
    _export_toy(path)
    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"]
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    fid = FidelitySet(frames, np.r_[np.zeros(6, int), np.ones(6, int)])
    ref = run_onnx(path, frames)
    recipe = Int8Recipe(calibration_images=6, keep_fp32=(), fallback_rounds=2, fallback_fraction=0.3)
    result = quantize_int8(path, tmp_path / "q.onnx", frames[:6], fid, *ref, recipe, Tolerance(0.05, 0.05),
                           tmp_path, log=lambda _: None)
    assert not result.attempts[0].met  # everything quantized: the outlier ruins the second conv
    assert result.attempts[-1].met and len(result.attempts) == 2
    assert result.sensitivity[0][0] == names[1]
    assert result.fallback_nodes == [names[1]]
    maps, scores = run_onnx(tmp_path / "q.onnx", frames)
    assert rank_correlation(scores, ref[1]) >= 0.98
    assert check_symmetric(tmp_path / "q.onnx") > 0


def _weight_root(producers: dict, name: str) -> str:
    """The initializer a node's weight input comes from, through its DequantizeLinear if it has one."""
    dq = producers.get(name)
    return dq.input[0] if dq is not None and dq.op_type == "DequantizeLinear" else name


def assert_weight_siblings_share_precision(model) -> int:
    """Nodes that read one weight (the same convolution in each unrolled step) are all quantized or all
    kept in float: INT8 on one of them and not on another is a precision no engine can give one weight.
    Returns the number of weights read by more than one node."""
    producers = {o: n for n in model.graph.node for o in n.output}
    groups: dict[str, list] = {}
    for n in model.graph.node:
        if n.op_type in ("Conv", "MatMul", "Gemm") and len(n.input) > 1:
            groups.setdefault(_weight_root(producers, n.input[1]), []).append(n)
    shared = {w: nodes for w, nodes in groups.items() if len(nodes) > 1}
    for weight, nodes in shared.items():
        precision = {n.name: _reads_dequantized_activation(model, n) for n in nodes}
        assert len(set(precision.values())) == 1, f"readers of {weight} differ in precision: {precision}"
    return len(shared)


class _SiblingNet(_SensitiveNet):
    """As _SensitiveNet, with its sensitive convolution called twice on one weight, as an unrolled sampler
    calls the UNet's: the first call reads the outlier channel, the second reads a tame tensor."""

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        m = self.c3(torch.relu(self.c2(torch.relu(self.c2(self.c1(x)))))).abs()
        return m, m.flatten(1).amax(dim=1)


@pytest.mark.parametrize("sensitivity", ["output", "local"])
def test_int8_fallback_keeps_weight_siblings_together(tmp_path, sensitivity):
    """The fallback keeps one node in FP32 in its first retry; the node shares its weight with another call
    of the same convolution, so both are kept, and the file gives them one precision."""
    path = tmp_path / "toy.onnx"
    _export_toy(path, _SiblingNet)
    model = onnx.load(str(path))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    siblings = [n.name for n in convs if n.input[1] == convs[1].input[1]]
    assert len(convs) == 4 and siblings == [convs[1].name, convs[2].name], "the toy must share a weight"
    frames = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    fid = FidelitySet(frames, np.r_[np.zeros(6, int), np.ones(6, int)])
    ref = run_onnx(path, frames)
    recipe = Int8Recipe(calibration_images=6, keep_fp32=(), fallback_rounds=2, fallback_fraction=0.25,
                        sensitivity=Sensitivity(sensitivity))
    result = quantize_int8(path, tmp_path / "q.onnx", frames[:6], fid, *ref, recipe, Tolerance(0.05, 0.05),
                           tmp_path, log=lambda _: None)
    assert not result.attempts[0].met and result.attempts[-1].met
    assert result.sensitivity[0][0] in siblings  # the one node the first retry keeps ...
    assert result.attempts[1].excluded == siblings  # ... comes with its sibling
    assert sorted(result.fallback_nodes) == sorted(siblings)
    quantized = onnx.load(str(tmp_path / "q.onnx"))
    assert assert_weight_siblings_share_precision(quantized) == 1
    kept = {n.name: _reads_dequantized_activation(quantized, n) for n in quantized.graph.node if n.name in siblings}
    assert kept == {name: False for name in siblings}


class _ReconstructionNet(nn.Module):
    """A map that is a small difference of large tensors, as DDAD's |x - x̂0|: `recon` copies the image
    within 1%, so rounding its tensors to INT8 (steps of ~1/127) moves the map by far more than 5% of its
    maximum, although its own relative error is small. A side branch reads an outlier channel (per-tensor
    INT8 on its input wipes out its signal: a large error of its own) but reaches the map scaled by 1e-4."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.recon = nn.Conv2d(3, 3, 1)
        self.side_in, self.side_out = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 3, 1)
        with torch.no_grad():
            self.recon.weight.copy_(torch.eye(3)[:, :, None, None] + torch.randn(3, 3, 1, 1, generator=g) * 0.01)
            self.recon.bias.zero_()
            _random_convs(g, self.side_in, self.side_out)
            _outlier_channel(self.side_in, self.side_out)

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        side = self.side_out(torch.relu(self.side_in(x)))
        m = (x - self.recon(x) - 1e-4 * side).abs().mean(dim=1, keepdim=True)
        return m, m.flatten(1).amax(dim=1)


@pytest.mark.parametrize("sensitivity", ["output", "local"])
def test_int8_fallback_ranks_by_the_error_in_the_map(tmp_path, sensitivity):
    path = tmp_path / "toy.onnx"
    _export_toy(path, _ReconstructionNet)
    recon = next(n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv" and "recon" in n.name)
    frames = np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8)
    fid = FidelitySet(frames, np.r_[np.zeros(6, int), np.ones(6, int)])
    ref = run_onnx(path, frames)
    # three convolutions: the first retry keeps exactly one of them in FP32
    recipe = Int8Recipe(calibration_images=6, keep_fp32=(), fallback_rounds=1, fallback_fraction=0.3,
                        sensitivity=Sensitivity(sensitivity))
    make = lambda: quantize_int8(path, tmp_path / "q.onnx", frames[:6], fid, *ref, recipe,  # noqa: E731
                                 Tolerance(0.05, 0.05), tmp_path, log=lambda _: None)
    if sensitivity == "local":
        # the side branch's own error is the largest, so the local ranking keeps it, and the map stays off
        with pytest.raises(DdadError, match="after 1 fallback rounds"):
            make()
        return
    result = make()
    assert result.attempts[0].map_rel > 0.05  # everything quantized: the copy's rounding is in the map
    assert result.sensitivity[0][0] == recon and result.sensitivity[0][1] > 1.0  # alone, past the budget
    assert all(measure < 0.25 for _, measure in result.sensitivity[1:])  # the side branch hardly reaches it
    assert result.fallback_nodes == [recon] and result.attempts[-1].met and len(result.attempts) == 2
    maps, _ = run_onnx(tmp_path / "q.onnx", frames)
    assert output_error(maps, maps.max(axis=(1, 2, 3)), *ref).map_rel <= 0.05


@pytest.mark.parametrize("net", ["sensitive", "reconstruction"])
def test_switchable_file_computes_each_group_alone_as_the_fallback_makes_it(tmp_path, net):
    """The output ranking runs one file with a switch per weight group: all on, it is the first try's file;
    all off, the FP32 file; one on, the file the fallback makes with every other target kept in FP32. (The
    reconstruction toy rounds its input for two convolutions beside a float op that reads it unrounded.)"""
    from ddad_edge.deploy.int8 import quantization_inputs, quantize_targets
    from ddad_edge.deploy.int8_sensitivity import SWITCH_INPUT, distinct_groups, switchable, weight_groups
    from ddad_edge.runtime.ort_session import open_session

    path = tmp_path / "toy.onnx"
    _export_toy(path, _SensitiveNet if net == "sensitive" else _ReconstructionNet)
    frames = np.random.default_rng(1).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    recipe = Int8Recipe(calibration_images=6, keep_fp32=())
    source, cache = quantization_inputs(path, tmp_path)
    targets, kept = quantize_targets(onnx.load(str(path)), recipe)
    siblings = weight_groups(onnx.load(str(source)), targets)
    groups = distinct_groups(targets, siblings)
    first = quantize_file(source, tmp_path / "first.onnx", frames, recipe, cache, kept)
    model, unswitched = switchable(first, source, groups)
    assert unswitched == 0  # every rounding of the file is behind a switch
    session = open_session(model.SerializeToString())

    def run(mask):
        return session.run(["anomaly_map", "score"], {"frames": frames, SWITCH_INPUT: np.asarray(mask, np.float32)})

    def close(a, b):  # the switched file runs its convolutions in float on the rounded values, unfused
        err = output_error(a[0], a[1], b[0], b[1])
        return err.map_rel < 1e-3 and err.score_rel < 1e-3

    assert len(groups) == 3
    assert close(run([1, 1, 1]), run_onnx(first, frames))
    assert close(run([0, 0, 0]), run_onnx(path, frames))
    for i, group in enumerate(groups):
        alone = quantize_file(source, tmp_path / f"alone{i}.onnx", frames, recipe, cache,
                              kept + [t for t in targets if t not in group])
        assert close(run(np.arange(3) == i), run_onnx(alone, frames)), group
    # alone, the conv that reads the outlier (sensitive) or the copy (reconstruction) is far from FP32
    worst = next(i for i, g in enumerate(groups) if ("/c2/" if net == "sensitive" else "/recon/") in g[0])
    assert not close(run(np.arange(3) == worst), run_onnx(path, frames))


class _ConvOutNet(nn.Module):
    """Two convolutions, the second writing the graph output itself."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 1, 1)

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        m = self.c2(torch.relu(self.c1(x)))
        return m, m.flatten(1).amax(dim=1)


def _quantized_toy(net: nn.Module, tmp_path: Path) -> tuple[Path, np.ndarray]:
    """(`net` exported at 16 px and quantized by the default placement with nothing kept in float, its 4
    random calibration frames)."""
    path = tmp_path / "toy.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(1, 16, 16, 3, dtype=torch.uint8),), str(path),
                          dynamo=False, opset_version=17, input_names=["frames"],
                          output_names=["anomaly_map", "score"])
    frames = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    recipe = Int8Recipe(calibration_images=4, keep_fp32=())
    return quantize_file(path, tmp_path / "q.onnx", frames, recipe, tmp_path / "ranges.json", []), frames


def test_int8_never_writes_a_graph_output_through_a_qdq_pair(tmp_path):
    """With nothing kept in float, the last convolution's output Q/DQ would make the map INT8-rounded while
    the score (read by a float op) is not; the map keeps the float tensor instead."""
    q, frames = _quantized_toy(_ConvOutNet(), tmp_path)
    model = onnx.load(str(q))
    producers = {o: n for n in model.graph.node for o in n.output}
    assert [producers[o.name].op_type for o in model.graph.output] == ["Conv", "ReduceMax"]
    assert producers["anomaly_map"].input[0] in producers  # the conv itself reads a quantized input
    assert producers[producers["anomaly_map"].input[0]].op_type == "DequantizeLinear"
    assert check_symmetric(q) > 0
    maps, scores = run_onnx(q, frames[:1])
    np.testing.assert_allclose(scores, maps.reshape(1, -1).max(axis=1), rtol=1e-6)  # map and score agree


class _SharedInputNet(nn.Module):
    """A tensor written by a float op and read by a convolution and by float arithmetic beside it, as the
    UNet's skip concatenation is read by its 1x1 skip convolution and by a GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.c1, self.c2, self.c3 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 1, 3, padding=1)

    def forward(self, frames):
        x = frames.permute(0, 3, 1, 2).float() * (2.0 / 255.0) - 1.0
        t = torch.sigmoid(self.c1(x))  # written by a float op
        u = self.c2(t) + t.mean(dim=1, keepdim=True)  # read by a convolution and by a float reduction
        m = self.c3(u).abs()
        return m, m.flatten(1).amax(dim=1)


def test_int8_float_readers_of_a_convolution_input_read_it_unrounded(tmp_path):
    q, frames = _quantized_toy(_SharedInputNet(), tmp_path)
    model = onnx.load(str(q))
    producers = {o: n for n in model.graph.node for o in n.output}
    mean = next(n for n in model.graph.node if n.op_type == "ReduceMean")
    c2 = next(n for n in model.graph.node if n.name == "/c2/Conv")
    assert producers[mean.input[0]].op_type == "Sigmoid"  # the float reduction reads the float tensor
    assert producers[c2.input[0]].op_type == "DequantizeLinear"  # the convolution reads it rounded
    ran = _ort_optimized(q, tmp_path / "ort.onnx")
    # c3 writes the map: its output stays float, so it runs as a float convolution by design
    assert {n.name for n in ran.graph.node if n.op_type == "QLinearConv"} == {"/c1/Conv", "/c2/Conv"}
    maps, _ = run_onnx(q, frames[:1])
    assert np.isfinite(maps).all()


def test_int8_gives_up_in_one_line_when_no_round_meets_the_budget(tmp_path):
    path = tmp_path / "toy.onnx"
    _export_toy(path)
    frames = np.random.default_rng(1).integers(0, 256, (8, 16, 16, 3), dtype=np.uint8)
    fid = FidelitySet(frames, np.r_[np.zeros(4, int), np.ones(4, int)])
    recipe = Int8Recipe(calibration_images=4, keep_fp32=(), fallback_rounds=0)
    with pytest.raises(DdadError, match="fallback rounds") as exc:
        quantize_int8(path, tmp_path / "q.onnx", frames[:4], fid, *run_onnx(path, frames), recipe,
                      Tolerance(0.05, 0.05), tmp_path, log=lambda _: None)
    assert "\n" not in str(exc.value)


def test_the_give_up_line_names_only_what_was_missed():
    tol = Tolerance(0.05, 0.05)
    assert missed(Attempt([], 0.998, 0.0944, 0.133, False), 0.98, tol) == \
        "map error 0.0944 of max > 0.05, score error 0.133 > 0.05"
    assert missed(Attempt([], 0.91, 0.01, 0.02, False), 0.98, tol) == "score rank correlation 0.910 < 0.98"
    assert missed(Attempt([], 0.99, 0.01, 0.02, True), 0.98, tol) == "met"


def test_every_shipped_recipe_loads_and_knows_its_precision(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # found by name from any folder, not only a checkout's root
    shipped = REPO / "calibration"
    names = sorted(p.stem for p in shipped.glob("*.yaml"))
    assert {"fp32", "fp16", "fp16-safe", "int8", "int8-entropy", "int8-percentile"} <= set(names)
    for name in names:
        recipe = load_recipe(shipped / f"{name}.yaml")
        assert recipe.name == name and recipe.description
        assert recipe_for(recipe.precision, shipped / f"{name}.yaml") == recipe
        assert load_recipe(name) == recipe
    assert load_recipe("int8-percentile").int8.method.value == "percentile"
    assert load_recipe("int8").int8.sensitivity.value == "output"
    assert load_recipe("fp16-safe").fp16.keep_fp32 == tuple(g.value for g in NodeGroup)


def test_a_users_own_calibration_folder_comes_first(monkeypatch, tmp_path):
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / "int8.yaml").write_text("precision: int8\ndescription: mine\n")
    monkeypatch.chdir(tmp_path)
    assert recipe_for(Precision.INT8).description == "mine"
    assert recipe_for(Precision.FP16).name == "fp16"  # the shipped ones stay reachable


def test_recipe_errors_name_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("precision: int8\nint8: {methd: minmax}\n")
    with pytest.raises(DdadError, match="int8.methd"):
        load_recipe(bad)
    bad.write_text("precision: int8\nint8: {sensitivity: global}\n")
    with pytest.raises(DdadError, match="int8.sensitivity"):
        load_recipe(bad)
    bad.write_text("precision: fp16\nfp16: {keep_fp32: [groupnorm]}\n")
    with pytest.raises(DdadError, match="groupnorm"):
        load_recipe(bad)
    with pytest.raises(DdadError, match="is for int8, not fp16"):
        recipe_for(Precision.FP16, "int8")
    with pytest.raises(DdadError, match="no recipe"):
        load_recipe("no-such-recipe")


def test_thresholds_arithmetic_and_f1_only_with_both_classes():
    scores = np.linspace(1.0, 2.0, 101)
    maps = np.linspace(0.0, 1.0, 1000).reshape(10, 1, 10, 10)
    th = compute_thresholds(scores, maps, ThresholdRule(quantile=0.5, margin=0.1, pixel_quantile=1.0))
    assert th["image"] == pytest.approx(1.5 * 1.1) and th["pixel"] == pytest.approx(1.0 * 1.1)
    assert th["image_f1"] is None
    labels = np.array([0, 0, 1, 1])
    th = compute_thresholds(scores, maps, ThresholdRule(), labels, np.array([0.1, 0.2, 0.3, 0.4]))
    assert th["image_f1"] == pytest.approx(0.3)
    assert compute_thresholds(scores, maps, ThresholdRule(), np.zeros(4), np.ones(4))["image_f1"] is None
    with pytest.raises(DdadError):
        ThresholdRule(quantile=1.5)
