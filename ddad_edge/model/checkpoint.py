"""Checkpoints and run folders: save, load safely, and rebuild the models of a run.

A run folder (made by `ddad-edge train`) holds:
  config.yaml                the RunConfig of the run
  split.yaml                 which train/good images were held out for validation
  checkpoints/step_N.pt      periodic checkpoints; checkpoints/last.pt the newest
  backbone.pt                the domain-adapted feature extractor (after `ddad-edge adapt`)
  students/steps_K.pt        distilled samplers with their step grid and w (after `ddad-edge distill`)
Every .pt file is a dict of tensors and plain values with the full config inside, loaded with
`torch.load(weights_only=True)`: no pickled code is ever executed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ddad_edge.config import ModelConfig, RunConfig
from ddad_edge.config_yaml import load_run_config
from ddad_edge.errors import DdadError
from ddad_edge.model.backbone import FeatureExtractor, load_backbone
from ddad_edge.model.unet import UNet
from ddad_edge.yaml_strict import from_dict, load_yaml

LAST = "last.pt"


def file_mode(path: Path) -> int:
    """The permission bits a plain `open(path, "w")` would leave: an existing file's own, else 0o666 less the
    process umask. (mkstemp makes its file 0o600, which would hide a checkpoint from colleagues and service
    users that can read every other file of the run.)"""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mask = os.umask(0)  # the only portable way to read the umask is to set it
        os.umask(mask)
        return 0o666 & ~mask


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (temporary file, then rename), with the mode a plain write would give it.
    Returns `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.chmod(tmp, file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; a missing or damaged file is one line."""
    path = Path(path)
    if not path.is_file():
        raise DdadError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DdadError(f"checkpoint {path} cannot be read ({str(exc).splitlines()[0][:120]}): "
                        "it is damaged or not a ddad-edge checkpoint") from None
    if not isinstance(payload, dict) or "config" not in payload:
        raise DdadError(f"checkpoint {path} is not a ddad-edge checkpoint (no config inside)")
    return payload


def config_of(payload: dict[str, Any], path: Path) -> RunConfig:
    """The RunConfig saved inside a checkpoint."""
    try:
        return from_dict(RunConfig, payload["config"])
    except DdadError as exc:
        raise DdadError(f"checkpoint {path}: its config is invalid ({exc})") from None


def describe(cfg: ModelConfig) -> str:
    return f"preset {cfg.preset} at {cfg.image_size} px"


def unet_from(payload: dict[str, Any], path: Path, expected: ModelConfig | None = None,
              key: str = "unet") -> UNet:
    """Rebuild the UNet stored in a checkpoint; `expected` refuses a checkpoint of another model in one line."""
    cfg = config_of(payload, path).model
    if expected is not None and expected != cfg:
        raise DdadError(f"checkpoint {path} holds a UNet of {describe(cfg)}, but {describe(expected)} was asked "
                        "for: use a checkpoint of that preset or drop the preset option")
    unet = UNet(cfg)
    try:
        unet.load_state_dict(payload[key])
    except (RuntimeError, KeyError) as exc:
        raise DdadError(f"checkpoint {path} does not fit a UNet of {describe(cfg)} "
                        f"({str(exc).splitlines()[0][:120]})") from None
    return unet.eval()


@dataclass
class Run:
    """A run folder and what it holds."""

    path: Path
    cfg: RunConfig
    val_files: list[str] = field(default_factory=list)
    train_files: list[str] = field(default_factory=list)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoint_dir / LAST

    @property
    def backbone_path(self) -> Path:
        return self.path / "backbone.pt"

    def student_path(self, steps: int) -> Path:
        return self.path / "students" / f"steps_{steps}.pt"

    def students(self) -> list[int]:
        folder = self.path / "students"
        if not folder.is_dir():
            return []
        return sorted(int(p.stem.split("_")[1]) for p in folder.glob("steps_*.pt"))


def open_run(path: Path) -> Run:
    """Open a run folder made by `ddad-edge train`."""
    path = Path(path)
    if not path.is_dir():
        raise DdadError(f"run folder not found: {path} (make one with `ddad-edge train --out {path}`)")
    cfg_path = path / "config.yaml"
    if not cfg_path.is_file():
        raise DdadError(f"{path} is not a run folder: it has no config.yaml (make one with `ddad-edge train`)")
    run = Run(path, load_run_config(cfg_path))
    split = path / "split.yaml"
    if split.is_file():
        run.train_files, run.val_files = read_split(split)
    return run


def read_split(split: Path) -> tuple[list[str], list[str]]:
    """(training, validation) image paths of a run's split.yaml, or one line naming the file and the fix."""
    fix = ("it lists which train/good images the run trained on and which it held out: restore it from a copy, "
           "or train the run again")
    try:
        data = load_yaml(split.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DdadError(f"{split} is not valid YAML ({str(exc).splitlines()[0][:80]}): {fix}") from None
    except (OSError, UnicodeDecodeError, RecursionError) as exc:
        raise DdadError(f"{split} cannot be read ({type(exc).__name__}): {fix}") from None
    lists = [data.get(key, []) if isinstance(data, dict) else None for key in ("train", "val")]
    if not all(isinstance(files, list) and all(isinstance(f, str) for f in files) for files in lists):
        raise DdadError(f"{split} is not a split (a mapping with lists 'train' and 'val' of image paths): {fix}")
    return list(lists[0]), list(lists[1])


def load_run_unet(run: Run) -> UNet:
    """The trained UNet of a run (EMA weights when the run kept them)."""
    payload = load_checkpoint(run.last_checkpoint)
    key = "ema" if payload.get("ema") is not None else "unet"
    return unet_from(payload, run.last_checkpoint, run.cfg.model, key=key)


def load_run_extractor(run: Run) -> FeatureExtractor:
    """The run's feature extractor: the adapted one when `adapt` has run, else the configured weights."""
    if run.backbone_path.is_file():
        payload = load_checkpoint(run.backbone_path)
        extractor = FeatureExtractor(payload["backbone"])
        try:
            extractor.load_state_dict(payload["state_dict"])
        except RuntimeError as exc:
            raise DdadError(f"{run.backbone_path} does not fit backbone {payload['backbone']}: "
                            f"{str(exc).splitlines()[0][:120]}") from None
        return extractor.eval()
    return load_backbone(run.cfg.scoring.backbone, run.cfg.scoring.backbone_weights)


def latest_run(folder: Path = Path("runs")) -> Path:
    """The most recently trained run under `folder` (default ./runs), for commands given no --run."""
    folder = Path(folder)
    runs = [p.parent.parent for p in folder.glob("*/checkpoints/last.pt")] if folder.is_dir() else []
    if not runs:
        raise DdadError(f"no trained run under {folder.resolve()}: pass --run RUN or train one with "
                        "`ddad-edge train --data DIR`")
    return max(runs, key=lambda p: (p / "checkpoints" / LAST).stat().st_mtime)
