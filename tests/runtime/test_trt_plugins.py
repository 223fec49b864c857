"""TensorRT plugins: 8.6's parser imports InstanceNormalization as a plugin unless told otherwise, and a
runner in a fresh process must register the standard plugins before it deserialises an engine.

FakeTensorRT models both (see its docstring): the 8.6 parser without NATIVE_INSTANCENORM puts the plugin
InstanceNormalization_TRT into the plan, and a runtime in a process that registered no plugins refuses
such a plan with TensorRT's "getPluginCreator could not find plugin" message.
"""

from __future__ import annotations

import pytest

from ddad_edge.bundle import read_bundle, write_manifest
from ddad_edge.deploy.tensorrt_build import build_engine
from ddad_edge.deploy.tensorrt_profile import BuildProfile
from ddad_edge.errors import DdadError
from ddad_edge.runtime.trt_runner import TensorRTRunner
from tests.bundle_factory import make_toy_bundle, make_toy_model
from tests.fakes.fake_cuda import FakeCuda
from tests.fakes.fake_tensorrt import INSTANCE_NORM_PLUGIN, MAGIC, FakeTensorRT, split_plan


def _with_instance_norm(model: bytes) -> bytes:
    """The toy model with an InstanceNormalization node (as GroupNorm exports), its result unused."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load_from_string(model)
    proto.graph.initializer.extend([numpy_helper.from_array(np.ones(1, np.float32), "in_scale"),
                                    numpy_helper.from_array(np.zeros(1, np.float32), "in_bias")])
    proto.graph.node.append(helper.make_node("InstanceNormalization", ["grey_nchw", "in_scale", "in_bias"],
                                             ["grey_normed"], name="group_norm"))
    return proto.SerializeToString()


def _instance_norm_bundle(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle")
    bundle.model_path.write_bytes(_with_instance_norm(make_toy_model()))
    # the manifest records the new graph's own signature, so the bundle loads
    return write_manifest(bundle.path, {k: v for k, v in bundle.manifest.items() if k != "signature"})


def _build(bundle, label):
    cuda = FakeCuda()
    trt = FakeTensorRT(label, cuda=cuda)
    path = build_engine(bundle.path, BuildProfile(name="t", max_batch=2), trt=trt, cuda=cuda, log=lambda line: None)
    return path, trt


def _runner(bundle, label, **fake):
    cuda = FakeCuda()
    trt = FakeTensorRT(label, cuda=cuda, **fake)
    return TensorRTRunner(read_bundle(bundle.path), trt=trt, cuda_api=cuda), trt


@pytest.mark.parametrize("label", ["8.6", "10.3", "11.4"])
def test_build_imports_instance_norm_natively(tmp_path, label):
    """API-shape test: the parser is told NATIVE_INSTANCENORM on every version, so no plugin is in the plan
    (on 8.6 the default would be the plugin)."""
    path, trt = _build(_instance_norm_bundle(tmp_path), label)
    assert ("parser_set_flag", "NATIVE_INSTANCENORM") in trt.calls
    assert split_plan(path.read_bytes())[0]["plugins"] == []
    runner, _ = _runner(read_bundle(path.parent), label)  # a fresh process loads it
    runner.close()


def _plugin_engine(tmp_path):
    """A bundle whose 8.6 engine holds InstanceNormalization_TRT, as builds before the parser flag made."""
    path, _ = _build(make_toy_bundle(tmp_path / "bundle"), "8.6")
    header, model = split_plan(path.read_bytes())
    header["plugins"] = [INSTANCE_NORM_PLUGIN]
    blob = __import__("json").dumps(header).encode()
    path.write_bytes(MAGIC + len(blob).to_bytes(4, "little") + blob + model)
    return write_manifest(path.parent, read_bundle(path.parent).manifest)


def test_runner_registers_the_standard_plugins_before_deserialising(tmp_path):
    bundle = _plugin_engine(tmp_path)
    runner, trt = _runner(bundle, "8.6")
    with runner:
        assert runner.max_batch == 2
    assert ("init_libnvinfer_plugins", "") in trt.calls


def test_a_missing_plugin_is_named_not_called_damage(tmp_path):
    bundle = _plugin_engine(tmp_path)
    with pytest.raises(DdadError) as err:
        _runner(bundle, "8.6", plugin_library=False)
    message = str(err.value)
    assert INSTANCE_NORM_PLUGIN in message and "libnvinfer_plugin" in message and "ddad-edge build" in message
    assert "damaged" not in message and "\n" not in message
