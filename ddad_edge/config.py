"""Configuration: one frozen dataclass per stage, and the closed sets their fields choose from.

A run's whole configuration (`RunConfig`) is saved inside every checkpoint and bundle and is enough to
rebuild the model. Around these classes, each in a file of its own: DDAD's published presets
(config_presets.py), the checks of values and their relations (config_checks.py), and a RunConfig from and
to YAML (config_yaml.py), read strictly by the one YAML loader (yaml_strict.py): an unknown key or a wrong
type is an error that names the key (for example `train.lrr`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

SCHEMA_VERSION = 1


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
    # Side, in map pixels, of the central square that gives the image score (and, in `evaluate`, the pixel
    # metrics); 0: the whole map. A line keeps 0, so a defect at the edge of the window still rejects the part;
    # DDAD's own evaluation crops the 256-px map to its central 224 px (`evaluate --protocol ddad`).
    crop: int = 0


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


# Step distillation (train/distill.py): the sampler sizes it makes, in the order it makes them. A constant of the
# configuration, not of the procedure, so the pipeline builder (model/) and the export (deploy/) name the
# students that can exist without importing training code.
STUDENT_STEPS = (4, 2, 1)
