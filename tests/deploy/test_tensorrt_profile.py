"""Build profiles: the shipped export/*.yaml load strictly, and bad values are one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from ddad_edge.deploy.tensorrt_profile import (
    BuildProfile,
    HardwareCompatibility,
    ProfilePrecision,
    detect_profile_name,
    load_build_profile,
    profile_tensorrt_versions,
    shipped_profiles,
)
from ddad_edge.errors import DdadError

SHIPPED = Path(__file__).resolve().parents[2] / "export"
JETSON_DOC = Path(__file__).resolve().parents[2] / "docs" / "jetson.md"


def jetpack_table() -> dict[str, str]:
    """JetPack → TensorRT (major.minor), from the table in docs/jetson.md."""
    rows = [line.split("|")[1:3] for line in JETSON_DOC.read_text().splitlines()
            if line.startswith("| ") and line.split("|")[2].strip()[:1].isdigit()]
    return {jetpack.strip(): trt.strip() for jetpack, trt in rows}


@pytest.mark.parametrize("name", ["agx-orin", "orin-nx", "orin-nano", "x86-gpu"])
def test_shipped_profiles_load_by_name_and_path(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # found by name from any folder, not only a checkout's root
    by_name = load_build_profile(name)
    by_path = load_build_profile(SHIPPED / f"{name}.yaml")
    assert by_name == by_path and by_name.name == name
    assert by_name.precision is ProfilePrecision.BUNDLE
    assert by_name.description
    text = (SHIPPED / f"{name}.yaml").read_text()
    assert text.count("#") >= 5, "profiles are commented"


def test_a_users_own_export_folder_comes_first(monkeypatch, tmp_path):
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "orin-nano.yaml").write_text("description: mine\nworkspace_mib: 64\n")
    monkeypatch.chdir(tmp_path)
    assert load_build_profile("orin-nano").workspace_mib == 64
    assert load_build_profile("agx-orin").description  # the shipped ones stay reachable


def test_profile_facts_per_device(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    nano, agx, pc = load_build_profile("orin-nano"), load_build_profile("agx-orin"), load_build_profile("x86-gpu")
    assert nano.max_batch == 1 and nano.dla_core == -1 and nano.workspace_mib <= agx.workspace_mib
    assert pc.max_batch >= agx.max_batch and pc.hardware_compatibility is HardwareCompatibility.NONE


def test_unknown_key_and_bad_values_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("workspace_mb: 100\n")
    with pytest.raises(DdadError, match="unknown config key 'workspace_mb'"):
        load_build_profile(bad)
    bad.write_text("precision: fp8\n")
    with pytest.raises(DdadError, match="precision"):
        load_build_profile(bad)
    bad.write_text("opt_batch: 4\nmax_batch: 2\n")
    with pytest.raises(DdadError, match="opt_batch"):
        load_build_profile(bad)
    bad.write_text("optimization_level: 7\n")
    with pytest.raises(DdadError, match="optimization_level"):
        load_build_profile(bad)
    with pytest.raises(DdadError, match="no build profile named 'jetson-tx2'"):
        load_build_profile("jetson-tx2")


def test_profile_is_frozen():
    with pytest.raises(AttributeError):
        BuildProfile().max_batch = 3  # type: ignore[misc]


@pytest.mark.parametrize("model,expected", [
    ("NVIDIA Jetson AGX Orin Developer Kit", "agx-orin"),
    ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", "orin-nx"),
    ("NVIDIA Jetson Orin Nano Developer Kit", "orin-nano"),
])
def test_detect_profile_from_jetson_model(tmp_path, model, expected):
    path = tmp_path / "model"
    path.write_bytes(model.encode() + b"\x00")
    assert detect_profile_name(path) == expected


def test_detect_profile_off_jetson(tmp_path):
    assert detect_profile_name(tmp_path / "absent") == "x86-gpu"


def test_each_shipped_profile_names_the_tensorrt_its_target_runs(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    jetpack = jetpack_table()
    assert jetpack["6.0"] == "8.6" and jetpack["6.1 / 6.2"] == "10.3"  # the table this test reads
    profiles = {p.name: p for p in shipped_profiles()}
    assert set(profiles) == {"agx-orin", "orin-nx", "orin-nano", "x86-gpu"}
    for name in ("agx-orin", "orin-nx", "orin-nano"):  # every JetPack in the table runs on an Orin
        assert profiles[name].tensorrt == tuple(jetpack.values()), name
    majors = {v.split(".")[0] for v in profiles["x86-gpu"].tensorrt}
    assert majors == {"10", "11"}  # pip's tensorrt for CUDA 12 and for CUDA 13
    assert profile_tensorrt_versions() == tuple(jetpack.values())  # the union, oldest first


def test_a_users_profile_adds_its_versions_to_the_shipped_ones(tmp_path):
    own = tmp_path / "line-pc.yaml"
    own.write_text('tensorrt: ["10.8", "10.3"]\n')
    versions = profile_tensorrt_versions(load_build_profile(own))
    assert set(versions) == {*profile_tensorrt_versions(), "10.8"}
    assert versions.index("10.3") < versions.index("10.8") < versions.index("10.16")  # by number, not text
    assert load_build_profile(own).tensorrt == ("10.8", "10.3")


@pytest.mark.parametrize("text, words", [
    ("tensorrt: [10.3]\n", "in quotes"),  # YAML's number 10.3; 10.10 would become 10.1
    ("tensorrt: [\"10\"]\n", "major.minor"),
    ("tensorrt: [\"10.3.1\"]\n", "major.minor"),
    ("tensorrt: [\"8.5\"]\n", "too old"),
    ("tensorrt: \"10.3\"\n", "must be a list"),
])
def test_tensorrt_versions_load_strictly(tmp_path, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(DdadError, match=words) as caught:
        load_build_profile(bad)
    assert len(str(caught.value).splitlines()) == 1
