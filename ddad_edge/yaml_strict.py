"""YAML as every file of ddad-edge is read: safe, each key at most once, into frozen dataclasses by name.

PyYAML's safe_load lets a repeated key silently replace the earlier one, so a config or a manifest with
`image: 0.2` and, further down, `image: 999` means the second without a word. Every YAML the tool reads
(configs, run split files, manifests, recipes, build profiles) goes through `load_yaml`, which refuses a
repeated key as a `yaml.YAMLError` whose first line names the key and both lines, so each caller's
existing "is not valid YAML" message carries it.

Configs, precision recipes and TensorRT build profiles are files a user writes, and all three are read the
same way: `read_yaml_mapping` (a page of YAML text holding a mapping; anything else is one line naming the
file), `from_dict` (unknown keys and wrong types refused by the key's dotted name) and `naming_the_file`
(every such error leads with the file it came from).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from ddad_edge.errors import DdadError

YAML_MAX_BYTES = 1 << 20  # a config, recipe or profile is a page of YAML; anything larger is not one
INT_LIMIT = 1 << 62  # integers beyond this overflow torch and numpy (int64) further down


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a mapping key given twice."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # '<<' merges are PyYAML's own business
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: SafeLoader says so itself
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:80]!r} appears twice (lines {first} and {line}): keep one",
                    key_node.start_mark)
            seen[key] = line
        return super().construct_mapping(node, deep)


def load_yaml(text: str | bytes) -> Any:
    """The document in `text`, as yaml.safe_load reads it, but a repeated mapping key is a yaml.YAMLError."""
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_mapping(path: Path, kind: str) -> dict:
    """The mapping in YAML file `path`, or one line naming the `kind` of file ("config file", "recipe",
    "build profile"), the file and what is wrong with it. An empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise DdadError(f"{kind} not found: {path}")
    size = path.stat().st_size
    if size > YAML_MAX_BYTES:
        noun = kind.removesuffix(" file")
        raise DdadError(f"{kind} {path} is {size / 2**20:.1f} MiB; a {noun} is at most "
                        f"{YAML_MAX_BYTES >> 20} MiB of YAML: is it the right file?")
    try:
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DdadError(f"{kind} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise DdadError(f"{kind} {path} is not a YAML text file ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DdadError(f"config section 'top level' must be a mapping ({kind} {path})")
    return data


@contextmanager
def naming_the_file(kind: str, path: Path) -> Iterator[None]:
    """Lead every DdadError raised inside with the file it is about: `recipe calibration/int8.yaml: ...`."""
    try:
        yield
    except DdadError as exc:
        raise DdadError(f"{kind} {path}: {exc}") from None


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
