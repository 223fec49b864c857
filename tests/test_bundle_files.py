"""bundle.py's file handling, function by function: hashing, the atomic write, .npz checks, file names
confined to the folder, device-built files, writing, updating and reading a manifest.

The hardening tests (tests/hardening/test_bundle_tamper.py) damage whole bundles and check that loading
refuses them; these pin down each rule and each message exactly, so that a change to one (a message cut
short, a bound moved by one, a hash kept that should be renewed) fails here. Bundles are hand-made toys
(tests/bundle_factory.py): a one-node-deep ONNX graph, no torch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from ddad_edge import bundle as bundle_module
from ddad_edge.bundle import (
    MANIFEST_MAX_BYTES,
    MANIFEST_NAME,
    MODEL_NAME,
    Bundle,
    Precision,
    atomic_write_bytes,
    built_on_device,
    check_npz,
    load_arrays,
    read_bundle,
    sha256_of,
    update_manifest,
    write_manifest,
)
from ddad_edge.errors import DdadError
from ddad_edge.graph_signature import graph_signature
from ddad_edge.manifest import SCHEMA_VERSION, Manifest
from tests.bundle_factory import make_toy_bundle, make_toy_model
from tests.cli_helpers import assert_one_line


def message(info) -> str:
    """The one-line message of a caught DdadError (cli_helpers.assert_one_line's checks)."""
    return assert_one_line(info.value)


# --- sha256_of, atomic_write_bytes -------------------------------------------------------------------------


def test_sha256_of_reads_a_file_larger_than_its_chunk(tmp_path):
    data = np.random.default_rng(0).bytes((1 << 20) * 2 + 17)  # two full chunks and a tail
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()


def test_atomic_write_writes_every_byte_even_when_os_write_is_short(tmp_path, monkeypatch):
    real_write = os.write
    calls = []

    def short_write(fd, data):
        calls.append(len(data))
        return real_write(fd, bytes(data[:5]))  # at most 5 bytes a call, as a pipe or a full disk may do

    monkeypatch.setattr(os, "write", short_write)
    atomic_write_bytes(tmp_path / "out.bin", b"0123456789abcdefghij!")
    assert (tmp_path / "out.bin").read_bytes() == b"0123456789abcdefghij!"
    assert len(calls) == 5 and calls[0] == 21 and calls[-1] == 1


def test_atomic_write_syncs_the_file_before_the_rename_and_leaves_an_ordinary_file(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (order.append(("fsync", os.fstat(fd).st_size)), real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda a, b: (order.append(("replace", os.path.basename(b))),
                                                     real_replace(a, b)))
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"abc")
    assert order == [("fsync", 3), ("replace", "out.bin")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary left


def test_atomic_write_renames_a_hidden_temporary_from_the_same_folder(tmp_path, monkeypatch):
    """A rename is atomic only within one file system: the temporary is made beside the file, hidden, and
    named after it, so a crash leaves a recognisable `.NAME.*.tmp` there and nothing elsewhere."""
    moves = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (moves.append((a, b)), real_replace(a, b)))
    path = tmp_path / "out.bin"
    atomic_write_bytes(path, b"abc")
    [(src, dst)] = moves
    src = Path(src)
    assert Path(dst) == path and src.parent == tmp_path
    assert src.name.startswith(".out.bin.") and src.name.endswith(".tmp") and len(src.name) > len(".out.bin..tmp")


def test_a_temporary_removed_by_someone_else_before_a_failed_rename_is_still_one_line(tmp_path, monkeypatch):
    """A cleaner that deletes stray temporaries can race the write: the failure is still the one line,
    and an interrupt is still the interrupt."""
    def cleaned_then(exc):
        def replace(src, dst):
            os.unlink(src)
            raise exc
        return replace

    monkeypatch.setattr(os, "replace", cleaned_then(FileNotFoundError(2, "No such file or directory")))
    with pytest.raises(DdadError, match="^cannot write .*out.bin: No such file or directory; nothing was changed"):
        atomic_write_bytes(tmp_path / "out.bin", b"x")
    monkeypatch.setattr(os, "replace", cleaned_then(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "out.bin", b"x")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_a_links_target_and_keeps_the_link(tmp_path):
    target = tmp_path / "target.txt"
    target.write_bytes(b"old")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    atomic_write_bytes(link, b"new")
    assert link.is_symlink() and target.read_bytes() == b"new"


def test_atomic_write_refuses_a_fifo(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(DdadError) as info:
        atomic_write_bytes(fifo, b"x")
    assert message(info) == (f"{fifo} is a FIFO (named pipe), not a regular file: give a file path in a folder "
                             "(outputs are written as regular files only)")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_a_failed_write_removes_its_temporary_and_names_the_file(tmp_path, monkeypatch):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")

    def full(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DdadError) as info:
        atomic_write_bytes(path, b"new")
    assert message(info) == f"cannot write {path}: No space left on device; nothing was changed there"
    assert info.value.__cause__.errno == 28
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"] and path.read_bytes() == b"old"


def test_a_failed_rename_removes_its_temporary_too(tmp_path, monkeypatch):
    def refuse(a, b):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(DdadError, match="^cannot write .*out.bin: Permission denied; nothing was changed there$"):
        atomic_write_bytes(tmp_path / "out.bin", b"new")
    assert list(tmp_path.iterdir()) == []


def test_an_error_without_strerror_is_named_by_its_text(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "fsync", lambda fd: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(DdadError) as info:
        atomic_write_bytes(tmp_path / "out.bin", b"new")
    assert message(info) == f"cannot write {tmp_path / 'out.bin'}: disk gone; nothing was changed there"


def test_an_interrupt_mid_write_removes_the_temporary_and_is_not_swallowed(tmp_path, monkeypatch):
    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(tmp_path / "out.bin", b"new")
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_hold_a_temporary_is_one_line(tmp_path):
    missing = tmp_path / "absent" / "out.bin"
    with pytest.raises(DdadError) as info:
        atomic_write_bytes(missing, b"x")
    assert message(info) == f"cannot write {missing}: No such file or directory; nothing was changed there"


# --- check_npz, load_arrays --------------------------------------------------------------------------------


def _npz(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _npy(array, version=None) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, version=version, allow_pickle=True)
    return buffer.getvalue()


def test_check_npz_names_the_arrays_of_both_header_versions(tmp_path):
    path = _npz(tmp_path / "a.npz", {"one.npy": _npy(np.arange(3), (1, 0)), "two.npy": _npy(np.ones(2), (2, 0))})
    assert check_npz(path) == ["one", "two"]


@pytest.mark.parametrize("version", [(1, 0), (2, 0)])
def test_check_npz_refuses_a_pickled_member_of_either_version(tmp_path, version):
    path = _npz(tmp_path / "a.npz", {"ok.npy": _npy(np.arange(3)),
                                     "evil.npy": _npy(np.array([{"a": 1}], dtype=object), version)})
    with pytest.raises(DdadError) as info:
        check_npz(path)
    assert message(info) == (f"{path}: array evil.npy holds pickled Python objects, which ddad-edge never loads; "
                             "export the bundle again")


def test_check_npz_names_a_file_that_is_not_a_zip(tmp_path):
    path = tmp_path / "a.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DdadError) as info:
        check_npz(path)
    assert message(info) == f"{path} is not a valid .npz of arrays (File is not a zip file)"


def test_check_npz_names_a_member_that_is_not_an_array(tmp_path):
    path = _npz(tmp_path / "a.npz", {"x.npy": b"\x93NUMPY" + b"\x00" * 3})
    with pytest.raises(DdadError, match=r"^.*a\.npz is not a valid \.npz of arrays \(.+\)$"):
        check_npz(path)


def _flip_a_data_byte(path, array, offset):
    """`path` with one byte of `array`'s data (saved there uncompressed) flipped: its headers stay valid,
    the zip's CRC no longer holds once the member is read to its end."""
    data = bytearray(path.read_bytes())
    data[data.index(array.tobytes()) + offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_check_npz_names_a_damaged_small_array_and_cuts_a_long_reason(tmp_path):
    """A small member is read to its end with its header, so the CRC fails in the header check."""
    name, array = "a" * 150, np.arange(64, dtype=np.float64)
    np.savez(tmp_path / "a.npz", **{name: array})
    _flip_a_data_byte(tmp_path / "a.npz", array, 100)
    with pytest.raises(DdadError) as info:
        check_npz(tmp_path / "a.npz")
    reason = f"Bad CRC-32 for file '{name}.npy'"[:120]
    assert message(info) == f"{tmp_path / 'a.npz'} is not a valid .npz of arrays ({reason})"


def test_load_arrays_names_a_damaged_large_array_and_cuts_a_long_reason(tmp_path):
    """A flipped byte at the end of a large member passes the header check and fails the CRC on loading."""
    name, array = "a" * 150, np.arange(8192, dtype=np.float64)
    np.savez(tmp_path / "a.npz", **{name: array})
    _flip_a_data_byte(tmp_path / "a.npz", array, array.nbytes - 1)
    assert check_npz(tmp_path / "a.npz") == [name]
    with pytest.raises(DdadError) as info:
        load_arrays(tmp_path / "a.npz", (name,))
    reason = f"Bad CRC-32 for file '{name}.npy'"[:120]
    assert message(info) == f"{tmp_path / 'a.npz'}: cannot read its arrays ({reason})"


def test_load_arrays_returns_contiguous_copies_of_the_names_asked(tmp_path):
    fortran = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.savez(tmp_path / "a.npz", a=fortran, b=np.zeros(2), c=np.ones(1))
    arrays = load_arrays(tmp_path / "a.npz", ("a", "c"))
    assert list(arrays) == ["a", "c"]
    assert arrays["a"].flags["C_CONTIGUOUS"] and np.array_equal(arrays["a"], fortran)
    assert np.array_equal(arrays["c"], np.ones(1))


def test_load_arrays_names_what_is_missing_and_what_is_there(tmp_path):
    np.savez(tmp_path / "a.npz", b=np.zeros(2), a=np.ones(1))
    with pytest.raises(DdadError) as info:
        load_arrays(tmp_path / "a.npz", ("z", "a", "y"))
    assert message(info) == f"{tmp_path / 'a.npz'} lacks arrays ['y', 'z'] (it has ['a', 'b'])"


def test_load_arrays_refuses_a_pickled_member_before_loading(tmp_path):
    path = _npz(tmp_path / "a.npz", {"a.npy": _npy(np.array([None], dtype=object))})
    with pytest.raises(DdadError, match="holds pickled Python objects"):
        load_arrays(path, ("a",))


def test_load_arrays_names_an_array_whose_data_is_cut(tmp_path):
    data = _npy(np.arange(100, dtype=np.float64))
    path = _npz(tmp_path / "a.npz", {"a.npy": data[:-40]})  # a whole header, part of the data
    with pytest.raises(DdadError) as info:
        load_arrays(path, ("a",))
    assert message(info).startswith(f"{path}: cannot read its arrays (")


# --- file names, device-built files ------------------------------------------------------------------------


@pytest.fixture
def toy(tmp_path):
    return make_toy_bundle(tmp_path / "bundle", image_size=16)


@pytest.mark.parametrize("name", ["", "/etc/hostname", "../x", "a/../../x", None, 7])
def test_a_file_name_that_leaves_the_folder_is_refused(toy, name):
    with pytest.raises(DdadError) as info:
        toy.file(name)
    assert message(info) == (f"bundle {toy.path}: file name {name!r} in the manifest leaves the bundle folder; "
                             "the bundle is damaged or tampered with, export it again")


def test_a_link_that_leaves_the_folder_is_refused(toy, tmp_path):
    (tmp_path / "outside.txt").write_text("secret")
    (toy.path / "inside.txt").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(DdadError) as info:
        toy.file("inside.txt")
    assert message(info) == f"bundle {toy.path}: file name 'inside.txt' in the manifest leaves the bundle folder"


def test_a_name_inside_the_folder_is_its_resolved_path(toy):
    assert toy.file("sub/probe.npz") == (toy.path / "sub" / "probe.npz").resolve()
    assert toy.model_path == (toy.path / MODEL_NAME).resolve()


def test_the_bundles_properties_read_its_manifest(tmp_path):
    root = tmp_path / "b"
    root.mkdir()
    (root / "graph.onnx").write_bytes(make_toy_model(Precision.FP16, 16))
    engines = {"a.engine": {"precision": "fp16"}}
    bundle = Bundle(root, Manifest(model_file="graph.onnx", precision="fp16", graph={"image_size": "16"},
                                   thresholds={"image": 0.5}, engines=engines))
    assert bundle.model_path == (root / "graph.onnx").resolve()
    assert bundle.precision is Precision.FP16
    assert bundle.image_size == 16 and isinstance(bundle.image_size, int)
    assert bundle.thresholds == {"image": 0.5} and bundle.engines == engines
    bundle.thresholds["image"] = 9.0
    bundle.engines["b.engine"] = {}
    assert bundle.manifest.thresholds == {"image": 0.5} and list(bundle.manifest.engines) == ["a.engine"]
    bare = Bundle(root, Manifest(precision="fp32", graph={"image_size": 16}))
    assert bare.thresholds == {} and bare.engines == {}


def test_device_built_files_are_engines_and_caches_the_export_did_not_name():
    manifest = Manifest(model_file="model.engine", probe={"file": "probe.cache"},
                        calibration_frames={"file": "frames.cache"}, engines={"a.engine": {}})
    assert built_on_device(manifest, "a.engine") and built_on_device(manifest, "timing.cache")
    assert built_on_device(manifest, "other.engine")
    for name in ("model.engine", "probe.cache", "frames.cache", "model.onnx", "engine", "a.engine.txt", None, 3):
        assert not built_on_device(manifest, name), name


def _device_file(toy, name="a.engine", data=b"engine bytes"):
    (toy.path / name).write_bytes(data)
    return update_manifest(toy.path, {"engines": {name: {"precision": "fp16"}}}, written=(name,))


def test_read_device_file_returns_the_bytes_that_match_their_hash(toy):
    bundle = _device_file(toy)
    assert bundle.read_device_file("a.engine") == b"engine bytes"


def test_read_device_file_names_a_damaged_a_missing_and_an_unlisted_file(toy):
    bundle = _device_file(toy)
    rebuild = f"rebuild it here with `ddad-edge build --bundle {bundle.path}`"
    (bundle.path / "a.engine").write_bytes(b"engine byteZ")
    with pytest.raises(DdadError) as info:
        bundle.read_device_file("a.engine")
    assert message(info) == (f"bundle {bundle.path}: a.engine does not match its sha256 in {MANIFEST_NAME} "
                             f"(truncated, changed or tampered with); {rebuild}")
    (bundle.path / "a.engine").unlink()
    with pytest.raises(DdadError) as info:
        bundle.read_device_file("a.engine")
    assert message(info) == f"bundle {bundle.path}: a.engine is missing; {rebuild}"
    (bundle.path / "b.engine").write_bytes(b"x")
    with pytest.raises(DdadError) as info:
        bundle.read_device_file("b.engine")
    assert message(info) == f"bundle {bundle.path}: b.engine is not hashed in {MANIFEST_NAME}; {rebuild}"
    with pytest.raises(DdadError, match="leaves the bundle folder"):
        bundle.read_device_file("../a.engine")


def test_read_device_file_of_a_bundle_without_a_file_list(toy):
    bare = Bundle(toy.path, Manifest(precision="fp32", graph={"image_size": 16}))
    with pytest.raises(DdadError, match=r"model\.onnx is not hashed in manifest\.yaml; rebuild it here"):
        bare.read_device_file(MODEL_NAME)


# --- write_manifest, update_manifest -----------------------------------------------------------------------


def _folder(tmp_path, **files):
    root = tmp_path / "b"
    root.mkdir()
    (root / MODEL_NAME).write_bytes(make_toy_model(Precision.FP32, 16))
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


RAW = {"precision": "fp32", "graph": {"image_size": 16}, "thresholds": {"image": 0.5}}


def test_write_manifest_hashes_every_plain_file_but_itself_and_hidden_ones(tmp_path):
    root = _folder(tmp_path, **{"report.json": b"{}", ".hidden": b"h"})
    (root / "sub").mkdir()
    (root / MANIFEST_NAME).write_text("old")
    bundle = write_manifest(root, RAW)
    assert bundle.manifest.files == {MODEL_NAME: sha256_of(root / MODEL_NAME),
                                     "report.json": hashlib.sha256(b"{}").hexdigest()}
    assert list(bundle.manifest.files) == sorted(bundle.manifest.files)


def test_write_manifest_adds_version_signature_and_seal_and_writes_what_it_returns(tmp_path):
    root = _folder(tmp_path)
    bundle = write_manifest(root, RAW)
    on_disk = yaml.safe_load((root / MANIFEST_NAME).read_text())
    assert on_disk == bundle.manifest.to_dict() and bundle.path == root
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["signature"] == graph_signature(root / MODEL_NAME)
    assert on_disk["sealed"] == Manifest.from_dict(on_disk).seal_digest()
    assert list(on_disk)[:3] == ["precision", "graph", "thresholds"]  # the schema's order, not sorted
    assert list(on_disk)[-2:] == ["signature", "sealed"]
    read_bundle(root)  # and it loads


def test_write_manifest_keeps_a_recorded_signature_and_hashes_of_listed_files_only(tmp_path):
    root = _folder(tmp_path, **{"a.engine": b"new"})
    recorded = {"nodes": 1, "inputs": ["frames"]}
    bundle = write_manifest(root, Manifest.from_dict({**RAW, "signature": recorded}),
                            keep={"a.engine": "0" * 64, "gone.engine": "1" * 64})
    assert bundle.manifest.signature == recorded
    assert bundle.manifest.files["a.engine"] == "0" * 64 and "gone.engine" not in bundle.manifest.files


def test_write_manifest_of_a_model_that_is_no_onnx_writes_no_signature(tmp_path):
    root = _folder(tmp_path)
    (root / MODEL_NAME).write_bytes(b"\xff\xff\xff not protobuf")
    assert "signature" not in write_manifest(root, RAW).manifest


def test_write_manifest_reads_the_model_named_by_model_file(tmp_path):
    root = _folder(tmp_path)
    (root / MODEL_NAME).rename(root / "graph.onnx")
    manifest = write_manifest(root, {**RAW, "model_file": "graph.onnx"}).manifest
    assert manifest.signature == graph_signature(root / "graph.onnx")


def test_update_manifest_merges_changes_and_hashes_the_files_written(toy):
    (toy.path / "report.json").write_text('{"a": 1}')
    (toy.path / "a.engine").write_bytes(b"e")
    bundle = update_manifest(toy.path, {"engines": {"a.engine": {}}, "notes": "x"}, written=("report.json",))
    assert bundle.manifest.engines == {"a.engine": {}} and bundle.manifest["notes"] == "x"
    assert bundle.manifest.files["report.json"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert read_bundle(toy.path).manifest == bundle.manifest


def test_an_update_does_not_bless_a_damaged_device_file_it_did_not_write(toy):
    _device_file(toy, "a.engine", b"first")
    recorded = read_bundle(toy.path).manifest.files["a.engine"]
    (toy.path / "a.engine").write_bytes(b"damaged")
    (toy.path / "timing.cache").write_bytes(b"cache")
    bundle = update_manifest(toy.path, {"notes": "cache added"}, written=("timing.cache",))
    assert bundle.manifest.files["a.engine"] == recorded  # still the good engine's hash
    assert bundle.manifest.files["timing.cache"] == hashlib.sha256(b"cache").hexdigest()
    with pytest.raises(DdadError, match="a.engine does not match its sha256"):
        bundle.read_device_file("a.engine")


def test_an_update_renews_a_device_file_it_wrote_and_files_the_export_made(toy):
    _device_file(toy, "a.engine", b"first")
    (toy.path / "a.engine").write_bytes(b"rebuilt")
    bundle = update_manifest(toy.path, {}, written=("a.engine",))
    assert bundle.read_device_file("a.engine") == b"rebuilt"
    (toy.path / "report.json").write_text("first")
    update_manifest(toy.path, {}, written=("report.json",))
    (toy.path / "report.json").write_text("changed")  # an export-made file is hashed anew, unverified
    bundle = update_manifest(toy.path, {})
    assert bundle.manifest.files["report.json"] == hashlib.sha256(b"changed").hexdigest()


def test_an_update_of_a_missing_device_file_drops_it(toy):
    _device_file(toy, "a.engine", b"first")
    (toy.path / "a.engine").unlink()
    assert "a.engine" not in update_manifest(toy.path, {}).manifest.files


# --- read_bundle -------------------------------------------------------------------------------------------


def refused(root, verify=True) -> str:
    with pytest.raises(DdadError) as info:
        read_bundle(root, verify=verify)
    return message(info)


def test_read_bundle_names_a_missing_folder_and_a_folder_without_a_manifest(tmp_path):
    assert refused(tmp_path / "nope") == (f"bundle folder not found: {tmp_path / 'nope'} "
                                          "(make one with `ddad-edge export`)")
    assert refused(tmp_path) == (f"{tmp_path} is not a bundle: it has no {MANIFEST_NAME} "
                                 "(make one with `ddad-edge export`)")
    (tmp_path / MODEL_NAME).write_bytes(b"x")
    assert refused(tmp_path / MODEL_NAME).startswith("bundle folder not found: ")


def test_read_bundle_refuses_a_manifest_far_larger_than_any(toy):
    path = toy.path / MANIFEST_NAME
    with open(path, "ab") as fh:
        fh.write(b"#" * (MANIFEST_MAX_BYTES - path.stat().st_size))
    read_bundle(toy.path)  # exactly the limit: still read
    with open(path, "ab") as fh:
        fh.write(b"#" * (3 << 20))
    assert refused(toy.path) == (f"bundle {toy.path}: {MANIFEST_NAME} is 7 MiB, far larger than any manifest; "
                                 "the bundle is damaged or tampered with, export it again")


def test_read_bundle_names_a_python_tag_and_broken_yaml(toy):
    path = toy.path / MANIFEST_NAME
    path.write_text("a: !!python/object/apply:os.system ['true']\n")
    text = refused(toy.path)
    assert text.startswith(f"bundle {toy.path}: {MANIFEST_NAME} is not valid YAML (")
    assert text.endswith("); fix that line or export the bundle again") and "python/object" in text
    path.write_text("a: [1, 2\n")
    assert refused(toy.path) == (f"bundle {toy.path}: {MANIFEST_NAME} is not valid YAML (ParserError); "
                                 "export the bundle again")
    path.write_bytes(b"a: \xff\xfe\n")
    assert refused(toy.path) == (f"bundle {toy.path}: {MANIFEST_NAME} is not valid YAML (UnicodeDecodeError); "
                                 "export the bundle again")
    path.write_text("- 1\n- 2\n")
    assert refused(toy.path) == f"bundle {toy.path}: {MANIFEST_NAME} is not a mapping; export the bundle again"


def test_read_bundle_cuts_a_long_yaml_reason_to_160_characters(toy):
    (toy.path / MANIFEST_NAME).write_text("a: !!python/object/apply:" + "m" * 300 + " []\n")
    text = refused(toy.path)
    reason = text.removeprefix(f"bundle {toy.path}: {MANIFEST_NAME} is not valid YAML (")
    reason = reason.removesuffix("); fix that line or export the bundle again")
    assert len(reason) == 160 and "python/object/apply:mmm" in reason


def test_read_bundle_prefixes_a_schema_refusal_with_the_bundle(toy):
    _edit(toy.path, lambda m: m.update(schema_version=SCHEMA_VERSION + 1))
    assert refused(toy.path) == (f"bundle {toy.path}: schema version {SCHEMA_VERSION + 1}, this ddad-edge reads "
                                 f"{SCHEMA_VERSION}; export it again with this version")


def _edit(root, change):
    data = yaml.safe_load((root / MANIFEST_NAME).read_text())
    change(data)
    (root / MANIFEST_NAME).write_text(yaml.safe_dump(data, sort_keys=False))


def test_read_bundle_refuses_an_edit_of_a_sealed_key_and_takes_one_of_the_thresholds(toy):
    _edit(toy.path, lambda m: m["thresholds"].update(score=0.1))
    assert read_bundle(toy.path).thresholds == {"score": 0.1}
    _edit(toy.path, lambda m: m["graph"].update(steps=9))
    text = refused(toy.path)
    assert text == (f"bundle {toy.path}: {MANIFEST_NAME} was edited outside 'thresholds' (its sealed keys "
                    "model_file, precision, graph, signature, probe, tolerance no longer match 'sealed'); "
                    "only thresholds may be edited by hand: undo the edit or export the bundle again")
    assert read_bundle(toy.path, verify=False).manifest.graph["steps"] == 9  # a rewrite can still read it


def test_read_bundle_of_a_manifest_without_a_seal_does_not_compare_one(toy):
    _edit(toy.path, lambda m: (m.pop("sealed"), m["graph"].update(steps=9)))
    assert read_bundle(toy.path).manifest.graph["steps"] == 9


def test_read_bundle_names_a_missing_and_a_changed_file(toy):
    probe = toy.path / "probe.npz"
    data = probe.read_bytes()
    probe.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert refused(toy.path) == (f"bundle {toy.path}: probe.npz does not match its sha256 in {MANIFEST_NAME} "
                                 "(truncated, changed or tampered with); copy or export the bundle again")
    assert read_bundle(toy.path, verify=False).path == toy.path  # no hashes without verify
    probe.unlink()
    missing = f"bundle {toy.path}: file probe.npz is missing; copy the whole bundle folder again"
    assert refused(toy.path) == missing and refused(toy.path, verify=False) == missing


def test_read_bundle_checks_each_npz_it_verifies_for_pickles(toy):
    evil = toy.path / "extra.npz"
    _npz(evil, {"a.npy": _npy(np.array([{}], dtype=object))})
    write_manifest(toy.path, read_bundle(toy.path, verify=False).manifest)
    assert refused(toy.path).endswith("array a.npy holds pickled Python objects, which ddad-edge never loads; "
                                      "export the bundle again")
    read_bundle(toy.path, verify=False)


def test_read_bundle_skips_device_built_files_and_confines_the_others(toy):
    _device_file(toy, "a.engine")
    (toy.path / "a.engine").unlink()
    assert "a.engine" in read_bundle(toy.path).manifest.files  # left to whoever uses it
    _edit(toy.path, lambda m: m["files"].update({"../outside.txt": "0" * 64}))
    assert "leaves the bundle folder" in refused(toy.path, verify=False)


def test_read_bundle_returns_the_manifest_as_written(toy):
    loaded = read_bundle(toy.path)
    assert loaded == Bundle(toy.path, toy.manifest)
    assert loaded.manifest.to_dict() == yaml.safe_load((toy.path / MANIFEST_NAME).read_text())


def test_a_model_file_of_another_precision_is_named(tmp_path):
    root = tmp_path / "b"
    make_toy_bundle(root, image_size=16, precision="fp16")
    _edit(root, lambda m: m.pop("signature"))
    manifest = read_bundle(root, verify=False).manifest
    (root / MODEL_NAME).write_bytes(make_toy_model(Precision.FP32, 16))
    write_manifest(root, Manifest.from_dict({k: v for k, v in manifest.items() if k != "signature"}))
    text = refused(root)
    assert text.startswith(f"bundle {root}: {MODEL_NAME} does not match the bundle's precision fp16: ")
    assert text.endswith("; the model file belongs to another bundle; export the bundle again")


def test_a_model_file_that_is_no_onnx_is_left_to_the_runner(tmp_path):
    root = _folder(tmp_path)
    (root / MODEL_NAME).write_bytes(b"\xff\xff not onnx")
    write_manifest(root, RAW)
    assert read_bundle(root).model_path.read_bytes() == b"\xff\xff not onnx"


def test_the_seal_is_the_digest_of_the_sealed_keys_json(toy):
    manifest = read_bundle(toy.path).manifest
    sealed = {k: manifest[k] for k in bundle_module.SEALED_KEYS if k in manifest}
    text = json.dumps(sealed, sort_keys=True, separators=(",", ":"), default=str)
    assert manifest.sealed == hashlib.sha256(text.encode()).hexdigest()


def test_a_model_file_swapped_for_another_graph_is_named_with_the_difference(tmp_path):
    from ddad_edge.graph_signature import signature_difference

    root = tmp_path / "b"
    recorded = make_toy_bundle(root, image_size=16).manifest.signature
    (root / MODEL_NAME).write_bytes(make_toy_model(Precision.FP32, 32))
    write_manifest(root, read_bundle(root, verify=False).manifest)  # re-hashed: only the signature tells
    why = signature_difference(recorded, graph_signature(root / MODEL_NAME))
    assert why
    assert refused(root) == (f"bundle {root}: {MODEL_NAME} is not the graph its {MANIFEST_NAME} was exported with "
                             f"({why}): the model file belongs to another bundle or model; export the bundle again")
