"""ONNX Runtime sessions as every part of ddad-edge opens them (`runtime.ort_session`).

An INT8 file runs on the CPU without ONNX Runtime's NHWC layout pass (faster there, see the module); the
outputs must not change by a bit, and the runner must open an INT8 bundle that way and an FP32 bundle with
every pass. Real ONNX Runtime on the session's tiny bundles (self-trained weights).
"""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.errors import DdadError
from ddad_edge.runtime import onnx_runner, ort_session
from ddad_edge.runtime.backends import open_runner
from ddad_edge.runtime.ort_session import disabled_passes, open_session
from tests.deploy.tiny_bundles import tiny_bundle, tiny_project


@pytest.fixture(scope="module")
def project(tiny_run, tmp_path_factory):
    return tiny_project(tiny_run, tmp_path_factory)


def test_only_an_int8_file_on_the_cpu_leaves_out_the_nhwc_pass():
    assert disabled_passes(["CPUExecutionProvider"], int8=True) == ["NhwcTransformer"]
    assert disabled_passes(["CUDAExecutionProvider", "CPUExecutionProvider"], int8=True) == ["NhwcTransformer"]
    assert disabled_passes(["CPUExecutionProvider"], int8=False) == []
    assert disabled_passes(["TensorrtExecutionProvider"], int8=True) == []


def test_int8_outputs_are_the_same_without_the_nhwc_pass(project):
    bundle = tiny_bundle(project, "int8")
    with np.load(bundle.file("probe.npz")) as probe:
        frames = probe["frames"]
    default = open_session(bundle.model_path, int8=False).run(None, {"frames": frames})
    without = open_session(bundle.model_path, int8=True).run(None, {"frames": frames})
    for a, b in zip(default, without):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_runner_opens_a_bundle_by_its_precision(project, precision, monkeypatch):
    seen = []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("int8"))
        return ort_session.open_session(*args, **kwargs)

    monkeypatch.setattr(onnx_runner, "open_session", spy)
    bundle = tiny_bundle(project, precision)
    with open_runner(bundle, "onnxruntime") as runner:
        with np.load(bundle.file("probe.npz")) as probe:
            result = runner.infer(probe["frames"][:1])
    assert seen == [precision == "int8"]
    assert np.isfinite(result.scores).all()


def test_a_broken_file_and_an_unknown_level_are_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(DdadError, match=r"ONNX Runtime cannot load .*model\.onnx"):
        open_session(bad)
    with pytest.raises(DdadError, match="unknown ONNX Runtime optimisation level 'fast'.*extended, all"):
        open_session(bad, optimization="fast")
