"""Engine identity on a Jetson: every Orin reports 'Orin' sm 8.7, so the module's device-tree model
string, SM count and memory tell an AGX Orin's engine from an Orin NX's or Nano's."""

from __future__ import annotations

import pytest

from ddad_edge.bundle import read_bundle
from ddad_edge.deploy.tensorrt_build import build_engine
from ddad_edge.deploy.tensorrt_profile import BuildProfile
from ddad_edge.errors import DdadError
from ddad_edge.runtime.jetson_module import read_jetson_model
from ddad_edge.runtime.trt_compat import GpuInfo
from ddad_edge.runtime.trt_runner import TensorRTRunner
from tests.bundle_factory import make_toy_bundle
from tests.fakes.fake_cuda import FakeCuda
from tests.fakes.fake_tensorrt import FakeTensorRT

AGX = GpuInfo("Orin", "8.7", 16, 62_841, "NVIDIA Jetson AGX Orin Developer Kit")
NX_16 = GpuInfo("Orin", "8.7", 8, 15_388, "NVIDIA Jetson Orin NX Engineering Reference Developer Kit")
NANO_8 = GpuInfo("Orin", "8.7", 8, 7_620, "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit")
NX_8 = GpuInfo("Orin", "8.7", 8, 7_620, "NVIDIA Jetson Orin NX Engineering Reference Developer Kit")


def _build(bundle_dir, gpu):
    cuda = FakeCuda(gpu=gpu)
    return build_engine(bundle_dir, BuildProfile(name="t"), trt=FakeTensorRT("10.3", cuda=cuda), cuda=cuda,
                        log=lambda line: None)


def _open(bundle_dir, gpu):
    cuda = FakeCuda(gpu=gpu)
    return TensorRTRunner(read_bundle(bundle_dir), trt=FakeTensorRT("10.3", cuda=cuda), cuda_api=cuda)


def test_engine_and_cache_names_carry_the_module(tmp_path):
    path = _build(make_toy_bundle(tmp_path / "b").path, AGX)
    assert path.name == "model.nvidia-jetson-agx-orin-developer-kit-sm87-16sm-61g-trt10.3.0.engine"
    assert (path.parent / "timing.nvidia-jetson-agx-orin-developer-kit-sm87-16sm-61g-trt10.3.0.cache").is_file()
    entry = read_bundle(path.parent).engines[path.name]
    assert (entry["module"], entry["sm_count"], entry["memory_mib"]) == (AGX.module, 16, 62_841)


@pytest.mark.parametrize("other", [NX_16, NANO_8])
def test_an_agx_engine_is_refused_on_another_orin(tmp_path, other):
    bundle = make_toy_bundle(tmp_path / "b")
    _build(bundle.path, AGX)
    with pytest.raises(DdadError) as err:
        _open(bundle.path, other)
    message = str(err.value)
    assert "AGX Orin" in message and other.module in message and "ddad-edge build --bundle" in message


def test_same_sm_count_and_memory_are_told_apart_by_the_module(tmp_path):
    bundle = make_toy_bundle(tmp_path / "b")
    _build(bundle.path, NX_8)
    with pytest.raises(DdadError, match="Orin NX.*this is NVIDIA Jetson Orin Nano"):
        _open(bundle.path, NANO_8)
    _open(bundle.path, NX_8).close()  # its own module loads it


def test_an_engine_without_module_is_refused_on_a_jetson_and_kept_elsewhere(tmp_path):
    """Entries written before the module was recorded: ambiguous on a Jetson, unambiguous on a PC."""
    bundle = make_toy_bundle(tmp_path / "b")
    _build(bundle.path, GpuInfo("Orin", "8.7"))
    _build(bundle.path, GpuInfo("NVIDIA GeForce RTX 4090", "8.9"))
    manifest = read_bundle(bundle.path).manifest
    for entry in manifest["engines"].values():
        for key in ("module", "sm_count", "memory_mib"):
            del entry[key]
    from ddad_edge.bundle import write_manifest
    write_manifest(bundle.path, manifest)
    with pytest.raises(DdadError, match="does not record which Jetson module.*ddad-edge build --bundle"):
        _open(bundle.path, AGX)
    _open(bundle.path, GpuInfo("NVIDIA GeForce RTX 4090", "8.9", 128, 24_080)).close()


def test_device_tree_model_is_read_from_an_injected_file(tmp_path):
    missing, model = tmp_path / "none", tmp_path / "model"
    model.write_bytes(b"NVIDIA Jetson Orin NX Engineering Reference Developer Kit\x00")
    assert read_jetson_model((missing, model)) == NX_16.module
    assert read_jetson_model((missing,)) == ""
