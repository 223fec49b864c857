"""The RunConfig of a training run from what its command was given: a new run (preset, config file and
options), a resumed one (its saved config, which other options may not change), and the options that
override a stage's keys. The command line only parses and prints; the rules live here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ddad_edge.config import RunConfig, with_absolute_paths
from ddad_edge.config_presets import MODEL_PRESETS, run_config_for
from ddad_edge.config_yaml import load_run_config, read_config_yaml, run_config_from
from ddad_edge.errors import DdadError


def with_overrides(cfg: RunConfig, section: str, **values: Any) -> RunConfig:
    """`cfg` with the keys of one stage (`section`: train, scoring, sampler, adapt, ...) set to the values
    given; a None value is an option left out and keeps the config's."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return cfg
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **given)})


def new_run_config(data: Path, category: str, preset: str | None, image_size: int | None, config: Path | None,
                   batch_size: int | None, seed: int | None, ema: bool | None, backbone: str | None,
                   backbone_weights: str | None, w: float | None) -> RunConfig:
    """The config of a new run: the preset (or a config file over it), then the options given."""
    if config is not None:
        # The file overlays a preset: --preset, else the file's own model.preset, else ddad-s; keys the
        # file leaves out keep the preset's values (a one-key file must not fall back to DDAD-S defaults).
        file_keys = read_config_yaml(config)
        given = file_keys.get("model")
        named = given.get("preset") if isinstance(given, dict) else None
        base = run_config_for(preset or (named if named in MODEL_PRESETS else "ddad-s"), image_size,
                              category, str(data))
        cfg = run_config_from(file_keys, base=base)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, root=str(data), category=category))
    else:
        cfg = run_config_for(preset or "ddad-s", image_size, category, str(data))
    cfg = with_overrides(cfg, "train", batch_size=batch_size, seed=seed, ema=ema)
    cfg = with_overrides(cfg, "scoring", backbone=backbone, backbone_weights=backbone_weights)
    return with_overrides(cfg, "sampler", w=w)


def resumed_run_config(out: Path, data: Path, category: str, **given: Any) -> RunConfig:
    """The saved config of the run in `out`, refusing (one line) any option in `given` that asks for
    something else: a resumed run continues with its own settings, and only its stop limits change."""
    if not (out / "config.yaml").is_file():
        raise DdadError(f"nothing to resume in {out}: it has no config.yaml (train it without --resume)")
    cfg = load_run_config(out / "config.yaml")
    _refuse_resume_changes(cfg, out, data=data, category=category, **given)
    return cfg


def refuse_existing_run(out: Path) -> None:
    """One line when a new training would write over the run in `out` (and leave its backbone.pt, students/
    and distill/ behind, which would then belong to another model)."""
    found = [n for n in ("config.yaml", "checkpoints") if (out / n).exists()]
    if found:
        raise DdadError(f"{out} already holds a run ({', '.join(found)}): continue it with --resume, or choose "
                        f"another --out (or remove the folder)")


def _same_dataset(cfg: RunConfig, data: Path, category: str) -> bool:
    """Whether --data (and --category) name the images of the run `cfg` (compared as resolved paths)."""
    def resolved(p: Path) -> Path:
        return p.expanduser().resolve()

    run_root = Path(cfg.data.root)
    run_dir = resolved(run_root / cfg.data.category if cfg.data.category else run_root)
    given_dir = resolved(data / category if category else data)
    return given_dir == run_dir or (not category and resolved(data) == resolved(run_root))


def _refuse_resume_changes(cfg: RunConfig, out: Path, data: Path, category: str, **given: Any) -> None:
    """One line naming the options of `train --resume` that ask for something else than the run's saved config."""
    def weights_of(value: str) -> str:
        probe = dataclasses.replace(cfg, scoring=dataclasses.replace(cfg.scoring, backbone_weights=value))
        return with_absolute_paths(probe).scoring.backbone_weights

    saved = {"preset": cfg.model.preset, "image_size": cfg.model.image_size, "batch_size": cfg.train.batch_size,
             "seed": cfg.train.seed, "ema": cfg.train.ema, "backbone": cfg.scoring.backbone,
             "backbone_weights": weights_of(cfg.scoring.backbone_weights), "w": cfg.sampler.w}
    named = []
    if not _same_dataset(cfg, data, category):
        asked = f"--data {data}" + (f" --category {category}" if category else "")
        run_dir = Path(cfg.data.root) / cfg.data.category if cfg.data.category else Path(cfg.data.root)
        named.append(f"{asked} (the run's: {run_dir})")
    for key, value in given.items():
        if value is None:
            continue
        option = "--" + key.replace("_", "-")
        if key == "config":
            named.append(f"--config {value} (the run keeps its config.yaml)")
        elif key == "ema":
            if value != saved["ema"]:
                named.append(f"--{'' if value else 'no-'}ema (the run's: {'--ema' if saved['ema'] else '--no-ema'})")
        elif (weights_of(value) if key == "backbone_weights" else value) != saved[key]:
            shown = saved[key] if saved[key] != "" else '"" (torchvision\'s)'
            named.append(f"{option} {value} (the run's: {shown})")
    if named:
        raise DdadError(f"cannot resume {out} with {', '.join(named)}: a resumed run continues with its saved "
                        f"settings and only --max-steps, --max-minutes and --epochs change it; leave "
                        f"{'these' if len(named) > 1 else 'it'} out, or train a new run in another --out")
