"""Configuration: one frozen dataclass per stage, YAML in and out, DDAD's published presets.

A run's whole configuration (`RunConfig`) is saved inside every checkpoint and bundle and is enough to
rebuild the model. YAML files are validated strictly: an unknown key or a wrong type is an error that
names the key (for example `train.lrr`).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ddad_edge.errors import DdadError
from ddad_edge.yaml_strict import load_yaml

SCHEMA_VERSION = 1
CONFIG_MAX_BYTES = 1 << 20  # a config file is a page of YAML; anything larger is not one
INT_LIMIT = 1 << 62  # integers beyond this overflow torch and numpy (int64) further down


class ScoringMode(str, Enum):
    """Which distances make the anomaly map."""

    FUSED = "fused"  # D_f + v·(max D_f / max D_p)·D_p, DDAD's map
    PIXEL = "pixel"  # D_p alone: no feature extractor at all
    FEATURE = "feature"  # D_f alone


class RatioMode(str, Enum):
    """How the pixel distance is scaled against the feature distance in the fused map."""

    PER_IMAGE = "per_image"  # max D_f / max D_p of each image itself
    FIXED = "fixed"  # one ratio measured on nominal validation images, stored with the model


BACKBONES = ("resnet18", "resnet50", "wide_resnet50_2", "wide_resnet101_2")


@dataclass(frozen=True)
class ModelConfig:
    """The denoising UNet (DDPM / guided-diffusion layout with BigGAN up/down-sampling)."""

    preset: str = "ddad-s"
    image_size: int = 256
    in_channels: int = 3
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 1, 2, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (32, 16, 8)  # in pixels of the feature map
    num_heads: int = 2
    dropout: float = 0.3
    norm_groups: int = 32


@dataclass(frozen=True)
class DiffusionConfig:
    """The forward process: T steps with a linear beta schedule."""

    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02


@dataclass(frozen=True)
class SamplerConfig:
    """The conditioned DDIM reconstruction: start at T', step down by `skip` to 0."""

    t_prime: int = 250
    skip: int = 25
    w: float = 3.0  # conditioning weight
    eta: float = 1.0  # DDAD uses 1; 0 is deterministic (distillation, deployment)
    noise_seed: int = 0


@dataclass(frozen=True)
class ScoringConfig:
    """Feature extractor and anomaly map."""

    backbone: str = "wide_resnet101_2"
    backbone_weights: str = ""  # a .pth file with torchvision keys; "" tries torchvision; "none" is random
    mode: ScoringMode = ScoringMode.FUSED
    ratio: RatioMode = RatioMode.PER_IMAGE
    fixed_ratio: float = 0.0  # max D_f / max D_p measured on nominal images (ratio=fixed)
    v: float = 1.0  # weight of the pixel distance
    blur_sigma: float = 4.0
    blur_kernel: int = 33
    layers: tuple[str, ...] = ("layer2", "layer3")


@dataclass(frozen=True)
class TrainConfig:
    """Diffusion training of the UNet on nominal images."""

    epochs: int = 1000
    max_steps: int = 0  # 0: no limit beyond epochs
    max_minutes: float = 0.0  # 0: no time limit
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 0.05
    ema: bool = False
    ema_decay: float = 0.999
    seed: int = 42
    val_fraction: float = 0.1  # of train/good, held out for thresholds and fidelity checks
    checkpoint_every: int = 500
    num_workers: int = 0
    augment: bool = False  # horizontal flips
    # Train only the noise levels t < t_max (0: all diffusion.num_timesteps, as DDAD). The conditioned
    # reconstruction never visits t > sampler.t_prime, so a model trained on t < ~1.2·T' spends all its
    # updates where it is used: on a CPU budget it learns the levels that matter several times faster.
    t_max: int = 0


@dataclass(frozen=True)
class AdaptConfig:
    """Domain adaptation of the feature extractor."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    w: float = 3.0  # w_DA: conditioning weight of the reconstructions used for adaptation
    lam: float = 0.1  # distillation weight towards the frozen extractor (MVTec 0.1, VisA 0.01)
    max_steps: int = 0


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are read."""

    root: str = ""
    category: str = ""
    layout: str = "mvtec"  # mvtec | visa (already converted to the MVTec layout)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild and re-run a model."""

    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schema_version: int = SCHEMA_VERSION


# --- presets ---------------------------------------------------------------------------------------

_MULTS_BY_SIZE = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


def channel_mults_for(image_size: int) -> tuple[int, ...]:
    """DDAD's channel multipliers for an image size (256, 128 or 64)."""
    if image_size not in _MULTS_BY_SIZE:
        raise DdadError(
            f"no channel multipliers for image size {image_size}: use 64, 128 or 256, "
            "or set model.channel_mults in the config"
        )
    return _MULTS_BY_SIZE[image_size]


def model_preset(name: str, image_size: int | None = None) -> ModelConfig:
    """The UNet of a named preset: `ddad-s` (~8.3M at 256 px), `ddad` (full), `tiny` (CPU minutes)."""
    if name == "tiny":
        # Small enough to train usefully on 2 CPU cores in minutes at 64 px; same layout as DDAD-S.
        size = 64 if image_size is None else image_size
        return ModelConfig(
            preset="tiny",
            image_size=size,
            base_channels=32,
            channel_mults=(1, 2, 2),
            num_res_blocks=1,
            attention_resolutions=(16,) if size <= 64 else (32,),
            num_heads=2,
            dropout=0.0,
            norm_groups=8,
        )
    size = image_size or 256
    if name == "ddad-s":
        return ModelConfig(preset=name, image_size=size, base_channels=32, channel_mults=channel_mults_for(size),
                           num_heads=2, dropout=0.3)
    if name == "ddad":
        return ModelConfig(preset=name, image_size=size, base_channels=64, channel_mults=channel_mults_for(size),
                           num_heads=4, dropout=0.0)
    raise DdadError(f"unknown model preset '{name}': choose one of ddad-s, ddad, tiny")


MODEL_PRESETS = ("ddad-s", "ddad", "tiny")


@dataclass(frozen=True)
class CategoryPreset:
    """DDAD's published settings for one dataset category."""

    dataset: str
    w: float
    epochs: int
    fe_epochs: int
    v: float
    lam: float


def _mvtec(w: float, epochs: int, fe: int) -> CategoryPreset:
    return CategoryPreset("mvtec", w, epochs, fe, v=1.0, lam=0.1)


def _visa(w: float, epochs: int, fe: int, v: float = 7.0) -> CategoryPreset:
    return CategoryPreset("visa", w, epochs, fe, v=v, lam=0.01)


# From the DDAD authors' README (arimousa/DDAD). VisA cashew: the authors' config comment is ambiguous
# ("1 for MVTec and cashew in VisA, and 7 for VisA (1.5 for cashew)"); 1.5 is offered here.
CATEGORY_PRESETS: dict[str, CategoryPreset] = {
    "carpet": _mvtec(0, 2500, 0), "grid": _mvtec(4, 2000, 6), "leather": _mvtec(11, 2000, 8),
    "tile": _mvtec(4, 1000, 0), "wood": _mvtec(11, 2000, 16), "bottle": _mvtec(3, 1000, 5),
    "cable": _mvtec(3, 3000, 0), "capsule": _mvtec(8, 1500, 8), "hazelnut": _mvtec(5, 2000, 3),
    "metal_nut": _mvtec(7, 3000, 1), "pill": _mvtec(9, 1000, 4), "screw": _mvtec(2, 2000, 4),
    "toothbrush": _mvtec(0, 2000, 2), "transistor": _mvtec(0, 2000, 0), "zipper": _mvtec(10, 1000, 6),
    "candle": _visa(6, 1000, 1), "capsules": _visa(5, 1000, 3), "cashew": _visa(0, 1750, 0, v=1.5),
    "chewinggum": _visa(6, 1250, 0), "fryum": _visa(4, 1000, 3), "macaroni1": _visa(5, 500, 7),
    "macaroni2": _visa(2, 500, 11), "pcb1": _visa(9, 500, 8), "pcb2": _visa(5, 500, 5),
    "pcb3": _visa(6, 500, 1), "pcb4": _visa(6, 500, 1), "pipe_fryum": _visa(8, 500, 6),
}


def with_absolute_paths(cfg: RunConfig) -> RunConfig:
    """`cfg` with its dataset root and backbone weights file made absolute (against the working directory).

    A run folder keeps these paths for `adapt`, `distill`, `evaluate` and `export`, which may be started from
    another directory than `train` was.
    """
    def absolute(value: str) -> str:
        return str(Path(value).expanduser().resolve()) if value else value

    weights = cfg.scoring.backbone_weights
    return dataclasses.replace(
        cfg, data=dataclasses.replace(cfg.data, root=absolute(cfg.data.root)),
        scoring=dataclasses.replace(cfg.scoring, backbone_weights=weights if weights in ("", "none")
                                    else absolute(weights)))


def run_config_for(
    preset: str = "ddad-s",
    image_size: int | None = None,
    category: str = "",
    data_root: str = "",
) -> RunConfig:
    """A complete run configuration: model preset plus, for a known category, DDAD's w, v, λ and epochs.

    The `tiny` preset also picks a small backbone and short schedules so it trains on a CPU in minutes.
    """
    model = model_preset(preset, image_size)
    cfg = RunConfig(model=model, data=DataConfig(root=data_root, category=category))
    if preset == "ddad-s":
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=16))
    elif preset == "ddad":
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, batch_size=32))
    elif preset == "tiny":
        cfg = dataclasses.replace(
            cfg,
            train=dataclasses.replace(cfg.train, batch_size=16, epochs=400, lr=1e-3, weight_decay=0.0,
                                      checkpoint_every=200, t_max=300),
            scoring=dataclasses.replace(cfg.scoring, backbone="resnet18", backbone_weights="none"),
            adapt=dataclasses.replace(cfg.adapt, epochs=2, batch_size=16),
        )
    if category in CATEGORY_PRESETS:
        p = CATEGORY_PRESETS[category]
        cfg = dataclasses.replace(
            cfg,
            sampler=dataclasses.replace(cfg.sampler, w=p.w),
            scoring=dataclasses.replace(cfg.scoring, v=p.v),
            train=cfg.train if preset == "tiny" else dataclasses.replace(cfg.train, epochs=p.epochs),
            adapt=dataclasses.replace(cfg.adapt, lam=p.lam,
                                      epochs=cfg.adapt.epochs if preset == "tiny" else p.fe_epochs),
            data=dataclasses.replace(cfg.data, layout=p.dataset),
        )
    return cfg


# --- YAML in and out --------------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """A plain, YAML-safe dict of a config dataclass (enums as their values, tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise DdadError(f"config key '{key}' must be a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=key + ".")
    if isinstance(tp, type) and issubclass(tp, Enum):
        try:
            return tp(value)
        except ValueError:
            allowed = ", ".join(m.value for m in tp)
            raise DdadError(f"config key '{key}' is {value!r}: choose one of {allowed}") from None
    if origin is tuple:
        (inner, *_rest) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise DdadError(f"config key '{key}' must be a list, got {type(value).__name__}")
        return tuple(_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise DdadError(f"config key '{key}' must be a number, got {value!r}")
        if isinstance(value, int) and abs(value) > INT_LIMIT:
            raise DdadError(f"config key '{key}' is {value}, far outside any sensible range")
        if not math.isfinite(value):
            raise DdadError(f"config key '{key}' must be a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DdadError(f"config key '{key}' must be an integer, got {value!r}")
        if abs(value) > INT_LIMIT:
            raise DdadError(f"config key '{key}' is {value}, far outside any sensible range")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise DdadError(f"config key '{key}' must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise DdadError(f"config key '{key}' must be a string, got {value!r}")
        return value
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build config dataclass `cls` from a dict, rejecting unknown keys and wrong types by name."""
    if not isinstance(data, dict):
        raise DdadError(f"config section '{prefix.rstrip('.') or 'top level'}' must be a mapping")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    for key in data:
        if key not in known:
            # the name as written, escaped where it would break the line, cut where it would flood it
            shown = str(key) if str(key).isprintable() else repr(str(key))[1:-1]
            shown = shown if len(shown) <= 60 else shown[:60] + "..."
            raise DdadError(f"unknown config key '{prefix}{shown}': known keys here are {', '.join(sorted(known))}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    return cls(**kwargs)


def read_config_yaml(path: Path) -> dict:
    """The mapping in a config YAML file, or one line naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise DdadError(f"config file not found: {path}")
    size = path.stat().st_size
    if size > CONFIG_MAX_BYTES:
        raise DdadError(f"config file {path} is {size / 2**20:.1f} MiB; a config is at most "
                        f"{CONFIG_MAX_BYTES >> 20} MiB of YAML: is it the right file?")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DdadError(f"config file {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise DdadError(f"config file {path} is not a YAML text file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DdadError(f"config section 'top level' must be a mapping (config file {path})")
    return data


def load_run_config(path: Path, base: RunConfig | None = None) -> RunConfig:
    """Read a RunConfig from YAML and check its values (`check_run_config`). Keys the file does not give
    keep their value in `base` (a preset from `run_config_for`), or the dataclass defaults without one."""
    return run_config_from(read_config_yaml(path), base)


def run_config_from(data: dict, base: RunConfig | None = None) -> RunConfig:
    """The checked RunConfig of a config mapping (as read by `read_config_yaml`) laid over `base`."""
    if base is not None:
        merged = to_dict(base)
        for section, values in data.items():
            if isinstance(values, dict) and isinstance(merged.get(section), dict):
                merged[section] = {**merged[section], **values}
            else:
                merged[section] = values
        data = merged
    return check_run_config(from_dict(RunConfig, data))


# Inclusive bounds of the numbers a run can use; outside them a stage would crash deep in torch, run out
# of memory, or train nothing. Wide on purpose: they catch typos and absurd values, not taste.
_RANGES: dict[str, tuple[float, float]] = {
    "model.image_size": (8, 2048), "model.in_channels": (1, 4), "model.base_channels": (2, 1024),
    "model.num_res_blocks": (1, 16), "model.num_heads": (1, 64), "model.dropout": (0.0, 0.99),
    "model.norm_groups": (1, 1024),
    "diffusion.num_timesteps": (1, 100_000), "diffusion.beta_start": (1e-8, 0.999),
    "diffusion.beta_end": (1e-8, 0.999),
    "sampler.t_prime": (1, 100_000), "sampler.skip": (1, 100_000), "sampler.w": (0.0, 1000.0),
    "sampler.eta": (0.0, 1.0), "sampler.noise_seed": (0, 2**32 - 1),
    "scoring.fixed_ratio": (0.0, 1e9), "scoring.v": (0.0, 1000.0), "scoring.blur_sigma": (0.0, 100.0),
    "scoring.blur_kernel": (1, 255),
    "train.epochs": (0, 10_000_000), "train.max_steps": (0, 1_000_000_000), "train.max_minutes": (0.0, 1e7),
    "train.batch_size": (1, 4096), "train.lr": (1e-12, 10.0), "train.weight_decay": (0.0, 10.0),
    "train.ema_decay": (0.0, 0.999999), "train.seed": (0, 2**32 - 1), "train.val_fraction": (0.0, 0.99),
    "train.checkpoint_every": (1, 1_000_000_000), "train.num_workers": (0, 256),
    "train.t_max": (0, 100_000),
    "adapt.epochs": (0, 1_000_000), "adapt.batch_size": (1, 4096), "adapt.lr": (1e-12, 10.0),
    "adapt.w": (0.0, 1000.0), "adapt.lam": (0.0, 1000.0), "adapt.max_steps": (0, 1_000_000_000),
}
_LAYERS = ("layer1", "layer2", "layer3")


def option_range(key: str) -> tuple[float, float]:
    """The inclusive range of config key `key` (e.g. `sampler.w`), for a command-line option that sets it."""
    return _RANGES[key]


def check_option_range(option: str, key: str, value: float) -> None:
    """One line when a command-line `option` sets config key `key` (e.g. `sampler.w`) outside its range."""
    lo, hi = _RANGES[key]
    if not lo <= value <= hi:  # NaN is refused as well
        raise DdadError(f"{option} {value:g} is outside [{lo:g}, {hi:g}], the range of {key}")


def check_run_config(cfg: RunConfig) -> RunConfig:
    """Refuse values no stage can run with, naming the key (`model.image_size`); returns `cfg`.

    Ranges (`_RANGES`) and the relations between keys: the image size halves cleanly at every level,
    channel counts divide into norm groups and heads, the DDIM grid fits the schedule.
    """
    for key, (lo, hi) in _RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not lo <= value <= hi:
            raise DdadError(f"config key '{key}' is {value!r}: it must lie in [{lo:g}, {hi:g}]")
    m = cfg.model
    if not 1 <= len(m.channel_mults) <= 8 or not all(1 <= c <= 16 for c in m.channel_mults):
        raise DdadError(f"config key 'model.channel_mults' is {list(m.channel_mults)}: give 1 to 8 "
                        "multipliers, each from 1 to 16")
    levels = len(m.channel_mults)
    if m.image_size % 2 ** (levels - 1):
        raise DdadError(f"config key 'model.image_size' is {m.image_size}: with {levels} levels "
                        f"(model.channel_mults) it must be divisible by {2 ** (levels - 1)}")
    for channels in (m.base_channels, *(m.base_channels * c for c in m.channel_mults)):
        if channels % m.norm_groups or channels % m.num_heads or m.base_channels % 2:
            raise DdadError(f"config keys 'model.base_channels' (even) x 'model.channel_mults' give {channels} "
                            f"channels, which model.norm_groups ({m.norm_groups}) and model.num_heads "
                            f"({m.num_heads}) must both divide")
    if not all(1 <= r <= m.image_size for r in m.attention_resolutions):
        raise DdadError(f"config key 'model.attention_resolutions' is {list(m.attention_resolutions)}: each "
                        f"must be a feature-map size from 1 to model.image_size ({m.image_size})")
    d, s = cfg.diffusion, cfg.sampler
    if d.beta_start >= d.beta_end:
        raise DdadError(f"config keys 'diffusion.beta_start' ({d.beta_start:g}) and 'diffusion.beta_end' "
                        f"({d.beta_end:g}): the schedule must rise")
    if s.t_prime > d.num_timesteps or s.t_prime % s.skip:
        raise DdadError(f"config key 'sampler.t_prime' is {s.t_prime}: it must be a multiple of sampler.skip "
                        f"({s.skip}) and at most diffusion.num_timesteps ({d.num_timesteps})")
    t_max = cfg.train.t_max
    if t_max and not s.t_prime < t_max <= d.num_timesteps:
        raise DdadError(f"config key 'train.t_max' is {t_max}: it must exceed sampler.t_prime ({s.t_prime}), "
                        f"the noise level the reconstruction starts from, and be at most diffusion.num_timesteps "
                        f"({d.num_timesteps}); 0 trains every level")
    sc = cfg.scoring
    if sc.backbone not in BACKBONES:
        raise DdadError(f"config key 'scoring.backbone' is {sc.backbone!r}: choose one of {', '.join(BACKBONES)}")
    if sc.blur_kernel % 2 == 0 or (sc.blur_kernel > 1 and sc.blur_sigma <= 0):
        raise DdadError(f"config keys 'scoring.blur_kernel' ({sc.blur_kernel}) and 'scoring.blur_sigma' "
                        f"({sc.blur_sigma:g}): the kernel must be odd, and wider than 1 only with a sigma > 0")
    if not sc.layers or not set(sc.layers) <= set(_LAYERS) or len(set(sc.layers)) != len(sc.layers):
        raise DdadError(f"config key 'scoring.layers' is {list(sc.layers)}: choose distinct layers of "
                        f"{', '.join(_LAYERS)}")
    if cfg.data.layout not in ("mvtec", "visa"):
        raise DdadError(f"config key 'data.layout' is {cfg.data.layout!r}: choose mvtec or visa")
    if cfg.schema_version != SCHEMA_VERSION:
        raise DdadError(f"config key 'schema_version' is {cfg.schema_version}; this ddad-edge reads {SCHEMA_VERSION}")
    return cfg


def dump_run_config(cfg: RunConfig) -> str:
    """The YAML text of a RunConfig."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


# Step distillation (train/distill.py): the sampler sizes it makes, in the order it makes them. A constant of the
# configuration, not of the procedure, so the pipeline builder (model/) and the export (deploy/) name the
# students that can exist without importing training code.
STUDENT_STEPS = (4, 2, 1)
