"""FP16 islands and DLA placement on the TensorRT versions (FakeTensorRT, FakeCuda).

FakeTensorRT reports in its plan what each layer ran in (strong typing keeps the file's types; weak typing
under the FP16 flag runs FP32 layers in FP16 unless pinned and obeyed) and which layers the DLA took (a
fixed-shape profile, FP16/INT8, a DLA-capable op), as its docstring says.
"""

from __future__ import annotations

import numpy as np
import pytest

from ddad_edge.bundle import read_bundle
from ddad_edge.deploy.tensorrt_build import build_engine
from ddad_edge.deploy.tensorrt_profile import BuildProfile
from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import open_runner
from ddad_edge.runtime.trt_runner import TensorRTRunner
from tests.bundle_factory import make_toy_bundle
from tests.fakes.fake_cuda import FakeCuda
from tests.fakes.fake_tensorrt import FakeTensorRT, split_plan

FP32_LAYERS_OF_THE_FP16_TOY = {"Cast_7", "ReduceMax_8"}  # the final Cast to float and the score's ReduceMax


def _build(tmp_path, label, precision, profile, dla_cores=0, probe_frames=4):
    bundle = make_toy_bundle(tmp_path / "bundle", precision=precision, probe_frames=probe_frames)
    cuda, log = FakeCuda(), []
    trt = FakeTensorRT(label, cuda=cuda, dla_cores=dla_cores)
    path = build_engine(bundle.path, profile, trt=trt, cuda=cuda, log=log.append)
    return path, trt, log


@pytest.mark.parametrize("label", ["8.6", "10.3", "10.16", "11.4"])
def test_fp32_layers_of_an_fp16_file_stay_fp32(tmp_path, label):
    path, _, _ = _build(tmp_path, label, "fp16", BuildProfile(name="p"))
    precisions = split_plan(path.read_bytes())[0]["layer_precisions"]
    assert {name for name, p in precisions.items() if p == "FLOAT"} == FP32_LAYERS_OF_THE_FP16_TOY
    assert precisions["Mul_1"] == "HALF"  # the FP16 part runs in FP16


def test_8_6_pins_only_the_fp32_layers_and_obeys(tmp_path):
    """API-shape test: 8.6 has no STRONGLY_TYPED; layer precision and output types are pinned instead."""
    _, trt, log = _build(tmp_path, "8.6", "fp16", BuildProfile(name="p"))
    assert {c[1] for c in trt.calls if c[0] == "layer_precision"} == FP32_LAYERS_OF_THE_FP16_TOY
    assert {c[1] for c in trt.calls if c[0] == "set_output_type"} == FP32_LAYERS_OF_THE_FP16_TOY
    assert ("set_flag", "OBEY_PRECISION_CONSTRAINTS") in trt.calls
    assert any("2 FP32 layers" in line for line in log)


def _dla(**kw):
    return BuildProfile(name="dla", dla_core=0, **kw)


def test_dla_builds_one_fixed_batch_and_records_the_placement(tmp_path):
    path, trt, log = _build(tmp_path, "10.3", "fp16", _dla(opt_batch=2, max_batch=4), dla_cores=2)
    assert [c for c in trt.calls if c[0] == "set_shape"] == [
        ("set_shape", "frames", (2, 32, 32, 3), (2, 32, 32, 3), (2, 32, 32, 3))]
    entry = read_bundle(path.parent).engines[path.name]
    dla_layers = split_plan(path.read_bytes())[0]["dla_layers"]
    assert dla_layers and entry["dla"]["dla_layers"] == len(dla_layers)
    assert entry["dla"]["dla_layers"] + entry["dla"]["gpu_layers"] == 9  # the fp16 toy's nine layers
    assert entry["dla_core"] == 0 and entry["min_batch"] == entry["max_batch"] == 2
    assert any(f"{len(dla_layers)} layers on the DLA" in line for line in log)


def test_a_fixed_batch_engine_runs_shorter_chunks_padded(tmp_path):
    path, _, _ = _build(tmp_path, "10.3", "fp16", _dla(opt_batch=2, max_batch=2), dla_cores=1, probe_frames=5)
    bundle = read_bundle(path.parent)
    with np.load(bundle.file("probe.npz")) as data:
        frames = data["frames"]
    cuda = FakeCuda()
    with TensorRTRunner(bundle, trt=FakeTensorRT("10.3", cuda=cuda), cuda_api=cuda) as runner, \
            open_runner(bundle, "onnxruntime") as reference:
        out, ref = runner.infer(frames), reference.infer(frames)  # chunks of 2, 2 and 1 (padded to 2)
    assert out.scores.shape == (5,)
    np.testing.assert_array_equal(out.maps, ref.maps)


def test_no_dla_claim_where_no_layer_runs_there(tmp_path):
    """A profile whose layers all fall back (the fake's int8 toy puts its Q/DQ and casts on the GPU, and
    its arithmetic is FP32) records the engine as a GPU engine."""
    path, trt, log = _build(tmp_path, "10.3", "int8", _dla(), dla_cores=1)
    entry = read_bundle(path.parent).engines[path.name]
    assert entry["dla"]["dla_layers"] == 0 and entry["dla_core"] == -1
    assert any("no layer runs on DLA core 0" in line for line in log)


def test_dla_placement_unknown_when_tensorrt_does_not_report_it(tmp_path, monkeypatch):
    import ddad_edge.deploy.tensorrt_build as tb

    monkeypatch.setattr(tb, "count_layer_placement", lambda messages: None)
    path, _, _ = _build(tmp_path, "10.3", "fp16", _dla(), dla_cores=1)
    entry = read_bundle(path.parent).engines[path.name]
    assert entry["dla"]["dla_layers"] == "unknown" and entry["dla_core"] == -1


def test_dla_with_an_fp32_engine_is_refused(tmp_path):
    with pytest.raises(DdadError) as err:
        _build(tmp_path, "10.3", "fp32", _dla(), dla_cores=1)
    assert "fp32" in str(err.value) and "dla_core: -1" in str(err.value) and "\n" not in str(err.value)
