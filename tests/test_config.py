"""Config dataclasses: strict YAML, presets of DDAD's published settings."""

import dataclasses

import pytest

from ddad_edge.config import RunConfig, with_absolute_paths
from ddad_edge.config_presets import CATEGORY_PRESETS, model_preset, run_config_for
from ddad_edge.config_yaml import dump_run_config, load_run_config
from ddad_edge.errors import DdadError
from ddad_edge.yaml_strict import from_dict, to_dict


def test_round_trip_through_yaml(tmp_path):
    cfg = run_config_for("tiny", 32, "bottle")
    path = tmp_path / "c.yaml"
    path.write_text(dump_run_config(cfg))
    assert load_run_config(path) == cfg


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(DdadError, match=r"unknown config key 'train\.lrr'"):
        load_run_config(path)


@pytest.mark.parametrize("text,key", [("train:\n  lr: fast\n", "train.lr"),
                                      ("model:\n  image_size: 1.5\n", "model.image_size"),
                                      ("train:\n  ema: 3\n", "train.ema"),
                                      ("scoring:\n  mode: magic\n", "scoring.mode"),
                                      ("model: 4\n", "model")])
def test_wrong_types_are_named(tmp_path, text, key):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(DdadError, match=key.replace(".", r"\.")):
        load_run_config(path)


def test_ddad_presets():
    assert len([p for p in CATEGORY_PRESETS.values() if p.dataset == "mvtec"]) == 15
    assert len([p for p in CATEGORY_PRESETS.values() if p.dataset == "visa"]) == 12
    cfg = run_config_for("ddad-s", 256, "leather")
    assert (cfg.sampler.w, cfg.train.epochs, cfg.adapt.epochs, cfg.scoring.v, cfg.adapt.lam) == (11, 2000, 8, 1.0, 0.1)
    pcb1 = run_config_for("ddad-s", 256, "pcb1")
    assert (pcb1.sampler.w, pcb1.scoring.v, pcb1.adapt.lam, pcb1.train.batch_size) == (9, 7.0, 0.01, 16)
    assert run_config_for("ddad-s", 256, "cashew").scoring.v == 1.5
    ds = model_preset("ddad-s", 256)
    assert (ds.base_channels, ds.num_heads, ds.dropout, ds.channel_mults) == (32, 2, 0.3, (1, 1, 2, 2, 4, 4))
    assert model_preset("ddad", 128).channel_mults == (1, 1, 2, 3, 4)
    with pytest.raises(DdadError, match="unknown model preset"):
        model_preset("huge")
    with pytest.raises(DdadError, match="image size 100"):
        model_preset("ddad-s", 100)


def test_from_dict_fills_defaults():
    cfg = from_dict(RunConfig, {"sampler": {"w": 5}})
    assert cfg.sampler.w == 5.0 and cfg.sampler.t_prime == 250
    assert dataclasses.asdict(cfg.model) == dataclasses.asdict(RunConfig().model)
    assert to_dict(cfg)["scoring"]["mode"] == "fused"


@pytest.mark.parametrize("t_max", [250, 100, 1001])
def test_t_max_must_cover_the_reconstructions_start(t_max):
    from ddad_edge.config_checks import check_run_config

    cfg = run_config_for("tiny", 32, "bottle")  # T' = 250 of 1000 steps
    with pytest.raises(DdadError, match=r"train\.t_max"):
        check_run_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, t_max=t_max)))
    check_run_config(dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, t_max=251)))


def test_a_partial_config_file_overlays_the_preset_it_names_or_is_given(tmp_path, synth_root):
    from ddad_edge.cli import main

    partial = tmp_path / "partial.yaml"
    partial.write_text("train:\n  t_max: 400\n")
    base = run_config_for("tiny", 32, "widget")
    cfg = load_run_config(partial, base=base)
    assert cfg.model == base.model and cfg.train.t_max == 400 and cfg.train.lr == base.train.lr
    # through `train`: --preset tiny with a one-key file trains the tiny model, not DDAD-S defaults
    assert main(["train", "--data", str(synth_root), "--category", "widget", "--preset", "tiny", "--image-size",
                 "32", "--config", str(partial), "--epochs", "0", "--out", str(tmp_path / "a")]) == 0
    saved = load_run_config(tmp_path / "a" / "config.yaml")
    assert saved.model.preset == "tiny" and saved.model.image_size == 32 and saved.train.t_max == 400
    # the file's own model.preset serves when --preset is not given
    named = tmp_path / "named.yaml"
    named.write_text("model:\n  preset: tiny\n  image_size: 32\n")
    assert main(["train", "--data", str(synth_root), "--category", "widget", "--config", str(named),
                 "--epochs", "0", "--out", str(tmp_path / "b")]) == 0
    saved = load_run_config(tmp_path / "b" / "config.yaml")
    assert saved.model == run_config_for("tiny", 32).model and saved.train.t_max == 300


@pytest.mark.parametrize("weights, expected", [("w/wrn50.pth", "{cwd}/w/wrn50.pth"), ("none", "none"), ("", "")])
def test_a_new_run_keeps_absolute_paths_of_its_data_and_weights(tmp_path, monkeypatch, weights, expected):
    monkeypatch.chdir(tmp_path)
    cfg = run_config_for("tiny", 32, "widget", "data")
    cfg = dataclasses.replace(cfg, scoring=dataclasses.replace(cfg.scoring, backbone_weights=weights))
    done = with_absolute_paths(cfg)
    assert done.data.root == str(tmp_path / "data")
    assert done.scoring.backbone_weights == expected.format(cwd=tmp_path)
    assert dataclasses.replace(done, data=cfg.data, scoring=cfg.scoring) == cfg  # nothing else changes
