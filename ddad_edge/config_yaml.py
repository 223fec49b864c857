"""A RunConfig from and to YAML: a config file, or a few keys of one laid over a preset, checked.

The file is read by the one strict loader (yaml_strict.py), as recipes and build profiles are: an unknown key
or a wrong type is one line naming the file and the key (`train.lrr`); the values then pass
`check_run_config`.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ddad_edge.config import RunConfig
from ddad_edge.config_checks import check_run_config
from ddad_edge.yaml_strict import from_dict, naming_the_file, read_yaml_mapping, to_dict

CONFIG_FILE = "config file"  # how errors name a config YAML


def read_config_yaml(path: Path) -> dict:
    """The mapping in a config YAML file, or one line naming the file and what is wrong with it."""
    return read_yaml_mapping(path, CONFIG_FILE)


def load_run_config(path: Path, base: RunConfig | None = None) -> RunConfig:
    """Read a RunConfig from YAML and check its values (`check_run_config`). Keys the file does not give
    keep their value in `base` (a preset from `run_config_for`), or the dataclass defaults without one."""
    data = read_config_yaml(path)
    with naming_the_file(CONFIG_FILE, path):
        return run_config_from(data, base)


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


def dump_run_config(cfg: RunConfig) -> str:
    """The YAML text of a RunConfig."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
