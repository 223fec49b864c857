"""Bundles: the directory that carries a model from the workstation to the device.

A bundle holds `manifest.yaml` (settings, thresholds, versions, the sha256 of every file), `model.onnx`,
optionally TensorRT engines and a calibration cache, and `report.json`. Loading verifies the schema
version and every hash, and confines every file name to the bundle folder; whatever does not match is
one clear line. Nothing in a bundle is pickled.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ddad_edge.errors import DdadError

BUNDLE_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.yaml"
MODEL_NAME = "model.onnx"
REPORT_NAME = "report.json"


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
    """Write `data` to `path` through a temporary file and a rename, so a crash leaves old or new, never half."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    """A verified bundle on disk. `manifest` is the parsed manifest.yaml."""

    path: Path
    manifest: dict[str, Any]

    def file(self, name: str) -> Path:
        """Path of a file inside the bundle (confined to the folder)."""
        return _confined(self.path, name)

    @property
    def model_path(self) -> Path:
        return self.file(self.manifest.get("model_file", MODEL_NAME))

    @property
    def precision(self) -> Precision:
        return Precision(self.manifest["precision"])

    @property
    def image_size(self) -> int:
        return int(self.manifest["graph"]["image_size"])

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(self.manifest.get("thresholds", {}))

    @property
    def engines(self) -> dict[str, dict[str, Any]]:
        return dict(self.manifest.get("engines", {}))


def write_manifest(root: Path, manifest: dict[str, Any]) -> Bundle:
    """Hash every file of the bundle folder (except the manifest) into `manifest['files']` and write it.

    Returns the bundle as it now stands on disk.
    """
    root = Path(root)
    files = {}
    for path in sorted(root.iterdir()):
        if path.is_file() and path.name != MANIFEST_NAME and not path.name.startswith("."):
            files[path.name] = sha256_of(path)
    manifest = dict(manifest)
    manifest["schema_version"] = BUNDLE_SCHEMA_VERSION
    manifest["files"] = files
    atomic_write_bytes(root / MANIFEST_NAME, yaml.safe_dump(manifest, sort_keys=False).encode())
    return Bundle(root, manifest)


def update_manifest(root: Path, changes: dict[str, Any]) -> Bundle:
    """Merge `changes` into the top level of a verified bundle's manifest and re-hash its files.

    Used when a file is added beside the ONNX model (an engine, a calibration cache, a timing cache).
    """
    bundle = read_bundle(root, verify=False)
    manifest = dict(bundle.manifest)
    manifest.update(changes)
    return write_manifest(root, manifest)


def read_bundle(root: Path, verify: bool = True) -> Bundle:
    """Load a bundle folder, checking schema version and (if `verify`) the sha256 of every listed file."""
    root = Path(root)
    if not root.is_dir():
        raise DdadError(f"bundle folder not found: {root} (make one with `ddad-edge export`)")
    mpath = root / MANIFEST_NAME
    if not mpath.is_file():
        raise DdadError(f"{root} is not a bundle: it has no {MANIFEST_NAME} (make one with `ddad-edge export`)")
    try:
        manifest = yaml.safe_load(mpath.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is not valid YAML ({type(exc).__name__}); "
                        "export the bundle again") from None
    if not isinstance(manifest, dict):
        raise DdadError(f"bundle {root}: {MANIFEST_NAME} is not a mapping; export the bundle again")
    version = manifest.get("schema_version")
    if version != BUNDLE_SCHEMA_VERSION:
        raise DdadError(f"bundle {root}: schema version {version!r}, this ddad-edge reads "
                        f"{BUNDLE_SCHEMA_VERSION}; export it again with this version")
    for key in ("precision", "graph", "files"):
        if key not in manifest:
            raise DdadError(f"bundle {root}: {MANIFEST_NAME} lacks '{key}'; export the bundle again")
    try:
        Precision(manifest["precision"])
    except ValueError:
        raise DdadError(f"bundle {root}: unknown precision {manifest['precision']!r}") from None
    files = manifest["files"]
    if not isinstance(files, dict):
        raise DdadError(f"bundle {root}: 'files' in {MANIFEST_NAME} must map names to sha256")
    bundle = Bundle(root, manifest)
    for name, expected in files.items():
        path = bundle.file(name)
        if not path.is_file():
            raise DdadError(f"bundle {root}: file {name} is missing; copy the whole bundle folder again")
        if verify and sha256_of(path) != expected:
            raise DdadError(f"bundle {root}: {name} does not match its sha256 in {MANIFEST_NAME} "
                            "(truncated, changed or tampered with); copy or export the bundle again")
    if verify and manifest.get("model_file", MODEL_NAME) not in files:
        raise DdadError(f"bundle {root}: the manifest lists no {MODEL_NAME}; export the bundle again")
    return bundle
