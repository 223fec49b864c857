"""The TensorRT parser rules (deploy/trt_rules.py) on small hand-made graphs: each rule refuses what it
should, in one line naming the node and the rule, and lets the legal form of the same graph through."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ddad_edge.deploy import trt_rules
from ddad_edge.deploy.trt_rules import check_model, require_parsable, support_tables, table_for
from ddad_edge.errors import DdadError
from ddad_edge.runtime.trt_compat import TrtVersion

VERSIONS = ("8.6", "10.3", "10.16", "11.4")


def model_of(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def frames_graph(cast_first: bool):
    """frames uint8 (1, 4, 4, 3) → float (1, 3, 4, 4), with the Cast before or after the Transpose."""
    frames = helper.make_tensor_value_info("frames", TensorProto.UINT8, [1, 4, 4, 3])
    out = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    if cast_first:
        nodes = [helper.make_node("Cast", ["frames"], ["f"], to=TensorProto.FLOAT, name="cast"),
                 helper.make_node("Transpose", ["f"], ["x"], perm=[0, 3, 1, 2], name="transpose")]
    else:
        nodes = [helper.make_node("Transpose", ["frames"], ["t"], perm=[0, 3, 1, 2], name="transpose"),
                 helper.make_node("Cast", ["t"], ["x"], to=TensorProto.FLOAT, name="cast")]
    return model_of(nodes, [frames], [out])


def qdq_graph(zero_point: int = 0, axis: int = 0, zero_type=np.int8):
    """x → Conv with a Q/DQ weight (2 output channels, per-channel scales)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    inits = [numpy_helper.from_array(np.ones((2, 2, 1, 1), np.int8), "w_q"),
             numpy_helper.from_array(np.full(2, 0.1, np.float32), "w_scale"),
             numpy_helper.from_array(np.full(2, zero_point, zero_type), "w_zero")]
    nodes = [helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["w"], axis=axis, name="w_dq"),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    return model_of(nodes, [x], [y], inits)


def norm_graph(dtype=np.float32):
    """InstanceNormalization with scale and bias initializers of `dtype` (input of the same type)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    x = helper.make_tensor_value_info("x", elem, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", elem, [1, 2, 4, 4])
    inits = [numpy_helper.from_array(np.ones(2, dtype), "scale"), numpy_helper.from_array(np.zeros(2, dtype), "bias")]
    node = helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], name="norm")
    return model_of([node], [x], [y], inits)


def test_tables_name_their_source_branch_and_commit():
    tables = {t.branch: t for t in support_tables()}
    assert set(tables) == {"8.6-GA", "10.1-GA"}
    assert tables["8.6-GA"].opsets[1] == 17 and tables["10.1-GA"].opsets == (9, 20)
    for t in tables.values():
        assert "commit " in t.source and len(t.source.split("commit ")[1].split()[0]) == 40
    assert tables["10.1-GA"].ops["Cast"][1] >= {"FP32", "FP16", "UINT8"}
    assert table_for(TrtVersion.parse("8.6.1")) == (tables["8.6-GA"], True)
    assert table_for(TrtVersion.parse("11.4.0")) == (tables["10.1-GA"], False)  # nearest, and said so


@pytest.mark.parametrize("version", VERSIONS)
def test_uint8_transpose_is_refused_and_cast_first_passes(version):
    verdict = check_model(frames_graph(cast_first=False), version)
    assert not verdict.ok
    line = verdict.first_line("model.onnx")
    assert "node transpose (Transpose)" in line and trt_rules.RULE_UINT8 in line and "\n" not in line
    assert check_model(frames_graph(cast_first=True), version).ok


def test_an_operator_the_version_lacks_is_refused_on_that_version_only():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    model = model_of([helper.make_node("Hardmax", ["x"], ["y"], name="hard")], [x], [y])
    verdict = check_model(model, "8.6")  # Hardmax: N in 8.6-GA's table, Y in 10.1-GA's
    assert [(v.node, v.rule) for v in verdict.violations] == [("hard", trt_rules.RULE_OP)]
    assert "node hard (Hardmax)" in verdict.first_line("m.onnx")
    assert check_model(model, "10.3").ok


def test_opset_above_17_is_refused_on_8_6():
    model = frames_graph(cast_first=True)
    model.opset_import[0].version = 18
    assert [v.rule for v in check_model(model, "8.6").violations] == [trt_rules.RULE_OPSET]
    assert check_model(model, "10.3").ok


def test_nonzero_zero_point_is_refused_with_node_and_rule():
    assert check_model(qdq_graph(), "8.6").ok
    for version in VERSIONS:
        verdict = check_model(qdq_graph(zero_point=3), version)
        assert [(v.node, v.rule) for v in verdict.violations] == [("w_dq", trt_rules.RULE_QDQ)]
    line = check_model(qdq_graph(zero_point=3), "10.3").first_line("model.onnx")
    assert "node w_dq (DequantizeLinear) breaks 'Q/DQ INT8 with zero point 0'" in line


def test_uint8_zero_point_and_weight_axis_1_are_refused():
    assert [v.rule for v in check_model(qdq_graph(zero_type=np.uint8), "10.3").violations] == [trt_rules.RULE_QDQ]
    assert [v.rule for v in check_model(qdq_graph(axis=1), "10.3").violations] == [trt_rules.RULE_AXIS]


def test_fp16_instance_norm_parameters_are_refused_on_8_6_only():
    assert check_model(norm_graph(np.float32), "8.6").ok
    verdict = check_model(norm_graph(np.float16), "8.6")
    assert [v.rule for v in verdict.violations] == [trt_rules.RULE_NORM]
    assert verdict.plugins == ("InstanceNormalization_TRT",)
    assert check_model(norm_graph(np.float16), "10.3").ok  # native, one type


def test_instance_norm_scale_through_identity_is_not_an_initializer():
    model = norm_graph()
    model.graph.node.insert(0, helper.make_node("Identity", ["scale"], ["scale_copy"], name="copy"))
    model.graph.node[1].input[1] = "scale_copy"
    assert [v.rule for v in check_model(model, "8.6").violations] == [trt_rules.RULE_NORM]


def test_require_parsable_raises_one_line_naming_node_and_rule(tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save(frames_graph(cast_first=False), str(path))
    with pytest.raises(DdadError) as err:
        require_parsable(path, VERSIONS)
    text = str(err.value)
    assert text.startswith("model.onnx does not parse on TensorRT 8.6: node transpose (Transpose)") and "\n" not in text
    onnx.save(frames_graph(cast_first=True), str(path))
    assert [v.tensorrt for v in require_parsable(path, VERSIONS)] == list(VERSIONS)


@pytest.mark.parametrize("version", VERSIONS)
def test_fake_parser_refuses_what_the_rules_refuse(tmp_path, version):
    from tests.fakes.fake_tensorrt import FakeTensorRT

    trt = FakeTensorRT(version)
    path = tmp_path / "model.onnx"
    onnx.save(frames_graph(cast_first=False), str(path))
    builder = trt.Builder(trt.Logger(trt.Logger.WARNING))
    network = builder.create_network(1 if version == "8.6" else 0)
    parser = trt.OnnxParser(network, None)
    assert parser.parse_from_file(str(path)) is False
    assert parser.get_error(0).desc().startswith(f"transpose [Transpose]: {trt_rules.RULE_UINT8}")
    onnx.save(frames_graph(cast_first=True), str(path))
    assert trt.OnnxParser(network, None).parse_from_file(str(path)) is True


def test_build_refuses_a_violating_graph_before_parsing(tmp_path):
    from ddad_edge.bundle import write_manifest
    from ddad_edge.deploy.tensorrt_build import build_engine
    from ddad_edge.deploy.tensorrt_profile import BuildProfile
    from tests.bundle_factory import make_toy_bundle
    from tests.fakes.fake_cuda import FakeCuda
    from tests.fakes.fake_tensorrt import FakeTensorRT

    bundle = make_toy_bundle(tmp_path / "bundle")
    onnx.save(qdq_graph(zero_point=3), str(bundle.path / "model.onnx"))
    # a bundle written around the planted graph (its own signature, INT8 as the file is), so that loading
    # accepts it and only the parser rules can refuse it
    manifest = {k: v for k, v in bundle.manifest.items() if k != "signature"}
    write_manifest(bundle.path, {**manifest, "precision": "int8"})
    cuda = FakeCuda()
    trt = FakeTensorRT("10.16", cuda=cuda)
    with pytest.raises(DdadError, match=r"on TensorRT 10.16: node w_dq \(DequantizeLinear\) breaks 'Q/DQ INT8"):
        build_engine(bundle.path, BuildProfile(), trt=trt, cuda=cuda, log=lambda line: None)
    assert not any(call[0] == "parse_from_file" for call in trt.calls)
