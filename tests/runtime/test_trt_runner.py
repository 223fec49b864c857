"""The TensorRT runner: engine selection, named-tensor plumbing, chunking, CUDA graphs, clear errors.

Without a GPU the runner runs on FakeTensorRT + FakeCuda, whose "engine" executes the bundle's ONNX
graph with ONNX Runtime on the fake device memory at the addresses the runner bound; so equality with
the ONNX Runtime runner checks the runner's buffers, shapes, copies and synchronisation. The test marked
`tensorrt` builds and runs a real engine where TensorRT is installed.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from ddad_edge.bundle import read_bundle, write_manifest
from ddad_edge.deploy.tensorrt_build import build_engine
from ddad_edge.deploy.tensorrt_profile import BuildProfile
from ddad_edge.errors import DdadError
from ddad_edge.runtime.backends import open_runner
from ddad_edge.runtime.trt_compat import GpuInfo
from ddad_edge.runtime.trt_runner import TensorRTRunner
from tests.bundle_factory import make_toy_bundle
from tests.fakes.fake_cuda import FakeCuda
from tests.fakes.fake_tensorrt import FakeTensorRT


def _bundle_with_engine(tmp_path, label="10.3", precision="fp32", max_batch=2, gpu=GpuInfo("Orin", "8.7")):
    bundle = make_toy_bundle(tmp_path / "bundle", precision=precision, probe_frames=5)
    cuda = FakeCuda(gpu=gpu)
    build_engine(bundle.path, BuildProfile(name="t", max_batch=max_batch), trt=FakeTensorRT(label, cuda=cuda),
                 cuda=cuda, log=lambda line: None)
    return read_bundle(bundle.path)


def _runner(bundle, label="10.3", gpu=GpuInfo("Orin", "8.7"), graphs=True, **options):
    cuda = FakeCuda(gpu=gpu, supports_graphs=graphs)
    trt = FakeTensorRT(label, cuda=cuda)
    return TensorRTRunner(bundle, trt=trt, cuda_api=cuda, **options), trt, cuda


def _probe(bundle):
    with np.load(bundle.file("probe.npz")) as data:
        return data["frames"]


@pytest.mark.parametrize("label", ["8.6", "10.3", "10.16", "11.4"])
def test_runner_matches_onnxruntime_through_the_fakes(tmp_path, label):
    bundle = _bundle_with_engine(tmp_path, label, precision="fp16", max_batch=2)
    frames = _probe(bundle)  # 5 frames with max_batch 2: chunks of 2, 2, 1
    runner, trt, cuda = _runner(bundle, label)
    with runner:
        out = runner.infer(frames)
    with open_runner(bundle, "onnxruntime") as reference:
        ref = reference.infer(frames)
    assert out.maps.shape == (5, 1, 32, 32) and out.scores.shape == (5,)
    assert out.maps.dtype == np.float32 and out.scores.dtype == np.float32
    np.testing.assert_array_equal(out.maps, ref.maps)
    np.testing.assert_array_equal(out.scores, ref.scores)
    assert trt.executions == 3 and cuda.closed


def test_cuda_graph_is_captured_once_per_batch_size_and_replayed(tmp_path):
    bundle = _bundle_with_engine(tmp_path, max_batch=2)
    frames = _probe(bundle)
    runner, trt, cuda = _runner(bundle, cuda_graph=True)
    with open_runner(bundle, "onnxruntime") as reference:
        for _ in range(3):
            for i in range(len(frames)):
                out = runner.infer(frames[i:i + 1])
                np.testing.assert_array_equal(out.maps, reference.infer(frames[i:i + 1]).maps)
        runner.infer(frames[:2])
    assert cuda.captures == 2  # batch 1 and batch 2
    assert cuda.graph_launches == 16  # every call replays a graph, the capturing ones included
    runner.close()


def test_cuda_graph_needs_a_binding_with_graphs(tmp_path):
    bundle = _bundle_with_engine(tmp_path)
    with pytest.raises(DdadError, match="cuda-python"):
        _runner(bundle, graphs=False, cuda_graph=True)


def test_engine_of_another_tensorrt_or_gpu_says_rebuild(tmp_path):
    bundle = _bundle_with_engine(tmp_path, label="10.3")
    with pytest.raises(DdadError) as err:
        _runner(bundle, label="10.16")
    message = str(err.value)
    assert "TensorRT 10.3.0" in message and "10.16.1" in message and "ddad-edge build --bundle" in message
    with pytest.raises(DdadError, match="sm 8.9.*ddad-edge build"):
        _runner(bundle, gpu=GpuInfo("NVIDIA GeForce RTX 4090", "8.9"))


def test_bundle_without_engine_says_build(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle")
    with pytest.raises(DdadError, match="no TensorRT engine.*ddad-edge build"):
        _runner(bundle)


def test_unloadable_engine_is_one_line(tmp_path):
    bundle = _bundle_with_engine(tmp_path)
    (name,) = bundle.engines
    bundle.file(name).write_bytes(b"garbage")
    bundle = write_manifest(bundle.path, bundle.manifest)
    with pytest.raises(DdadError, match="cannot load.*rebuild"):
        _runner(bundle)


def test_a_damaged_or_missing_engine_is_refused_with_the_rebuild(tmp_path):
    """read_bundle skips engines (built on the device); the runner checks the one it opens."""
    bundle = _bundle_with_engine(tmp_path)
    (name,) = bundle.engines
    engine = bundle.file(name)
    engine.write_bytes(engine.read_bytes()[:-1])
    bundle = read_bundle(bundle.path)  # the bundle still reads: the ONNX Runtime backend is unaffected
    with pytest.raises(DdadError, match=f"{name} does not match its sha256.*ddad-edge build --bundle"):
        _runner(bundle)
    engine.unlink()
    with pytest.raises(DdadError, match=f"{name} is missing; rebuild it here with `ddad-edge build --bundle"):
        _runner(read_bundle(bundle.path))


def test_wrong_frames_are_refused_before_the_gpu(tmp_path):
    bundle = _bundle_with_engine(tmp_path)
    runner, trt, _ = _runner(bundle)
    with pytest.raises(DdadError, match="64x64"):
        runner.infer(np.zeros((1, 64, 64, 3), np.uint8))
    assert trt.executions == 0


def test_open_runner_reaches_the_tensorrt_runner(tmp_path):
    bundle = _bundle_with_engine(tmp_path)
    cuda = FakeCuda()
    with open_runner(bundle, "tensorrt", trt=FakeTensorRT("10.3", cuda=cuda), cuda_api=cuda) as runner:
        assert isinstance(runner, TensorRTRunner) and runner.max_batch == 2


def test_missing_cuda_bindings_name_the_package(tmp_path, import_fails):
    import_fails("pycuda", "cuda")  # this machine as in CI, even where a binding happens to exist
    bundle = _bundle_with_engine(tmp_path)
    with pytest.raises(DdadError, match="'pycuda'.*pip install pycuda"):
        TensorRTRunner(bundle, trt=FakeTensorRT("10.3"))
    with pytest.raises(DdadError, match="'cuda'.*cuda-python"):
        TensorRTRunner(bundle, trt=FakeTensorRT("10.3"), cuda_graph=True)


def test_device_runtime_modules_import_no_torch():
    code = ("import sys; import ddad_edge.runtime.trt_runner, ddad_edge.runtime.cuda_api, ddad_edge.inspect.selftest, "
            "ddad_edge.deploy.doctor; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.tensorrt
def test_real_tensorrt_engine_matches_onnxruntime(tmp_path):
    """Builds and runs a real engine: the TensorRT runner in the parity suite (needs TensorRT and a GPU)."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed here (it runs on a Jetson or a CUDA PC)")
    bundle = make_toy_bundle(tmp_path / "bundle", precision="fp32", probe_frames=4)
    build_engine(bundle.path, BuildProfile(name="test", max_batch=4), log=lambda line: None)
    bundle = read_bundle(bundle.path)
    frames = _probe(bundle)
    with open_runner(bundle, "tensorrt") as runner, open_runner(bundle, "onnxruntime") as reference:
        out, ref = runner.infer(frames), reference.infer(frames)
    np.testing.assert_allclose(out.maps, ref.maps, atol=1e-4)
    np.testing.assert_allclose(out.scores, ref.scores, rtol=1e-4)
