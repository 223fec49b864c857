"""The TensorRT engine builder on the 8.6, 10.3, 10.16 and 11.4 API surfaces (FakeTensorRT, FakeCuda).

Tests whose docstrings say "API-shape test" check what the builder asks TensorRT for on each version:
network creation flags, builder flags, and the legacy INT8 calibrator (used on 8.6-10.x, refused on 11).
FakeTensorRT refuses every name the version's real bindings lack, so a wrong path fails here too.
"""

from __future__ import annotations

import json

import pytest

from ddad_edge.bundle import Precision, read_bundle, write_manifest
from ddad_edge.deploy.tensorrt_build import BuildTarget, build_engine, build_if_possible, plan_precision
from ddad_edge.deploy.tensorrt_profile import BuildProfile, ProfilePrecision
from ddad_edge.errors import DdadError
from ddad_edge.runtime.trt_compat import GpuInfo, TrtVersion
from tests.bundle_factory import make_toy_bundle
from tests.fakes.fake_cuda import FakeCuda
from tests.fakes.fake_tensorrt import FakeTensorRT, split_plan

EXPLICIT_BATCH, STRONGLY_TYPED = 1 << 0, 1 << 1


def _build(tmp_path, label, precision="fp32", profile=None, version=None, dla_cores=0, calibration_frames=0):
    bundle = make_toy_bundle(tmp_path / "bundle", precision=precision, calibration_frames=calibration_frames)
    cuda = FakeCuda()
    trt = FakeTensorRT(label, cuda=cuda, version=version, dla_cores=dla_cores)
    path = build_engine(bundle.path, profile or BuildProfile(name="test", max_batch=2), trt=trt, cuda=cuda,
                        log=lambda line: None)
    return path, trt


def _calls(trt, name):
    return [c for c in trt.calls if c[0] == name]


@pytest.mark.parametrize("label,precision,flags,builder_flags", [
    ("8.6", "fp32", EXPLICIT_BATCH, []),
    ("8.6", "fp16", EXPLICIT_BATCH, ["FP16", "OBEY_PRECISION_CONSTRAINTS"]),  # no strong typing on 8.6
    ("8.6", "int8", EXPLICIT_BATCH, ["INT8"]),
    ("10.3", "fp32", 0, []),
    ("10.3", "fp16", STRONGLY_TYPED, []),  # every 10.x has STRONGLY_TYPED: the file's types decide
    ("10.3", "int8", STRONGLY_TYPED, []),
    ("10.16", "fp32", 0, []),
    ("10.16", "fp16", STRONGLY_TYPED, []),
    ("10.16", "int8", STRONGLY_TYPED, []),
    ("11.4", "fp32", 0, []),  # 11: strongly typed always, no flag to pass
    ("11.4", "fp16", 0, []),
    ("11.4", "int8", 0, []),
])
def test_creation_and_builder_flags_per_version(tmp_path, label, precision, flags, builder_flags):
    """API-shape test: network creation flags and precision builder flags for each TensorRT family."""
    _, trt = _build(tmp_path, label, precision)
    assert _calls(trt, "create_network") == [("create_network", flags)]
    assert [c[1] for c in _calls(trt, "set_flag")] == builder_flags
    assert _calls(trt, "int8_calibrator") == []


@pytest.mark.parametrize("label", ["8.6", "10.3"])
def test_legacy_int8_calibration_on_8_and_10(tmp_path, label):
    """API-shape test: an int8 profile on an FP32 bundle uses IInt8EntropyCalibrator2 on 8.6-10.x."""
    profile = BuildProfile(name="int8", precision=ProfilePrecision.INT8, calibration_batch=4, max_batch=2)
    path, trt = _build(tmp_path, label, "fp32", profile, calibration_frames=10)
    assert [c[1] for c in _calls(trt, "set_flag")] == ["INT8"]
    assert _calls(trt, "int8_calibrator") == [("int8_calibrator", "EntropyCalibrator")]
    assert _calls(trt, "set_calibration_profile") == [("set_calibration_profile", (4, 32, 32, 3))]
    assert _calls(trt, "calibrated") == [("calibrated", 2)]  # 10 frames in batches of 4: two full batches
    cache = path.parent / "calibration.cache"
    assert json.loads(cache.read_bytes())["batches"] == 2
    bundle = read_bundle(path.parent)  # the cache is hashed into the manifest, and the bundle verifies
    assert "calibration.cache" in bundle.manifest["files"]
    assert bundle.engines[path.name]["precision"] == "int8"


def test_legacy_calibration_cache_is_reused_on_rebuild(tmp_path):
    profile = BuildProfile(name="int8", precision=ProfilePrecision.INT8, calibration_batch=4)
    path, _ = _build(tmp_path, "10.3", "fp32", profile, calibration_frames=8)
    cuda = FakeCuda()
    trt = FakeTensorRT("10.3", cuda=cuda)
    build_engine(path.parent, profile, trt=trt, cuda=cuda, log=lambda line: None)
    assert _calls(trt, "calibration_cache_reused") and not _calls(trt, "calibrated")


def test_legacy_int8_calibration_is_refused_on_11(tmp_path):
    """API-shape test: TensorRT 11 has no implicit calibration; the refusal is one line naming the fix."""
    profile = BuildProfile(name="int8", precision=ProfilePrecision.INT8)
    with pytest.raises(DdadError) as err:
        _build(tmp_path, "11.4", "fp32", profile, calibration_frames=8)
    message = str(err.value)
    assert "\n" not in message and "IInt8EntropyCalibrator2" in message and "Q/DQ" in message


def test_fake_11_surface_lacks_the_removed_names():
    """API-shape test: the 11 surface itself refuses what 11 removed, the 10.3 surface keeps it."""
    v11, v10 = FakeTensorRT("11.4"), FakeTensorRT("10.3")
    for access in (lambda t: t.IInt8EntropyCalibrator2, lambda t: t.BuilderFlag.FP16,
                   lambda t: t.BuilderFlag.INT8, lambda t: t.NetworkDefinitionCreationFlag.EXPLICIT_BATCH):
        with pytest.raises(AttributeError):
            access(v11)
        access(v10)
    config = v11.Builder(v11.Logger(v11.Logger.WARNING)).create_builder_config()
    with pytest.raises(AttributeError):
        config.int8_calibrator = object()


def test_fp16_profile_on_fp32_bundle_sets_the_flag_on_10_and_is_refused_on_11(tmp_path):
    profile = BuildProfile(name="fp16", precision=ProfilePrecision.FP16)
    _, trt = _build(tmp_path / "a", "10.16", "fp32", profile)
    assert _calls(trt, "create_network") == [("create_network", 0)]
    assert [c[1] for c in _calls(trt, "set_flag")] == ["FP16"]
    with pytest.raises(DdadError, match="export a fp16 bundle"):
        _build(tmp_path / "b", "11.4", "fp32", profile)


def test_profile_asking_for_another_precision_than_a_reduced_bundle_is_refused():
    with pytest.raises(DdadError, match="set precision: bundle"):
        plan_precision(Precision.INT8, ProfilePrecision.FP16, TrtVersion(10, 3, 0))


def test_workspace_level_timing_cache_and_batch_profile(tmp_path):
    profile = BuildProfile(name="p", workspace_mib=512, optimization_level=5, opt_batch=2, max_batch=4)
    path, trt = _build(tmp_path, "10.3", "fp16", profile)
    assert _calls(trt, "set_memory_pool_limit") == [("set_memory_pool_limit", "WORKSPACE", 512 << 20)]
    assert _calls(trt, "builder_optimization_level") == [("builder_optimization_level", 5)]
    assert _calls(trt, "set_shape") == [("set_shape", "frames", (1, 32, 32, 3), (2, 32, 32, 3), (4, 32, 32, 3))]
    assert _calls(trt, "set_timing_cache") == [("set_timing_cache", False)]
    assert path.name == "model.orin-sm87-trt10.3.0.engine"
    cache = path.parent / "timing.orin-sm87-trt10.3.0.cache"
    assert json.loads(cache.read_bytes()) == {"entries": 1, "tensorrt": "10.3.0"}
    entry = read_bundle(path.parent).engines[path.name]
    assert entry["gpu"] == "Orin" and entry["compute_capability"] == "8.7" and entry["tensorrt"] == "10.3.0"
    assert entry["profile"] == "p" and entry["max_batch"] == 4 and entry["precision"] == "fp16"

    cuda = FakeCuda()  # a rebuild loads the persisted timing cache and adds to it
    trt2 = FakeTensorRT("10.3", cuda=cuda)
    build_engine(path.parent, profile, trt=trt2, cuda=cuda, log=lambda line: None)
    assert _calls(trt2, "create_timing_cache")[0][1] > 0
    assert json.loads(cache.read_bytes()) == {"entries": 2, "tensorrt": "10.3.0"}


def _flip_first_byte(path):
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])


def test_build_replaces_a_damaged_engine_and_timing_cache(tmp_path):
    """The fix the runner names for a damaged engine works: build reads the bundle, does not reuse the
    damaged timing cache, and writes both again; another GPU's damaged engine is not blessed on the way."""
    path, _ = _build(tmp_path, "10.3")
    other = path.parent / "model.rtx-sm89-trt10.3.0.engine"
    other.write_bytes(b"another GPU's plan")
    write_manifest(path.parent, read_bundle(path.parent).manifest)
    cache = path.parent / "timing.orin-sm87-trt10.3.0.cache"
    for damaged in (path, cache, other):
        _flip_first_byte(damaged)
    cuda, log = FakeCuda(), []
    trt = FakeTensorRT("10.3", cuda=cuda)
    build_engine(path.parent, BuildProfile(name="test", max_batch=2), trt=trt, cuda=cuda, log=log.append)
    assert _calls(trt, "create_timing_cache")[0][1] == 0  # started without the damaged cache
    assert any(cache.name in line and "damaged" in line for line in log)
    bundle = read_bundle(path.parent)
    assert bundle.read_device_file(path.name) and bundle.read_device_file(cache.name)
    with pytest.raises(DdadError, match="rtx-sm89.*does not match its sha256"):
        bundle.read_device_file(other.name)


def test_a_damaged_calibration_cache_is_made_again(tmp_path):
    profile = BuildProfile(name="int8", precision=ProfilePrecision.INT8, calibration_batch=4)
    path, _ = _build(tmp_path, "10.3", "fp32", profile, calibration_frames=8)
    (path.parent / "calibration.cache").write_bytes(b"damaged")
    cuda = FakeCuda()
    trt = FakeTensorRT("10.3", cuda=cuda)
    build_engine(path.parent, profile, trt=trt, cuda=cuda, log=lambda line: None)
    assert _calls(trt, "calibrated") and not _calls(trt, "calibration_cache_reused")
    assert json.loads(read_bundle(path.parent).read_device_file("calibration.cache"))["batches"] == 2


def test_engine_name_carries_gpu_and_version(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle")
    cuda = FakeCuda(gpu=GpuInfo("NVIDIA GeForce RTX 4090", "8.9"))
    path = build_engine(bundle.path, BuildProfile(), trt=FakeTensorRT("10.16", cuda=cuda), cuda=cuda,
                        log=lambda line: None)
    assert path.name == "model.nvidia-geforce-rtx-4090-sm89-trt10.16.1.engine"


def test_dla_core_with_gpu_fallback(tmp_path):
    profile = BuildProfile(name="dla", dla_core=1)
    _, trt = _build(tmp_path, "10.3", "fp16", profile, dla_cores=2)
    assert ("default_device_type", trt.DeviceType.DLA) in trt.calls
    assert ("DLA_core", 1) in trt.calls
    assert ("set_flag", "GPU_FALLBACK") in trt.calls


def test_dla_refused_on_11_0_to_11_3_and_beyond_the_device_cores(tmp_path):
    profile = BuildProfile(name="dla", dla_core=0)
    with pytest.raises(DdadError, match="no DLA support"):
        _build(tmp_path / "a", "11.4", "fp16", profile, version="11.2.1", dla_cores=2)
    _, trt = _build(tmp_path / "b", "11.4", "fp16", profile, dla_cores=2)  # 11.4.1+ has DLA again
    assert ("DLA_core", 0) in trt.calls
    with pytest.raises(DdadError, match="has 0"):
        _build(tmp_path / "c", "10.3", "fp16", profile, dla_cores=0)


def test_unparsable_onnx_is_one_line(tmp_path):
    bundle = make_toy_bundle(tmp_path / "bundle")
    (bundle.path / "model.onnx").write_bytes(b"not an onnx file")
    write_manifest(bundle.path, bundle.manifest)
    cuda = FakeCuda()
    with pytest.raises(DdadError, match="cannot parse model.onnx"):
        build_engine(bundle.path, BuildProfile(), trt=FakeTensorRT("10.3", cuda=cuda), cuda=cuda,
                     log=lambda line: None)


def test_too_old_tensorrt_is_refused(tmp_path):
    with pytest.raises(DdadError, match="8.6 or newer"):
        _build(tmp_path, "8.6", "fp32", version="8.5.3")


def test_build_if_possible_targets(tmp_path, monkeypatch):
    import ddad_edge.deploy.tensorrt_build as tb

    bundle = make_toy_bundle(tmp_path / "bundle")
    built = []
    monkeypatch.setattr(tb, "build_engine", lambda path, profile, log: built.append((path, profile.name)) or path)
    assert build_if_possible(bundle.path, "onnx") is None and built == []
    monkeypatch.setattr(tb, "tensorrt_available", lambda: "tensorrt is not installed")
    lines = []
    assert build_if_possible(bundle.path, BuildTarget.AUTO, log=lines.append) is None and built == []
    assert "tensorrt is not installed" in lines[0]
    assert build_if_possible(bundle.path, "tensorrt", profile="orin-nano") == bundle.path  # required: no probe
    monkeypatch.setattr(tb, "tensorrt_available", lambda: None)
    build_if_possible(bundle.path, "auto", profile=BuildProfile(name="mine"))
    assert built == [(bundle.path, "orin-nano"), (bundle.path, "mine")]
    with pytest.raises(DdadError, match="unknown target"):
        build_if_possible(bundle.path, "gpu")


@pytest.mark.parametrize("label", ["8.6", "10.3", "10.16", "11.4"])
def test_tf32_is_cleared_unless_the_profile_allows_it(tmp_path, label):
    """API-shape test: TensorRT starts every builder config with TF32 on; an FP32 bundle's engine must be
    FP32, so the builder clears the flag on every version, and keeps it only for `tf32: true`."""
    path, trt = _build(tmp_path / "off", label, "fp32")
    assert _calls(trt, "clear_flag") == [("clear_flag", "TF32")]
    assert read_bundle(path.parent).engines[path.name]["tf32"] is False
    assert "TF32" not in _engine_header(path)["builder_flags"]
    path, trt = _build(tmp_path / "on", label, "fp32", BuildProfile(name="tf32", tf32=True))
    assert _calls(trt, "clear_flag") == []
    assert "TF32" in _engine_header(path)["builder_flags"]
    assert read_bundle(path.parent).engines[path.name]["tf32"] is True


def _engine_header(path):
    """What FakeTensorRT serialised into its plan (version, flags, builder flags)."""
    return split_plan(path.read_bytes())[0]


def test_a_timing_cache_tensorrt_refuses_is_replaced_not_written_back(tmp_path):
    """Same x.y.z in the cache's name, another TensorRT build inside: set_timing_cache refuses it, so the
    build starts an empty cache and writes that one, not the refused bytes again."""
    path, _ = _build(tmp_path, "10.3", version="10.3.0.1")
    cache = path.parent / "timing.orin-sm87-trt10.3.0.cache"
    assert json.loads(cache.read_bytes()) == {"entries": 1, "tensorrt": "10.3.0.1"}
    cuda, log = FakeCuda(), []
    trt = FakeTensorRT("10.3", cuda=cuda, version="10.3.0.26")
    build_engine(path.parent, BuildProfile(name="test", max_batch=2), trt=trt, cuda=cuda, log=log.append)
    assert json.loads(read_bundle(path.parent).read_device_file(cache.name)) == {"entries": 1, "tensorrt": "10.3.0.26"}
    assert any("refused" in line for line in log)
