"""TensorRT version parsing, families and the facts that follow from a version."""

from __future__ import annotations

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.runtime.trt_compat import (
    ApiFamily,
    GpuInfo,
    TrtVersion,
    api_path,
    engine_file_name,
    import_tensorrt,
    slug,
)


@pytest.mark.parametrize("text,version,family", [
    ("8.6.1", TrtVersion(8, 6, 1), ApiFamily.TRT8),
    ("8.6.2.3", TrtVersion(8, 6, 2), ApiFamily.TRT8),
    ("10.3.0", TrtVersion(10, 3, 0), ApiFamily.TRT10),
    ("10.16.1.11", TrtVersion(10, 16, 1), ApiFamily.TRT10),
    ("11.4.0.106", TrtVersion(11, 4, 0), ApiFamily.TRT11),
    ("10.7.0.post1", TrtVersion(10, 7, 0), ApiFamily.TRT10),
])
def test_parse_and_family(text, version, family):
    assert TrtVersion.parse(text) == version and version.family is family


def test_too_old_and_garbage_versions_are_one_line():
    with pytest.raises(DdadError, match="too old"):
        _ = TrtVersion.parse("8.5.3").family
    with pytest.raises(DdadError, match="cannot read"):
        TrtVersion.parse("ten")


def test_version_facts():
    assert not TrtVersion(8, 6, 1).strongly_typed_by_file and TrtVersion(10, 3, 0).strongly_typed_by_file
    assert TrtVersion(10, 7, 0).has_dla and not TrtVersion(11, 0, 0).has_dla and not TrtVersion(11, 3, 0).has_dla
    assert TrtVersion(11, 4, 1).has_dla
    assert TrtVersion(10, 16, 1).has_legacy_calibration and not TrtVersion(11, 4, 0).has_legacy_calibration


def test_engine_file_name_and_slug():
    assert slug("NVIDIA GeForce RTX 4090") == "nvidia-geforce-rtx-4090"
    assert engine_file_name(GpuInfo("Orin", "8.7"), TrtVersion(10, 3, 0)) == "model.orin-sm87-trt10.3.0.engine"


def test_api_path_records_families_and_rejects_strings():
    @api_path(ApiFamily.TRT8, ApiFamily.TRT10)
    def path():
        return 1

    assert path.__trt_families__ == {ApiFamily.TRT8, ApiFamily.TRT10} and path() == 1
    with pytest.raises(TypeError):
        api_path("8")


def test_missing_tensorrt_names_the_package(import_fails):
    import_fails("tensorrt")
    with pytest.raises(DdadError) as err:
        import_tensorrt()
    assert "'tensorrt'" in str(err.value) and "--system-site-packages" in str(err.value)
