"""Bundles: the directory that carries a model from the workstation to the device.

A bundle holds `manifest.yaml` (settings, thresholds, versions, the sha256 of every file; its schema is
manifest.py's `Manifest`), `model.onnx`, optionally TensorRT engines and a calibration cache, and
`report.json`. Loading verifies the schema version and every hash, and confines every file name to the
bundle folder; whatever does not match is one clear line. Nothing in a bundle is pickled.

Files that `ddad-edge build` makes on the device (engines, timing and calibration caches: `*.engine`,
`*.cache`) are the exception: a missing or damaged one must not stop a backend that does not use it, so
loading skips their hashes, and whoever uses one reads it through `Bundle.read_device_file`, which checks
it then and names the fix (rebuild it on the device).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ddad_edge.errors import DdadError
from ddad_edge.graph_signature import GraphFormatError, graph_signature, precision_mismatch, signature_difference
from ddad_edge.manifest import MANIFEST_NAME, SCHEMA_VERSION, SEALED_KEYS, Manifest
from ddad_edge.output_paths import followed, refuse_special_file
from ddad_edge.yaml_strict import load_yaml

MODEL_NAME = "model.onnx"
REPORT_NAME = "report.json"
MANIFEST_MAX_BYTES = 4 << 20  # settings, hashes and summaries: a few KiB; far more is not a manifest
DEVICE_BUILT_SUFFIXES = (".engine", ".cache")  # engines, timing caches, the legacy calibration cache


class Precision(str, Enum):
    """Numeric precision of a bundle's graph, decided in the ONNX file."""

    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename, so a crash leaves old or new, never half.

    A write that fails (disk full, read-only, no permission) removes its temporary file and raises one
    DdadError line naming the file; the OSError is its `__cause__` (errno ENOSPC for a full disk).
    """
    # A link is followed (its target replaced, the link kept); a device node, FIFO or socket is refused:
    # the rename below would replace the node itself (`/dev/full` as root) with a regular file.
    path = followed(Path(path))
    refuse_special_file(path, "")
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            os.fchmod(fd, 0o644)  # mkstemp makes it private; the file it becomes is an ordinary one
            view = memoryview(data)
            while view:  # os.write may write less than asked
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise DdadError(f"cannot write {path}: {exc.strerror or exc}; nothing was changed there") from exc
    except BaseException:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise


def check_npz(path: Path) -> list[str]:
    """The array names of an .npz file, refusing one that is not a plain zip of .npy arrays or that holds
    a pickled (object) array: loading it would run code. Reads only the headers."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = []
            for info in archive.infolist():
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                              else np.lib.format.read_array_header_2_0)(member)
                if header[2].hasobject:
                    raise DdadError(f"{path}: array {info.filename} holds pickled Python objects, which "
                                    "ddad-edge never loads; export the bundle again")
                names.append(info.filename.removesuffix(".npy"))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DdadError(f"{path} is not a valid .npz of arrays ({str(exc).splitlines()[0][:120]})") from None
    return names


def load_arrays(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays `names` of an .npz file, loaded without pickle; a missing name or a damaged or pickled
    file is one line."""
    present = check_npz(path)
    missing = sorted(set(names) - set(present))
    if missing:
        raise DdadError(f"{path} lacks arrays {missing} (it has {sorted(present)})")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.ascontiguousarray(data[name]) for name in names}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DdadError(f"{path}: cannot read its arrays ({str(exc).splitlines()[0][:120]})") from None


def _confined(root: Path, name: str) -> Path:
    """The path of bundle file `name`, refusing anything that leaves the bundle folder."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise DdadError(f"bundle {root}: file name {name!r} in the manifest leaves the bundle folder; "
                        "the bundle is damaged or tampered with, export it again")
    path = (root / name).resolve()
    if root.resolve() not in path.parents:
        raise DdadError(f"bundle {root}: file name {name!r} in the manifest leaves the bundle folder")
    return path


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk. `manifest` is its parsed manifest.yaml."""

    path: Path
    manifest: Manifest

    def file(self, name: str) -> Path:
        """Path of a file inside the bundle (confined to the folder)."""
        return _confined(self.path, name)

    @property
    def model_path(self) -> Path:
        return self.file(self.manifest.model_name(MODEL_NAME))

    @property
    def precision(self) -> Precision:
        return Precision(self.manifest.precision)

    @property
    def image_size(self) -> int:
        return int(self.manifest.graph["image_size"])

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.manifest.thresholds or {})

    @property
    def engines(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest.engines or {})

    def read_device_file(self, name: str) -> bytes:
        """The bytes of a file built on the device (an engine or a cache), checked against its sha256 now.

        `read_bundle` skips these; a missing, unlisted or damaged one is one line that says to rebuild it.
        """
        path = self.file(name)
        rebuild = f"rebuild it here with `ddad-edge build --bundle {self.path}`"
        expected = (self.manifest.files or {}).get(name)
        if expected is None:
            raise DdadError(f"bundle {self.path}: {name} is not hashed in {MANIFEST_NAME}; {rebuild}")
        if not path.is_file():
            raise DdadError(f"bundle {self.path}: {name} is missing; {rebuild}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != expected:
            raise DdadError(f"bundle {self.path}: {name} does not match its sha256 in {MANIFEST_NAME} "
                            f"(truncated, changed or tampered with); {rebuild}")
        return data


def built_on_device(manifest: Manifest, name: Any) -> bool:
    """Whether bundle file `name` is one `ddad-edge build` makes (an engine or a cache), not one the export
    made; the model, probe and calibration frames never are, whatever they are called."""
    return (isinstance(name, str) and name.endswith(DEVICE_BUILT_SUFFIXES)
            and name not in manifest.referenced_files(MODEL_NAME, engines=False))


def write_manifest(root: Path, manifest: Manifest | Mapping[str, Any], keep: dict[str, str] | None = None) -> Bundle:
    """Hash every file of the bundle folder (except the manifest) into the manifest's `files` and write it,
    with the schema version, the model's graph signature (when it has none yet) and the seal.

    `manifest`: a Manifest, or a mapping of its YAML keys (a bundle made by hand: a test's, a benchmark's).
    `keep`: recorded hashes to write instead of the files' current ones (a damaged file stays damaged).
    Returns the bundle as it now stands on disk.
    """
    root = Path(root)
    files = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and path.name != MANIFEST_NAME and not path.name.startswith("."):
            files[path.name] = sha256_of(path)
    files.update({name: digest for name, digest in (keep or {}).items() if name in files})
    manifest = Manifest.from_dict(manifest).updated({"schema_version": SCHEMA_VERSION, "files": files})
    model = root / str(manifest.model_name(MODEL_NAME))
    if "signature" not in manifest and model.is_file():
        try:  # recorded once, from the file as exported; later updates (engines) keep it
            manifest = manifest.updated({"signature": graph_signature(model)})
        except GraphFormatError:
            pass
    manifest = manifest.updated({"sealed": manifest.seal_digest()})
    atomic_write_bytes(root / MANIFEST_NAME, yaml.safe_dump(manifest.to_dict(), sort_keys=False).encode())
    return Bundle(root, manifest)


def update_manifest(root: Path, changes: dict[str, Any], written: tuple[str, ...] = ()) -> Bundle:
    """Merge `changes` into the top level of a verified bundle's manifest and re-hash its files.

    Used when a file is added beside the ONNX model (an engine, a calibration cache, a timing cache).
    `written`: the files the caller has just made. A device-built file not among them whose bytes no
    longer match its recorded hash keeps that hash, so an unrelated update does not bless a damaged engine.
    """
    bundle = read_bundle(root, verify=False)
    manifest = bundle.manifest.updated(changes)
    recorded = bundle.manifest.files
    keep = {}
    for name, digest in recorded.items():
        path = bundle.file(name)
        if (name not in written and built_on_device(bundle.manifest, name) and path.is_file()
                and sha256_of(path) != digest):
            keep[name] = digest
    return write_manifest(root, manifest, keep)


def read_bundle(root: Path, verify: bool = True) -> Bundle:
    """Load a bundle folder, checking schema version and (if `verify`) the sha256 of every listed file."""
    root = Path(root)
    if not root.is_dir():
        raise DdadError(f"bundle folder not found: {root} (make one with `ddad-edge export`)")
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise DdadError(f"{root} is not a bundle: it has no {MANIFEST_NAME} (make one with `ddad-edge export`)")
    if mpath.stat().st_size > MANIFEST_MAX_BYTES:
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is {mpath.stat().st_size >> 20} MiB, far larger than "
                        "any manifest; the bundle is damaged or tampered with, export it again")
    try:
        raw = load_yaml(mpath.read_text(encoding="utf-8"))
    except yaml.constructor.ConstructorError as exc:  # a Python tag, a repeated key: say which
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is not valid YAML ({str(exc).splitlines()[0][:160]}); "
                        "fix that line or export the bundle again") from None
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is not valid YAML ({type(exc).__name__}); "
                        "export the bundle again") from None
    if not isinstance(raw, dict):
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is not a mapping; export the bundle again")
    manifest = Manifest.from_dict(raw)
    manifest.check(f"bundle {root}", MODEL_NAME, tuple(p.value for p in Precision))
    seal = manifest.sealed  # bundles made before the seal have none: nothing to compare
    if verify and seal is not None and seal != manifest.seal_digest():
        present = [key for key in SEALED_KEYS if key in manifest]
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} was edited outside 'thresholds' (its sealed keys "
                        f"{', '.join(present)} no longer match 'sealed'); only thresholds may be edited by hand: "
                        "undo the edit or export the bundle again")
    bundle = Bundle(root, manifest)
    for name, expected in manifest.files.items():
        path = bundle.file(name)
        if built_on_device(manifest, name):
            continue  # checked by whoever uses it (Bundle.read_device_file), with the fix: rebuild it
        if not path.is_file():
            raise DdadError(f"bundle {root}: file {name} is missing; copy the whole bundle folder again")
        if verify and sha256_of(path) != expected:
            raise DdadError(f"bundle {root}: {name} does not match its sha256 in {MANIFEST_NAME} "
                            "(truncated, changed or tampered with); copy or export the bundle again")
        if verify and path.suffix == ".npz":
            check_npz(path)  # nothing in a bundle is pickled
    if verify:
        _check_graph_binding(bundle)
    return bundle


def _check_graph_binding(bundle: Bundle) -> None:
    """The model file is the graph this manifest was exported with (its recorded signature) and of the
    manifest's precision; a file swapped in from another bundle and re-hashed is refused here, on every
    backend. A file that is no ONNX model at all is left to the runner, which names what it is."""
    try:
        actual = graph_signature(bundle.model_path)
    except (GraphFormatError, OSError):
        return
    recorded = bundle.manifest.signature
    where = f"bundle {bundle.path}: {bundle.model_path.name}"
    if isinstance(recorded, dict):
        why = signature_difference(recorded, actual)
        if why:
            raise DdadError(f"{where} is not the graph its {MANIFEST_NAME} was exported with ({why}): the model "
                            "file belongs to another bundle or model; export the bundle again")
    why = precision_mismatch(actual, bundle.precision.value)
    if why:
        raise DdadError(f"{where} does not match the bundle's precision {bundle.precision.value}: {why}; the "
                        "model file belongs to another bundle; export the bundle again")
