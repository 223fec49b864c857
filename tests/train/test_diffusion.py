"""Diffusion training: the loss, checkpoints with the config inside, resume, the validation split."""

import dataclasses
import shutil

import torch
import yaml

from ddad_edge.config import DiffusionConfig, RunConfig
from ddad_edge.config_presets import model_preset, run_config_for
from ddad_edge.model.checkpoint import load_checkpoint, open_run
from ddad_edge.model.schedule import alphas_cumprod
from ddad_edge.model.unet import UNet
from ddad_edge.train.diffusion import diffusion_loss, train_diffusion
from ddad_edge.yaml_strict import from_dict


def test_t_max_trains_only_the_noise_levels_below_it():
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, t):
            seen.append(t.clone())
            return torch.zeros_like(x)

    abar = alphas_cumprod(DiffusionConfig())
    x0 = torch.zeros(64, 3, 8, 8)
    diffusion_loss(Recorder(), x0, abar, torch.Generator().manual_seed(0), t_max=300)
    diffusion_loss(Recorder(), x0, abar, torch.Generator().manual_seed(0))
    assert seen[0].max() < 300 and seen[0].min() >= 0
    assert seen[1].max() >= 300  # without t_max: the whole schedule (64 draws, P(all < 300) ~ 1e-34)
    assert run_config_for("tiny", None, "widget").train.t_max == 300  # the tiny preset uses it; DDAD's do not
    assert run_config_for("ddad-s", None, "bottle").train.t_max == 0


def test_loss_is_ddads_sum_over_pixels_mean_over_batch():
    torch.manual_seed(0)
    unet = UNet(model_preset("tiny", 32))
    x0 = torch.rand(3, 3, 32, 32) * 2 - 1
    abar = alphas_cumprod(DiffusionConfig())
    got = diffusion_loss(unet, x0, abar, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    t = torch.randint(0, 1000, (3,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a = abar[t].float().view(3, 1, 1, 1)
    pred = unet(a.sqrt() * x0 + (1 - a).sqrt() * eps, t.float())
    want = sum(((eps[i] - pred[i]) ** 2).sum() for i in range(3)) / 3
    torch.testing.assert_close(got, want)


def test_training_lowers_the_loss_on_its_images():
    torch.manual_seed(0)
    cfg = model_preset("tiny", 32)
    unet = UNet(cfg)
    x0 = torch.rand(4, 3, 32, 32) * 2 - 1
    abar = alphas_cumprod(DiffusionConfig())

    def held_loss():
        with torch.no_grad():
            return float(sum(diffusion_loss(unet, x0, abar, torch.Generator().manual_seed(s)) for s in range(4)))

    before = held_loss()
    opt = torch.optim.Adam(unet.parameters(), lr=1e-3)
    for step in range(25):
        loss = diffusion_loss(unet, x0, abar, torch.Generator().manual_seed(100 + step))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_loss() < 0.7 * before


def test_run_folder_checkpoint_and_split(tiny_run):
    run = open_run(tiny_run)
    payload = load_checkpoint(run.last_checkpoint)
    assert payload["step"] == 40
    saved = from_dict(RunConfig, payload["config"])
    assert saved == run.cfg and saved.model.preset == "tiny" and saved.model.image_size == 32
    assert (tiny_run / "checkpoints" / "step_0000020.pt").is_file()
    split = yaml.safe_load((tiny_run / "split.yaml").read_text())
    assert len(split["val"]) == 8 and len(split["train"]) == 32
    assert not set(split["val"]) & set(split["train"])


def test_resume_continues_from_the_last_step(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = open_run(run).cfg
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=44))
    result = train_diffusion(cfg, run, resume=True, show_progress=False)
    assert result.steps == 44
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 44


def test_max_minutes_stops_training(synth_root, tmp_path):
    cfg = run_config_for("tiny", 32, "widget", str(synth_root))
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_minutes=1e-4, batch_size=4))
    result = train_diffusion(cfg, tmp_path / "r", show_progress=False)
    assert result.steps <= 1
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()
