"""Bundles that arrive damaged or tampered with: missing files, wrong hashes, wrong schema version,
another model's ONNX, paths that leave the folder, a manifest of random values.

Loading (`read_bundle`, the threshold, the ONNX Runtime runner, inference on the probe frames) either
works or stops with one DdadError line; it never changes a byte of the bundle.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from ddad_edge.bundle import MANIFEST_NAME, Precision, read_bundle, write_manifest
from ddad_edge.cli import main
from ddad_edge.errors import DdadError
from ddad_edge.inspect.decide import threshold_from_bundle
from ddad_edge.inspect.selftest import run_selftest
from ddad_edge.runtime.backends import open_runner
from tests.bundle_factory import make_toy_bundle, make_toy_model
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import fuzz, snapshot

SIZE = 16


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A real toy bundle (16 px) with an image threshold, and its bytes."""
    root = tmp_path_factory.mktemp("pristine") / "bundle"
    bundle = make_toy_bundle(root, image_size=SIZE)
    write_manifest(root, {**bundle.manifest, "thresholds": {"image": 0.5, "score": 0.9}})
    return root


def copy_of(pristine, root):
    """A fresh copy of the toy bundle at `root`, replacing whatever is there."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    for path in pristine.iterdir():
        (root / path.name).write_bytes(path.read_bytes())
    return root


@pytest.fixture
def bundle(tmp_path, pristine):
    """A fresh copy of the toy bundle to damage."""
    return copy_of(pristine, tmp_path / "bundle")


def load_and_infer(root):
    """What `ddad-edge run` does before its first frame, plus one inference of random frames, then what
    `ddad-edge selftest` does with the probe frames."""
    loaded = read_bundle(root)
    threshold = threshold_from_bundle(loaded.manifest)
    frames = np.random.default_rng(0).integers(0, 256, (2, loaded.image_size, loaded.image_size, 3), np.uint8)
    with open_runner(loaded, "onnxruntime", threads=1) as runner:
        out = runner.infer(frames)
    assert out.maps.shape == (2, 1, loaded.image_size, loaded.image_size) and out.scores.shape == (2,)
    run_selftest(loaded, "onnxruntime", repeats=1, threads=1)
    return threshold


def refused(root, *needles) -> str:
    """Loading `root` fails with one line holding the needles, and leaves every file as it was."""
    before = snapshot(root)
    with pytest.raises(DdadError) as info:
        load_and_infer(root)
    assert snapshot(root) == before, "a failed load changed the bundle"
    return assert_one_line(info.value, *needles)


def edit_manifest(root, change):
    manifest = yaml.safe_load((root / MANIFEST_NAME).read_text())
    change(manifest)
    (root / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))


def test_the_pristine_bundle_loads(bundle):
    assert load_and_infer(bundle) == 0.5


@pytest.mark.parametrize("damage,needles", [
    (lambda r: (r / "model.onnx").unlink(), ["model.onnx", "missing"]),
    (lambda r: (r / "probe.npz").unlink(), ["probe.npz", "missing"]),
    (lambda r: (r / "model.onnx").write_bytes((r / "model.onnx").read_bytes()[:-10]), ["model.onnx", "sha256"]),
    (lambda r: (r / "model.onnx").write_bytes(bytes([(r / "model.onnx").read_bytes()[0] ^ 1])
                                              + (r / "model.onnx").read_bytes()[1:]), ["model.onnx", "sha256"]),
    (lambda r: (r / MANIFEST_NAME).unlink(), ["no manifest.yaml"]),
    (lambda r: (r / MANIFEST_NAME).write_bytes(os.urandom(300) + b"\xff\xfe"), ["manifest.yaml"]),
    (lambda r: (r / MANIFEST_NAME).write_text(""), ["manifest.yaml", "mapping"]),
    (lambda r: (r / MANIFEST_NAME).write_text("- a\n- b\n"), ["mapping"]),
    (lambda r: (r / MANIFEST_NAME).write_text("x: " + "y" * (5 << 20)), ["MiB"]),
    (lambda r: (r / MANIFEST_NAME).write_text("schema_version: !!python/object/apply:os.getcwd []\n"),
     ["manifest.yaml"]),
])
def test_damaged_files(bundle, damage, needles):
    damage(bundle)
    refused(bundle, *needles)


@pytest.mark.parametrize("change,needles", [
    (lambda m: m.update(schema_version=2), ["schema version 2"]),
    (lambda m: m.update(schema_version="1"), ["schema version '1'"]),
    (lambda m: m.pop("schema_version"), ["schema version None"]),
    (lambda m: m.update(precision="fp8"), ["precision 'fp8'"]),
    (lambda m: m.update(graph={"image_size": "16"}), ["graph.image_size"]),
    (lambda m: m.update(graph={"image_size": 10**9}), ["graph.image_size"]),
    (lambda m: m.update(graph=[16]), ["graph.image_size"]),
    (lambda m: m.update(thresholds=[0.5]), ["thresholds", "mapping"]),
    (lambda m: m.update(thresholds={"image": float("nan")}), ["threshold is nan"]),
    (lambda m: m.update(thresholds={"image": True}), ["threshold"]),
    (lambda m: m.update(engines=["x.engine"]), ["engines", "mapping"]),
    (lambda m: m.update(tolerance={"map_abs": "x", "score_rel": 0.1}), ["tolerance.map_abs"]),
    (lambda m: m.update(tolerance={"map_abs": float("nan"), "score_rel": 0.1}), ["tolerance.map_abs"]),
    (lambda m: m.update(engines={"model.orin-trt10.engine": {}}), ["model.orin-trt10.engine", "does not hash"]),
    (lambda m: m.update(model_file="other.onnx"), ["other.onnx", "does not hash"]),
    (lambda m: m.update(probe={"file": "elsewhere.npz"}), ["elsewhere.npz", "does not hash"]),
    (lambda m: m["files"].pop("model.onnx"), ["model.onnx", "does not hash"]),
    (lambda m: m.update(files=["model.onnx"]), ["files"]),
    (lambda m: m["files"].update({"model.onnx": 12}), ["files"]),
])
def test_manifest_fields(bundle, change, needles):
    edit_manifest(bundle, change)
    refused(bundle, *needles)


@pytest.mark.parametrize("name", ["../outside.txt", "/etc/hostname", "sub/../../outside.txt", "", 7,
                                  "link-out.txt"])
def test_paths_that_leave_the_bundle(bundle, name):
    """A name with ../, an absolute path, or a symlink to a file outside: refused, even when the outside
    file exists and its hash is the one the manifest gives."""
    outside = bundle.parent / "outside.txt"
    outside.write_text("secret")
    (bundle / "link-out.txt").symlink_to(outside)
    from ddad_edge.bundle import sha256_of

    edit_manifest(bundle, lambda m: m["files"].update({name: sha256_of(outside)}))
    refused(bundle, "leaves the bundle folder")
    edit_manifest(bundle, lambda m: (m["files"].pop(name), m.update(model_file=name)))
    refused(bundle)


def other_graph(image_size: int) -> bytes:
    """A valid ONNX model of another tool: one input `x`, one output `y`."""
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph([node], "other", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


@pytest.mark.parametrize("model,needles", [
    (lambda: make_toy_model("fp32", image_size=32), ["belongs to another bundle or model"]),
    (lambda: other_graph(SIZE), ["not the graph its manifest.yaml was exported with", "belongs to another"]),
    (lambda: b"\x08\x07" + os.urandom(2000), ["ONNX Runtime cannot load"]),
])
def test_another_models_onnx(bundle, model, needles):
    """Swapped in without re-hashing: the hash says so. Swapped and re-hashed (a consistent but wrong
    bundle): the runner says what the file is."""
    (bundle / "model.onnx").write_bytes(model())
    refused(bundle, "model.onnx", "sha256")
    write_manifest(bundle, yaml.safe_load((bundle / MANIFEST_NAME).read_text()))
    refused(bundle, *needles)


def test_pickled_array_in_a_bundle(bundle):
    """An .npz member holding Python objects is refused when the bundle is read, before anything loads it."""
    np.savez(bundle / "probe.npz", frames=np.array([{"a": 1}], dtype=object))
    write_manifest(bundle, yaml.safe_load((bundle / MANIFEST_NAME).read_text()))
    refused(bundle, "probe.npz", "pickled")


def test_the_commands_print_one_line(bundle, tmp_path, capsys):
    """`ddad-edge run` and `ddad-edge selftest` on a tampered bundle: exit 2 and one line, no traceback."""
    import cv2

    images = tmp_path / "images"
    images.mkdir()
    cv2.imwrite(str(images / "a.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    (bundle / "model.onnx").write_bytes(make_toy_model("fp32", image_size=32))
    for args in (["run", "--images", images, "--bundle", bundle, "--out", tmp_path / "out"],
                 ["selftest", "--bundle", bundle, "--backend", "onnxruntime"]):
        code = main([str(a) for a in args])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("error: ") and "sha256" in err[0], (args, err)


def manifest_paths(value, prefix=()):
    """Every key path inside the manifest."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield prefix + (key,)
            yield from manifest_paths(inner, prefix + (key,))


scalars = (st.none() | st.booleans() | st.integers(-(2**66), 2**66) | st.floats(allow_nan=True)
           | st.text(max_size=10) | st.sampled_from(["model.onnx", "../model.onnx", "/dev/zero", "fp16", "probe.npz"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=5)


def must_refuse(path: tuple, removed: bool, value, original) -> bool:
    """Whether a bundle whose manifest has `path` removed or set to `value` must be refused: it no longer
    says which schema, precision, graph or file hashes it has (written from the bundle contract, not from
    read_bundle's checks)."""
    if not removed and value == original and type(value) is type(original):
        return False  # drawn the value it already had
    if path[0] in ("schema_version", "files") or path in (("graph",), ("graph", "image_size")):
        return True
    if path == ("precision",):
        return removed or not isinstance(value, str) or value not in {p.value for p in Precision}
    return False


@fuzz(60)
@given(data=st.data())
def test_random_manifest_values(tmp_path, pristine, data):
    """One field of the manifest replaced by a random value, or removed: loads and infers, or one line; and
    a field the bundle cannot do without is always refused."""
    bundle = copy_of(pristine, tmp_path / "bundle")
    manifest = yaml.safe_load((bundle / MANIFEST_NAME).read_text())
    path = data.draw(st.sampled_from(sorted(manifest_paths(manifest), key=str)))
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    original = parent[path[-1]]
    removed = data.draw(st.booleans())
    value = None
    if removed:
        parent.pop(path[-1])
    else:
        value = parent[path[-1]] = data.draw(values)
    (bundle / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    before = snapshot(bundle)
    try:
        load_and_infer(bundle)
        event("loaded")
        assert not must_refuse(path, removed, value, original), \
            f"loaded with {path} {'removed' if removed else value!r}"
    except DdadError as exc:
        assert_one_line(exc)
        event("refused")
    assert snapshot(bundle) == before


@pytest.mark.parametrize("path, value", [(("schema_version",), 2), (("precision",), "fp8"), (("graph",), None),
                                         (("graph", "image_size"), 24), (("files", "model.onnx"), "0" * 64),
                                         (("files", "probe.npz"), None), (("thresholds", "image"), 0.25)])
def test_the_manifest_oracle_refuses_what_it_must(bundle, path, value):
    """must_refuse above, on examples drawn by hand, so the fuzz test's oracle is known to say both things."""
    manifest = yaml.safe_load((bundle / MANIFEST_NAME).read_text())
    parent = manifest
    for key in path[:-1]:
        parent = parent[key]
    original = parent.get(path[-1])
    if value is None:
        parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    (bundle / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    if must_refuse(path, value is None, value, original):
        refused(bundle)
    else:
        assert load_and_infer(bundle) == value  # the threshold the manifest now holds is the one used


ENGINE, TIMING = "model.orin-sm87-trt10.3.0.engine", "timing.orin-sm87-trt10.3.0.cache"


def flip_first_byte(path):
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 1]) + data[1:])


def test_a_damaged_engine_or_timing_cache_leaves_onnxruntime_working(bundle):
    """Engines and timing caches are built on the device: damaged or deleted, they do not stop a backend
    that does not use them (the TensorRT runner checks its engine when it opens it). The model is checked
    whatever it is called."""
    (bundle / ENGINE).write_bytes(b"plan" * 100)
    (bundle / TIMING).write_bytes(b"timings" * 10)
    edit_manifest(bundle, lambda m: m.update(engines={ENGINE: {"gpu": "Orin"}}))
    write_manifest(bundle, yaml.safe_load((bundle / MANIFEST_NAME).read_text()))
    flip_first_byte(bundle / ENGINE)
    (bundle / TIMING).unlink()
    before = snapshot(bundle)
    assert load_and_infer(bundle) == 0.5
    assert snapshot(bundle) == before
    (bundle / "model.onnx").rename(bundle / "model.engine")  # an engine's name does not exempt the model
    edit_manifest(bundle, lambda m: m.update(model_file="model.engine"))
    write_manifest(bundle, yaml.safe_load((bundle / MANIFEST_NAME).read_text()))
    flip_first_byte(bundle / "model.engine")
    refused(bundle, "model.engine", "sha256", "copy or export the bundle again")
