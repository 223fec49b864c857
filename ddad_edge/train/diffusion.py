"""Diffusion training of the UNet on nominal images (DDPM ε-prediction).

Loss (DDAD): for x0 from train/good, t ~ U{0..T−1}, ε ~ N(0, I), x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε,
L = mean over the batch of Σ over pixels (ε − ε_θ(x_t, t))². Adam, lr 3e-4, weight decay 0.05.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from ddad_edge.config import RunConfig, dump_run_config, to_dict
from ddad_edge.data.folders import list_train, load_images, split_train_val
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import LAST, config_of, load_checkpoint, save_checkpoint
from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.model.schedule import alphas_cumprod
from ddad_edge.model.unet import UNet
from ddad_edge.progress import Progress


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or when asked), else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DdadError(f"device {requested} was asked for, but torch sees no CUDA GPU here")
    return torch.device(requested)


def diffusion_loss(unet: UNet, x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """DDAD's ε loss for a batch x0 (B, C, H, W) in [−1, 1]: mean over the batch of the per-image sum of squares."""
    b = x0.shape[0]
    t = torch.randint(0, abar.shape[0], (b,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    a = abar.to(x0.device)[t].float().view(b, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    pred = unet(x_t, t.float())
    return (eps - pred).square().sum(dim=(1, 2, 3)).mean()


@dataclass(frozen=True)
class TrainResult:
    checkpoint: Path
    steps: int
    epochs: float
    final_loss: float
    seconds: float


def prepare_run(cfg: RunConfig, out: Path) -> tuple[list[Path], list[Path]]:
    """Write config.yaml and the train/validation split of a new run; returns (train, val) paths."""
    paths = list_train(cfg.data.root, cfg.data.category)
    train, val = split_train_val(paths, cfg.train.val_fraction, cfg.train.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_run_config(cfg))
    (out / "split.yaml").write_text(yaml.safe_dump({"train": [str(p) for p in train],
                                                    "val": [str(p) for p in val]}))
    return train, val


def train_diffusion(cfg: RunConfig, out: Path, resume: bool = False, device: str = "auto",
                    show_progress: bool = True) -> TrainResult:
    """Train (or resume) the UNet of `cfg` on the run's training images; checkpoints go to out/checkpoints.

    Stops at `train.epochs`, `train.max_steps` or `train.max_minutes`, whichever comes first, and always
    leaves checkpoints/last.pt with the full config inside.
    """
    out = Path(out)
    dev = pick_device(device)
    last = out / "checkpoints" / LAST
    state = None
    if resume and last.is_file():
        state = load_checkpoint(last)
        saved = config_of(state, last)
        if saved.model != cfg.model:
            raise DdadError(f"cannot resume {out}: its checkpoint is preset {saved.model.preset} at "
                            f"{saved.model.image_size} px, this training asks for {cfg.model.preset} at "
                            f"{cfg.model.image_size} px")
        cfg = saved
        split = yaml.safe_load((out / "split.yaml").read_text())
        train_paths = [Path(p) for p in split["train"]]
    else:
        train_paths, _ = prepare_run(cfg, out)

    torch.manual_seed(cfg.train.seed)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    images = frames_to_tensor(load_images(train_paths, cfg.model.image_size))  # (N, 3, S, S) in [−1, 1]
    unet = UNet(cfg.model).to(dev)
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    ema = copy.deepcopy(unet).eval() if cfg.train.ema else None
    step = 0
    if state is not None:
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        gen.manual_seed(cfg.train.seed + step)
    abar = alphas_cumprod(cfg.diffusion)
    n = images.shape[0]
    batch = min(cfg.train.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    total = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    deadline = time.monotonic() + cfg.train.max_minutes * 60 if cfg.train.max_minutes else math.inf
    amp = dev.type == "cuda"

    def save(loss_value: float) -> Path:
        payload = {
            "kind": "diffusion", "config": to_dict(cfg), "unet": unet.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
            "step": step, "loss": loss_value,
        }
        if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
            save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", payload)
        return save_checkpoint(last, payload)

    started = time.monotonic()
    loss_value = float("nan")
    unet.train()
    with Progress("train", total=total, enabled=show_progress, initial=step) as bar:
        while step < total and time.monotonic() < deadline:
            order = torch.randperm(n, generator=gen)
            for i in range(steps_per_epoch):
                if step >= total or time.monotonic() >= deadline:
                    break
                x0 = images[order[i * batch:(i + 1) * batch]]
                if cfg.train.augment:
                    flip = torch.rand(x0.shape[0], generator=gen) < 0.5
                    x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
                x0 = x0.to(dev, non_blocking=True)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = diffusion_loss(unet, x0, abar, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if ema is not None:
                    with torch.no_grad():
                        for pe, p in zip(ema.parameters(), unet.parameters()):
                            pe.lerp_(p, 1 - cfg.train.ema_decay)
                step += 1
                loss_value = float(loss.detach())
                bar.update(step, loss=loss_value)
                if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                    save(loss_value)
    unet.eval()
    path = save(loss_value)
    return TrainResult(path, step, step / steps_per_epoch, loss_value, time.monotonic() - started)


def load_val_images(cfg: RunConfig, val_files: list[str]) -> np.ndarray:
    """The held-out nominal images of a run, (N, S, S, 3) uint8."""
    if not val_files:
        raise DdadError("this run holds out no validation images (train.val_fraction is 0): "
                        "train again with a validation fraction > 0")
    return load_images([Path(p) for p in val_files], cfg.model.image_size)
