"""The bundle manifest's schema: what `manifest.yaml` holds, written once for the export and the loader.

The export (deploy/bundle_export.py) fills a `Manifest`; bundle.write_manifest adds the file hashes, the
graph signature, the schema version and the seal, and writes `to_dict()` as YAML; bundle.read_bundle parses
the YAML with `from_dict` and holds it to the schema with `check`. The keys on disk are the field names, so
a bundle written before this class existed reads back unchanged, and one written now loads in an older
ddad-edge of the same schema version.

Sections that hold settings or measurements (`graph`, `thresholds`, `engines`, ...) stay mappings as they
appear in YAML; each field's comment names what it holds. A key this version does not know (a speed-only
bundle's `notes`, say) is kept as read, so rewriting a manifest (an engine added on the device) never drops
one. A `Manifest` is also a read-only mapping of its YAML keys (`manifest["graph"]["steps"]`), for code
that reads the YAML's keys.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Iterator

from ddad_edge.errors import DdadError

# Bump when a key changes meaning or a reader could misread a new bundle; read_bundle refuses any other.
SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.yaml"  # the file in a bundle folder
MAX_IMAGE_SIZE = 4096  # graph.image_size beyond this is no model this tool makes
# What a hand edit of manifest.yaml must not change: the graph's settings and signature, the precision, the
# statistics thresholds and the frame gate are judged by, and the thresholds as exported. Sealed by a
# sha256 of their canonical JSON (`seal_digest`); `thresholds` stay editable by design (the decision lives
# outside the graph), `files` hash themselves, `engines` are added on the device by `ddad-edge build`.
SEALED_KEYS = ("model_file", "precision", "graph", "signature", "preprocessing", "nominal_scores", "test_scores",
               "thresholds_exported", "threshold_rule", "frame_gate", "probe", "tolerance", "calibration_frames")
REQUIRED_KEYS = ("precision", "graph", "files")
_MAPPINGS = ("thresholds", "engines", "probe", "tolerance", "calibration_frames")  # when present


@dataclass(frozen=True, eq=False)
class Manifest(Mapping):
    """One bundle's manifest.yaml. Fields in the order they are written; None: the key is absent.

    Compares equal to any mapping of the same YAML keys and values (a Manifest or a dict).
    """

    model_file: str | None = None  # the graph file in the bundle folder; absent: model.onnx
    precision: str | None = None  # bundle.Precision's value: fp32, fp16 or int8
    recipe: dict | None = None  # name, description of the precision recipe
    # image_size (S), opset, steps, timesteps, t_prime, w, eta, naive, start_level (a naive grid's own start,
    # where given), scoring, backbone (None: pixel-only),
    # inputs, outputs, batch, unet_calls, nodes, crop (scoring.crop, where the score is not the whole map's max)
    graph: dict | None = None
    preprocessing: dict | None = None  # input (RGB uint8 (N, S, S, 3)), normalisation (inside the graph)
    source: dict | None = None  # run, data, category, exported (UTC ISO time)
    thresholds: dict | None = None  # image, pixel, image_f1: the ones in use (editable by hand)
    thresholds_exported: dict | None = None  # the same as exported (sealed)
    threshold_rule: dict | None = None  # quantile, margin, pixel_quantile
    nominal_scores: dict | None = None  # statistics of held-out nominal scores (thresholds.nominal_statistics)
    test_scores: dict | None = None  # statistics of the labelled test split, where there is one
    frame_gate: dict | None = None  # the frame gate calibrated on held-out nominal frames
    probe: dict | None = None  # file (probe.npz), frames: the selftest's frames and FP32 outputs
    tolerance: dict | None = None  # map_abs, score_rel, map_rel: what a backend must meet on the probe
    calibration: dict | None = None  # how the precision's file was made (method, counts)
    tensorrt_rules: dict | None = None  # per TensorRT version: whether its parser takes the file, and why not
    fidelity: dict | None = None  # map_max_abs, map_max_rel, score_rank_correlation, auroc_drop vs FP32 torch
    execution_modes: dict | None = None  # other ways to run the file (OpenVINO f32/bf16): status, reason, fidelity
    latency: dict | None = None  # ort_cpu_ms_p50, fp32_ort_cpu_ms_p50 on the exporting machine
    config: dict | None = None  # the run's config (config.to_dict)
    tools: dict | None = None  # versions of python, ddad-edge, torch, onnx, onnxruntime, numpy
    calibration_frames: dict | None = None  # file: nominal frames for TensorRT's legacy INT8 calibrator
    schema_version: int | None = None  # SCHEMA_VERSION, set by bundle.write_manifest
    files: dict | None = None  # name -> sha256 of every file in the folder but the manifest
    signature: dict | None = None  # the model file's graph signature as exported (graph_signature)
    sealed: str | None = None  # seal_digest() as written
    engines: dict | None = None  # engine file -> its build settings, added on the device by `ddad-edge build`
    # keys this version does not know, and known keys written as null, as read (never a field's own value)
    extra: dict = field(default_factory=dict)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The YAML keys this schema knows, in written order."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """The manifest of a parsed manifest.yaml (or of a mapping built by hand); types are not checked
        here (`check` does), so a damaged manifest can still be read, reported and rewritten."""
        known = set(cls.field_names())
        values = {k: v for k, v in data.items() if k in known and v is not None}
        extra = {k: v for k, v in data.items() if k not in known or v is None}
        return cls(**values, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The YAML keys and values, in written order: each field that is set (or was read as null), then the
        keys this version does not know. The nested mappings are this manifest's own, not copies."""
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if value is not None or name in self.extra:
                out[name] = value
        out.update((k, v) for k, v in self.extra.items() if k not in out)
        return out

    def updated(self, changes: Mapping[str, Any]) -> Manifest:
        """This manifest with top-level keys replaced or added (an engine table, a calibration summary)."""
        return Manifest.from_dict({**self.to_dict(), **changes})

    # the read-only mapping of the YAML keys
    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def seal_digest(self) -> str:
        """sha256 of the canonical JSON of the SEALED_KEYS this manifest has."""
        data = self.to_dict()
        sealed = {key: data[key] for key in SEALED_KEYS if key in data}
        text = json.dumps(sealed, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def model_name(self, default: str) -> Any:
        """model_file, or `default` where the key is absent (a null one is returned as read: refused later)."""
        return default if self.model_file is None and "model_file" not in self.extra else self.model_file

    def referenced_files(self, model: str, engines: bool = True) -> list[Any]:
        """The file names the manifest points at: the model (`model` where model_file is absent), the probe
        and calibration frames, and (with `engines`) the engines."""
        names = [self.model_name(model)]
        for entry in (self.probe, self.calibration_frames):
            if isinstance(entry, dict) and "file" in entry:
                names.append(entry["file"])
        return names + list(self.engines if engines and isinstance(self.engines, dict) else {})

    def check(self, where: str, model: str, precisions: tuple[str, ...]) -> None:
        """Raise one DdadError line (prefixed by `where`, e.g. "bundle PATH") unless this manifest is of this
        schema version, has the required keys, one of the `precisions`, and fields of the types and ranges the
        rest of the tool relies on. `model`: the model file's name where model_file is absent."""
        data = self.to_dict()
        if self.schema_version != SCHEMA_VERSION:
            raise DdadError(f"{where}: schema version {data.get('schema_version')!r}, this ddad-edge reads "
                            f"{SCHEMA_VERSION}; export it again with this version")
        for key in REQUIRED_KEYS:
            if key not in data:
                raise DdadError(f"{where}: {MANIFEST_NAME} lacks '{key}'; export the bundle again")
        if self.precision not in precisions:
            raise DdadError(f"{where}: unknown precision {data['precision']!r}")
        size = self.graph.get("image_size") if isinstance(self.graph, dict) else None
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MAX_IMAGE_SIZE:
            raise DdadError(f"{where}: graph.image_size in {MANIFEST_NAME} is {size!r}, not a size from 1 to "
                            f"{MAX_IMAGE_SIZE}; export the bundle again")
        for key in _MAPPINGS:
            value = getattr(self, key)
            if value is not None and not isinstance(value, dict):
                raise DdadError(f"{where}: '{key}' in {MANIFEST_NAME} must be a mapping, got "
                                f"{type(value).__name__}; export the bundle again")
        for key, value in (self.tolerance or {}).items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise DdadError(f"{where}: tolerance.{key} in {MANIFEST_NAME} is {value!r}, not a number >= 0; "
                                "export the bundle again")
        if not all(isinstance(e, dict) for e in (self.engines or {}).values()):
            raise DdadError(f"{where}: every engine in {MANIFEST_NAME} must be a mapping of its settings")
        files = self.files
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise DdadError(f"{where}: 'files' in {MANIFEST_NAME} must map names to sha256")
        unlisted = [name for name in self.referenced_files(model)
                    if not isinstance(name, str) or name not in files]
        if unlisted:
            raise DdadError(f"{where}: {MANIFEST_NAME} uses {unlisted[0]!r}, which its file list does not "
                            "hash; export the bundle again")
