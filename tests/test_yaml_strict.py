"""A key given twice in any YAML file the tool reads is an error naming the key, never a silent last-wins.

PyYAML's safe_load keeps the later of two equal keys: a manifest edited to hold `image: 999` below its
`image: 0.2` would pass every part. Each reader is tried with a file that is valid but for one repeated key.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from ddad_edge.bundle import MANIFEST_NAME, read_bundle
from ddad_edge.config_yaml import read_config_yaml
from ddad_edge.deploy.recipes import load_recipe
from ddad_edge.deploy.tensorrt_profile import load_build_profile
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import read_split
from ddad_edge.yaml_strict import load_yaml
from tests.bundle_factory import make_toy_bundle
from tests.cli_helpers import assert_one_line

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ddad_edge"


def test_load_yaml_reads_what_safe_load_reads_and_refuses_repeated_keys():
    text = "a: 1\nb: {c: [1, 2], d: null}\ne: 2.5\n"
    assert load_yaml(text) == yaml.safe_load(text)
    for doubled in ("a: 1\na: 2\n", "s:\n  k: 1\n  k: 2\n", "m: {x: 1, x: 2}\n", "l:\n- {y: 1, y: 1}\n"):
        with pytest.raises(yaml.YAMLError) as info:
            load_yaml(doubled)
        assert "appears twice" in str(info.value).splitlines()[0]
    with pytest.raises(yaml.YAMLError):
        load_yaml("x: !!python/object/apply:os.system [true]\n")


def doubled(text: str, key: str, value: str) -> str:
    """`text` with a second line `key: value` right after the line that starts with `key:`."""
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.lstrip().startswith(f"{key}:"))
    indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
    return "\n".join(lines[: i + 1] + [f"{indent}{key}: {value}"] + lines[i + 1:]) + "\n"


def test_a_manifest_with_a_repeated_threshold_is_refused(tmp_path):
    bundle = make_toy_bundle(tmp_path / "b")
    path = bundle.path / MANIFEST_NAME
    path.write_text(doubled(path.read_text(), "score", "999"))
    with pytest.raises(DdadError) as info:
        read_bundle(bundle.path)
    assert_one_line(info.value, "'score' appears twice", MANIFEST_NAME)


def test_a_config_with_a_repeated_key_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("train:\n  lr: 0.001\n  batch_size: 4\n  lr: 10\n")
    with pytest.raises(DdadError) as info:
        read_config_yaml(path)
    assert_one_line(info.value, "'lr' appears twice", "lines 2 and 4")


def test_a_split_file_with_a_repeated_list_is_refused(tmp_path):
    path = tmp_path / "split.yaml"
    path.write_text("train: [a.png]\nval: [b.png]\ntrain: [c.png]\n")
    with pytest.raises(DdadError) as info:
        read_split(path)
    assert_one_line(info.value, "'train' appears twice")


def test_a_recipe_and_a_build_profile_with_a_repeated_key_are_refused(tmp_path):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(doubled((ROOT / "calibration" / "fp32.yaml").read_text(), "precision", "int8"))
    with pytest.raises(DdadError) as info:
        load_recipe(recipe)
    assert_one_line(info.value, "'precision' appears twice")
    profile = tmp_path / "board.yaml"
    profile.write_text(doubled((ROOT / "export" / "x86-gpu.yaml").read_text(), "max_batch", "64"))
    with pytest.raises(DdadError) as info:
        load_build_profile(str(profile))
    assert_one_line(info.value, "'max_batch' appears twice")
    shutil.copy(ROOT / "export" / "x86-gpu.yaml", tmp_path / "ok.yaml")
    assert load_build_profile(str(tmp_path / "ok.yaml")).max_batch == 8  # the shipped file itself loads


def test_no_module_reads_yaml_around_the_strict_loader():
    offenders = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                 if "yaml.safe_load(" in p.read_text(encoding="utf-8")]
    assert offenders == []
