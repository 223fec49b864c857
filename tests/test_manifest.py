"""The manifest schema (ddad_edge/manifest.py): a manifest.yaml reads back and is rewritten key for key."""

from __future__ import annotations

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.manifest import SCHEMA_VERSION, Manifest
from tests.cli_helpers import assert_one_line

PRECISIONS = ("fp32", "fp16", "int8")


def _raw(**changes):
    raw = {"model_file": "model.onnx", "precision": "fp32", "graph": {"image_size": 32, "steps": 2},
           "thresholds": {"image": 0.5}, "schema_version": SCHEMA_VERSION, "files": {"model.onnx": "ab"}}
    return {**raw, **changes}


def test_a_manifest_reads_back_key_for_key_with_unknown_keys_and_nulls():
    """Keys this version does not know (a speed-only bundle's notes) and keys written as null survive a
    rewrite, so an engine added on the device never drops or adds a key."""
    raw = _raw(notes="speed only", test_scores=None, signature={"nodes": 3})
    manifest = Manifest.from_dict(raw)
    assert manifest.to_dict() == raw and manifest == raw and dict(manifest) == raw
    assert manifest.test_scores is None and "test_scores" in manifest and manifest["notes"] == "speed only"
    assert Manifest.from_dict(manifest.to_dict()) == manifest
    assert manifest.updated({"engines": {"a.engine": {}}})["engines"] == {"a.engine": {}}


def test_unset_fields_are_absent_and_fields_are_written_in_schema_order():
    manifest = Manifest(precision="fp32", graph={"image_size": 8}, model_file="model.onnx")
    assert list(manifest) == ["model_file", "precision", "graph"]
    assert "test_scores" not in manifest and manifest.get("test_scores") is None


def test_the_seal_covers_the_sealed_keys_only():
    manifest = Manifest.from_dict(_raw())
    assert manifest.updated({"thresholds": {"image": 0.9}}).seal_digest() == manifest.seal_digest()
    assert manifest.updated({"graph": {"image_size": 64}}).seal_digest() != manifest.seal_digest()


@pytest.mark.parametrize("changes, needle", [
    ({"schema_version": 2}, "schema version 2"),
    ({"files": None}, "'files' in manifest.yaml must map"),
    ({"precision": "int4"}, "unknown precision 'int4'"),
    ({"graph": {"image_size": 0}}, "graph.image_size"),
    ({"tolerance": {"map_abs": -1}}, "tolerance.map_abs"),
    ({"probe": {"file": "probe.npz"}}, "'probe.npz', which its file list does not hash"),
])
def test_check_refuses_in_one_line(changes, needle):
    with pytest.raises(DdadError, match="^bundle b: ") as info:
        Manifest.from_dict(_raw(**changes)).check("bundle b", "model.onnx", PRECISIONS)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_missing_required_key_is_named():
    raw = _raw()
    del raw["graph"]
    with pytest.raises(DdadError, match="lacks 'graph'"):
        Manifest.from_dict(raw).check("bundle b", "model.onnx", PRECISIONS)


# --- each rule and message exactly (a message cut short or a bound moved by one fails here) ----------------

WHERE = "bundle b"


def refusal(**changes) -> str:
    with pytest.raises(DdadError) as info:
        Manifest.from_dict(_raw(**changes)).check(WHERE, "model.onnx", PRECISIONS)
    return assert_one_line(info.value)


def test_check_accepts_a_complete_manifest_and_each_precision_it_is_given():
    for precision in PRECISIONS:
        Manifest.from_dict(_raw(precision=precision)).check(WHERE, "model.onnx", PRECISIONS)
    with pytest.raises(DdadError, match="^bundle b: unknown precision 'int8'$"):
        Manifest.from_dict(_raw(precision="int8")).check(WHERE, "model.onnx", ("fp32", "fp16"))


def test_check_names_the_schema_version_it_found_and_the_one_it_reads():
    expected = (f"bundle b: schema version {{}}, this ddad-edge reads {SCHEMA_VERSION}; export it again with "
                "this version")
    assert refusal(schema_version=SCHEMA_VERSION + 1) == expected.format(SCHEMA_VERSION + 1)
    assert refusal(schema_version="1") == expected.format("'1'")
    assert refusal(schema_version=None) == expected.format(None)


@pytest.mark.parametrize("key", ["precision", "graph", "files"])
def test_check_names_each_missing_required_key(key):
    raw = _raw()
    del raw[key]
    with pytest.raises(DdadError) as info:
        Manifest.from_dict(raw).check(WHERE, "model.onnx", PRECISIONS)
    assert str(info.value) == f"bundle b: manifest.yaml lacks '{key}'; export the bundle again"


def test_check_names_an_unknown_precision_as_read():
    assert refusal(precision=["fp32"]) == "bundle b: unknown precision ['fp32']"


@pytest.mark.parametrize("size, ok", [(1, True), (4096, True), (0, False), (4097, False), (-3, False),
                                      (True, False), (16.0, False), ("16", False), (None, False)])
def test_check_takes_an_image_size_from_1_to_4096(size, ok):
    raw = _raw(graph={"image_size": size})
    if ok:
        Manifest.from_dict(raw).check(WHERE, "model.onnx", PRECISIONS)
        return
    assert refusal(graph={"image_size": size}) == (f"bundle b: graph.image_size in manifest.yaml is {size!r}, "
                                                   "not a size from 1 to 4096; export the bundle again")


def test_check_names_a_graph_that_is_no_mapping():
    assert refusal(graph=[64]) == ("bundle b: graph.image_size in manifest.yaml is None, not a size from 1 to "
                                   "4096; export the bundle again")


@pytest.mark.parametrize("key", ["thresholds", "engines", "probe", "tolerance", "calibration_frames"])
def test_check_names_a_section_that_must_be_a_mapping(key):
    assert refusal(**{key: ["x"]}) == (f"bundle b: '{key}' in manifest.yaml must be a mapping, got list; export "
                                       "the bundle again")


@pytest.mark.parametrize("value, ok", [(0, True), (0.0, True), (2.5, True), (-0.001, False),
                                       (float("inf"), False), (float("nan"), False), (True, False), ("0.1", False)])
def test_check_takes_a_tolerance_that_is_a_finite_number_from_zero(value, ok):
    raw = _raw(tolerance={"map_abs": 0.1, "score_rel": value})
    if ok:
        Manifest.from_dict(raw).check(WHERE, "model.onnx", PRECISIONS)
        return
    assert refusal(tolerance={"map_abs": 0.1, "score_rel": value}) == (
        f"bundle b: tolerance.score_rel in manifest.yaml is {value!r}, not a number >= 0; export the bundle again")


def test_check_names_an_engine_that_is_no_mapping():
    files = {"model.onnx": "ab", "a.engine": "cd", "b.engine": "ef"}
    assert refusal(engines={"a.engine": {}, "b.engine": "fp16"}, files=files) == (
        "bundle b: every engine in manifest.yaml must be a mapping of its settings")
    Manifest.from_dict(_raw(engines={"a.engine": {}, "b.engine": {}}, files=files)).check(
        WHERE, "model.onnx", PRECISIONS)


@pytest.mark.parametrize("files", [["model.onnx"], {"model.onnx": 3}, {"model.onnx": "ab", "x": None}])
def test_check_names_a_file_list_that_does_not_map_names_to_hashes(files):
    assert refusal(files=files) == "bundle b: 'files' in manifest.yaml must map names to sha256"


@pytest.mark.parametrize("changes, name", [
    ({"model_file": "graph.onnx"}, "'graph.onnx'"),
    ({"model_file": None}, "None"),
    ({"calibration_frames": {"file": "calib.npz"}}, "'calib.npz'"),
    ({"probe": {"file": 5}}, "5"),
    ({"engines": {"a.engine": {}}}, "'a.engine'"),
])
def test_check_names_the_first_file_the_manifest_uses_but_does_not_hash(changes, name):
    assert refusal(**changes) == (f"bundle b: manifest.yaml uses {name}, which its file list does not hash; "
                                  "export the bundle again")


def test_check_reads_the_default_model_name_where_model_file_is_absent():
    raw = _raw(files={"net.onnx": "ab"})
    del raw["model_file"]
    Manifest.from_dict(raw).check(WHERE, "net.onnx", PRECISIONS)
    with pytest.raises(DdadError, match="uses 'model.onnx', which"):
        Manifest.from_dict(raw).check(WHERE, "model.onnx", PRECISIONS)


def test_from_dict_keeps_nulls_and_unknown_keys_apart_from_the_fields():
    manifest = Manifest.from_dict({"precision": "fp16", "graph": None, "notes": [1], "model_file": None})
    assert manifest.precision == "fp16" and manifest.graph is None and manifest.model_file is None
    assert manifest.extra == {"graph": None, "notes": [1], "model_file": None}
    assert list(manifest.to_dict()) == ["model_file", "precision", "graph", "notes"]
    assert len(manifest) == 4 and list(iter(manifest)) == list(manifest.to_dict())
    with pytest.raises(KeyError):
        manifest["thresholds"]


def test_updated_replaces_and_adds_without_changing_the_original():
    manifest = Manifest.from_dict(_raw())
    changed = manifest.updated({"precision": "int8", "engines": {}})
    assert changed.precision == "int8" and changed.engines == {} and changed.graph == manifest.graph
    assert manifest.precision == "fp32" and manifest.engines is None and isinstance(changed, Manifest)


def test_model_name_is_the_default_only_where_the_key_is_absent():
    assert Manifest().model_name("model.onnx") == "model.onnx"
    assert Manifest(model_file="g.onnx").model_name("model.onnx") == "g.onnx"
    assert Manifest.from_dict({"model_file": None}).model_name("model.onnx") is None


def test_referenced_files_are_the_model_probe_calibration_frames_and_engines():
    manifest = Manifest(model_file="g.onnx", probe={"file": "p.npz"}, calibration_frames={"file": "c.npz"},
                        engines={"a.engine": {}, "b.engine": {}})
    assert manifest.referenced_files("model.onnx") == ["g.onnx", "p.npz", "c.npz", "a.engine", "b.engine"]
    assert manifest.referenced_files("model.onnx", engines=False) == ["g.onnx", "p.npz", "c.npz"]
    odd = Manifest.from_dict({"probe": {"frames": 4}, "calibration_frames": ["c.npz"], "engines": ["x"]})
    assert odd.referenced_files("m.onnx") == ["m.onnx"]


def test_the_seal_is_sha256_of_the_sealed_keys_canonical_json():
    import datetime
    import hashlib
    import json

    when = datetime.date(2026, 12, 7)
    manifest = Manifest.from_dict(_raw(graph={"b": 1, "a": when}, thresholds={"image": 0.1}, notes="x"))
    sealed = {"model_file": "model.onnx", "precision": "fp32", "graph": {"a": "2026-12-07", "b": 1}}
    text = json.dumps(sealed, sort_keys=True, separators=(",", ":"))
    assert manifest.seal_digest() == hashlib.sha256(text.encode()).hexdigest()
    assert manifest.updated({"probe": {"file": "p"}}).seal_digest() != manifest.seal_digest()
