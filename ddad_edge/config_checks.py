"""The values a run can use: a range per numeric config key, and the relations between keys.

Outside them a stage would crash deep in torch, run out of memory, or train nothing; `check_run_config`
refuses such a config in one line naming the key, and the command-line options that set a key are held to
the same range (`check_option_range`).
"""

from __future__ import annotations

from ddad_edge.config import BACKBONES, SCHEMA_VERSION, RunConfig
from ddad_edge.errors import DdadError

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
    "scoring.blur_kernel": (1, 255), "scoring.crop": (0, 2048),
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
    if sc.crop > cfg.model.image_size:
        raise DdadError(f"config key 'scoring.crop' is {sc.crop}: the central square cannot be larger than the "
                        f"{cfg.model.image_size}-px map (model.image_size); 0 scores the whole map")
    if not sc.layers or not set(sc.layers) <= set(_LAYERS) or len(set(sc.layers)) != len(sc.layers):
        raise DdadError(f"config key 'scoring.layers' is {list(sc.layers)}: choose distinct layers of "
                        f"{', '.join(_LAYERS)}")
    if cfg.data.layout not in ("mvtec", "visa"):
        raise DdadError(f"config key 'data.layout' is {cfg.data.layout!r}: choose mvtec or visa")
    if cfg.schema_version != SCHEMA_VERSION:
        raise DdadError(f"config key 'schema_version' is {cfg.schema_version}; this ddad-edge reads {SCHEMA_VERSION}")
    return cfg
