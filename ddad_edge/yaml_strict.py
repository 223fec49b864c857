"""YAML as every file of ddad-edge is read: safe (no Python tags) and with each key at most once.

PyYAML's safe_load lets a repeated key silently replace the earlier one, so a config or a manifest with
`image: 0.2` and, further down, `image: 999` means the second without a word. Every YAML the tool reads
(configs, run split files, manifests, recipes, build profiles) goes through `load_yaml`, which refuses a
repeated key as a `yaml.YAMLError` whose first line names the key and both lines, so each caller's
existing "is not valid YAML" message carries it.
"""

from __future__ import annotations

from typing import Any

import yaml


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
