"""The manifest schema (ddad_edge/manifest.py): a manifest.yaml reads back and is rewritten key for key."""

from __future__ import annotations

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.manifest import SCHEMA_VERSION, Manifest

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
