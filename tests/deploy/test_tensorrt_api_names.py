"""The project's TensorRT code against the names of the real TensorRT bindings, version by version.

The name lists come from the bindings wheels (scripts/extract_trt_names.py); the check walks the
TensorRT modules with `ast` (tests/trt_names.py).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ddad_edge.runtime.trt_compat import ApiFamily
from tests.trt_names import FAMILY_LISTS, check_source, load_trt_names

ROOT = Path(__file__).resolve().parents[2]
TRT_MODULES = sorted([*ROOT.glob("ddad_edge/deploy/tensorrt_*.py"), *ROOT.glob("ddad_edge/runtime/trt_*.py"),
                      ROOT / "ddad_edge/runtime/cuda_api.py", ROOT / "ddad_edge/deploy/doctor.py"])


@pytest.mark.parametrize("label", ["8.6", "10.3", "10.16", "11.4"])
def test_name_lists_are_present_and_carry_the_core_runtime_api(label):
    names = load_trt_names(label)
    for name in ("execute_async_v3", "num_io_tensors", "get_tensor_name", "set_tensor_address",
                 "set_input_shape", "deserialize_cuda_engine", "build_serialized_network", "set_memory_pool_limit",
                 "create_timing_cache", "Logger", "__version__", "nptype"):
        assert names.has(name), f"{name} missing from trt-{label}"


def test_lists_show_the_removals_of_10_and_11():
    old, v10, v11 = load_trt_names("8.6"), load_trt_names("10.3"), load_trt_names("11.4")
    for name in ("execute_async_v2", "build_engine", "num_bindings"):
        assert old.has(name) and not v10.has(name) and not v11.has(name), name
    for name in ("EXPLICIT_BATCH", "int8_calibrator", "IInt8EntropyCalibrator2"):
        assert old.has(name) and v10.has(name) and not v11.has(name), name
    assert v10.has("STRONGLY_TYPED") and v11.has("STRONGLY_TYPED") and not old.has("STRONGLY_TYPED")
    # BuilderFlag.INT8 is gone in 11 while DataType.INT8 stays: only the qualified evidence tells them apart.
    assert v11.has("INT8") and not v11.has_attribute("INT8", owner="BuilderFlag")
    assert v10.has_attribute("INT8", owner="BuilderFlag") and v10.has_attribute("FP16", owner="BuilderFlag")
    assert not v11.has_attribute("FP16", owner="BuilderFlag")


def _violations(code: str) -> list[str]:
    violations, _ = check_source(textwrap.dedent(code))
    return [str(v) for v in violations]


def test_check_catches_a_removed_method_on_a_tagged_path():
    found = _violations("""
        @api_path(ApiFamily.TRT10)
        def run(context, bindings, stream):
            context.execute_async_v2(bindings, stream)
    """)
    assert len(found) == 1 and "execute_async_v2" in found[0] and "10.3" in found[0] and "10.16" in found[0]


def test_check_catches_creation_flag_and_builder_flag_on_11():
    found = _violations("""
        @api_path(ApiFamily.TRT11)
        def make(trt, builder, config):
            network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
            config.set_flag(trt.BuilderFlag.INT8)
            return network
    """)
    assert any("EXPLICIT_BATCH" in v for v in found)
    assert any("BuilderFlag.INT8" in v for v in found)
    assert all("11.4" in v for v in found)


def test_check_accepts_the_same_code_on_the_families_that_have_it():
    assert _violations("""
        @api_path(ApiFamily.TRT8, ApiFamily.TRT10)
        def make(trt, builder, config, calibrator):
            config.set_flag(trt.BuilderFlag.INT8)
            config.int8_calibrator = calibrator
            return builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))
    """) == []


def test_untagged_code_must_work_on_every_version():
    found = _violations("""
        class Runner:
            def run(self):
                return self._engine.num_bindings
        def calibrate(config, calibrator):
            config.int8_calibrator = calibrator
    """)
    assert any("num_bindings" in v and "10.3" in v for v in found)
    assert any("int8_calibrator" in v and "11.4" in v for v in found)


def test_string_attribute_access_on_tensorrt_objects_is_refused():
    found = _violations("""
        def sneaky(trt):
            return getattr(trt, "EXPLICIT_BATCH", None)
    """)
    assert found and "getattr" in found[0]


@pytest.mark.parametrize("path", TRT_MODULES, ids=lambda p: p.name)
def test_project_tensorrt_modules_use_only_names_their_versions_have(path):
    violations, _ = check_source(path.read_text(), str(path.relative_to(ROOT)))
    assert not violations, "\n".join(str(v) for v in violations)


def test_project_check_is_not_vacuous():
    """Every family has tagged code paths, and hundreds of accesses were checked."""
    accesses, tagged = 0, {}
    for path in TRT_MODULES:
        _, stats = check_source(path.read_text(), path.name)
        accesses += stats.accesses
        tagged.update(stats.tagged_functions)
    assert accesses > 60
    assert tagged["create_network_trt8"] == {ApiFamily.TRT8}
    assert tagged["create_network_trt11"] == {ApiFamily.TRT11}
    assert tagged["make_entropy_calibrator"] == {ApiFamily.TRT8, ApiFamily.TRT10}
    covered = set().union(*tagged.values())
    assert covered == set(FAMILY_LISTS)
