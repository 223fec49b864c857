"""Config YAML as a user (or a typo) writes it: unknown keys, wrong types, extreme values, garbage text.

`load_run_config` either returns a config that round-trips through YAML, or raises one DdadError line
naming the key at fault. A config it accepts builds a UNet that runs a forward pass: the value checks are
enough that no stage later crashes on them with a traceback.
"""

from __future__ import annotations

import dataclasses
import time

import pytest
import yaml
from hypothesis import event, given
from hypothesis import strategies as st

from ddad_edge.config import RunConfig
from ddad_edge.config_presets import run_config_for
from ddad_edge.config_yaml import dump_run_config, load_run_config
from ddad_edge.errors import DdadError
from ddad_edge.yaml_strict import to_dict
from tests.cli_helpers import assert_one_line
from tests.hardening.checks import fuzz

SECTIONS = {f.name: f.type for f in dataclasses.fields(RunConfig) if f.name != "schema_version"}
KEYS = [(section, f.name) for section in SECTIONS
        for f in dataclasses.fields(getattr(RunConfig(), section))]

scalars = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.integers(-3, 300)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def load_text(tmp_path, text: str | bytes):
    path = tmp_path / "config.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_run_config(path)


def round_trips(tmp_path, cfg: RunConfig) -> None:
    assert load_text(tmp_path, dump_run_config(cfg)) == cfg


@fuzz(120)
@given(key=st.sampled_from(KEYS), value=values)
def test_one_key_with_any_value(tmp_path, key, value):
    """Any YAML value under any known key: accepted with that value, or one line naming the key."""
    section, name = key
    try:
        cfg = load_text(tmp_path, yaml.safe_dump({section: {name: value}}))
    except DdadError as exc:
        assert_one_line(exc, f"{section}.{name}")
        event("refused")
        return
    event("accepted")
    got = to_dict(getattr(getattr(cfg, section), name))
    assert got == value or (isinstance(value, int) and got == float(value))
    round_trips(tmp_path, cfg)


@fuzz(60)
@given(where=st.sampled_from([None, *SECTIONS]), key=st.text(min_size=1, max_size=10), value=scalars)
def test_unknown_keys_are_named(tmp_path, where, key, value):
    known = set(SECTIONS) | {"schema_version"} if where is None else {f.name for f in dataclasses.fields(
        getattr(RunConfig(), where))}
    if key in known:
        return
    data = {key: value} if where is None else {where: {key: value}}
    with pytest.raises(DdadError) as info:
        load_text(tmp_path, yaml.safe_dump(data))
    message = assert_one_line(info.value, "unknown config key")
    # the name is shown as written, or escaped when it holds characters that would break the line (a long
    # one cut short)
    assert key[:20] in message or repr(key)[1:-1][:20] in message


@fuzz(80)
@given(text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_at_all(tmp_path, text):
    try:
        cfg = load_text(tmp_path, text)
    except DdadError as exc:
        assert_one_line(exc)
        return
    assert isinstance(cfg, RunConfig)
    round_trips(tmp_path, cfg)


@pytest.mark.parametrize("text,key", [
    ("model:\n  image_size: 1000000\n", "model.image_size"),
    ("model:\n  image_size: 100\n", "model.image_size"),  # 6 levels halve only multiples of 32
    ("model:\n  image_size: -256\n", "model.image_size"),
    ("model:\n  attention_resolutions: [0]\n", "model.attention_resolutions"),  # would divide by zero
    ("model:\n  channel_mults: []\n", "model.channel_mults"),
    ("model:\n  norm_groups: 7\n", "model.norm_groups"),
    ("train:\n  lr: .nan\n", "train.lr"),
    ("train:\n  lr: .inf\n", "train.lr"),
    ("train:\n  batch_size: 0\n", "train.batch_size"),
    ("train:\n  seed: 100000000000000000000000000\n", "train.seed"),
    ("train:\n  val_fraction: 1.0\n", "train.val_fraction"),
    ("sampler:\n  t_prime: 5000\n", "sampler.t_prime"),
    ("sampler:\n  skip: 7\n", "sampler.skip"),
    ("diffusion:\n  beta_start: 0.5\n  beta_end: 0.1\n", "diffusion.beta_start"),
    ("scoring:\n  blur_kernel: 32\n", "scoring.blur_kernel"),
    ("scoring:\n  backbone: vgg16\n", "scoring.backbone"),
    ("scoring:\n  layers: [layer4]\n", "scoring.layers"),
    ("data:\n  layout: coco\n", "data.layout"),
    ("schema_version: 99\n", "schema_version"),
])
def test_extreme_values_are_refused_by_name(tmp_path, text, key):
    with pytest.raises(DdadError) as info:
        load_text(tmp_path, text)
    assert_one_line(info.value, key)


def test_yaml_bombs_and_code_tags(tmp_path):
    """Alias expansion, deep nesting and Python tags: refused quickly, no code run."""
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    marker = tmp_path / "ran"
    cases = [laughs, "model:\n  channel_mults: " + "[" * 5000 + "]" * 5000 + "\n",
             f"train: !!python/object/apply:os.system ['touch {marker}']\n"]
    for text in cases:
        start = time.monotonic()
        with pytest.raises(DdadError) as info:
            load_text(tmp_path, text)
        assert_one_line(info.value)
        assert time.monotonic() - start < 5
    assert not marker.exists()


def test_oversized_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(DdadError) as info:
        load_run_config(path)
    assert_one_line(info.value, "MiB")


small_models = st.fixed_dictionaries({
    "image_size": st.sampled_from([8, 12, 16, 24, 32]),
    "base_channels": st.sampled_from([2, 3, 4, 6, 8]),
    "channel_mults": st.lists(st.integers(1, 3), min_size=1, max_size=3),
    "num_res_blocks": st.integers(1, 2),
    "attention_resolutions": st.lists(st.sampled_from([0, 1, 2, 4, 8, 16, 40]), max_size=2),
    "num_heads": st.sampled_from([1, 2, 3]),
    "norm_groups": st.sampled_from([1, 2, 3, 4]),
    "dropout": st.sampled_from([0.0, 0.5]),
})


@fuzz(15)
@given(model=small_models)
def test_an_accepted_model_config_builds_and_runs(tmp_path, model):
    """What the checks let through, the UNet can build and run; what they refuse is one line."""
    import torch

    from ddad_edge.model.unet import UNet

    base = to_dict(run_config_for("tiny", 32))
    base["model"].update(model)
    try:
        cfg = load_text(tmp_path, yaml.safe_dump(base))
    except DdadError as exc:
        assert_one_line(exc, "model.")
        event("refused")
        return
    event("accepted")
    unet = UNet(cfg.model).eval()
    size = cfg.model.image_size
    with torch.no_grad():
        out = unet(torch.zeros(1, 3, size, size), torch.tensor([10]))
    assert out.shape == (1, 3, size, size) and torch.isfinite(out).all()
