"""Diffusion training of the UNet on nominal images (DDPM ε-prediction).

Loss (DDAD): for x0 from train/good, t ~ U{0..T−1}, ε ~ N(0, I), x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε,
L = mean over the batch of Σ over pixels (ε − ε_θ(x_t, t))². Adam, lr 3e-4, weight decay 0.05.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import yaml

from ddad_edge.config import RunConfig, with_absolute_paths
from ddad_edge.config_yaml import dump_run_config
from ddad_edge.data.folders import list_train, load_images, split_train_val
from ddad_edge.errors import DdadError
from ddad_edge.model.checkpoint import LAST, config_of, load_checkpoint, save_checkpoint
from ddad_edge.model.device import pick_device
from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.model.schedule import alphas_cumprod
from ddad_edge.model.unet import UNet
from ddad_edge.progress import Progress
from ddad_edge.train.distributed import DistEnv, Ranks, detect_env, device_for, process_group, rank_seed, shard_epoch
from ddad_edge.yaml_strict import load_yaml, to_dict


def diffusion_loss(unet: UNet, x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator | None = None,
                   t_max: int = 0) -> torch.Tensor:
    """DDAD's ε loss for a batch x0 (B, C, H, W) in [−1, 1]: mean over the batch of the per-image sum of squares.

    t is drawn uniformly from [0, t_max) (0: the whole schedule).
    """
    b = x0.shape[0]
    high = t_max if 0 < t_max <= abar.shape[0] else abar.shape[0]
    t = torch.randint(0, high, (b,), generator=generator).to(x0.device)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)
    a = abar.to(x0.device)[t].float().view(b, 1, 1, 1)
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    pred = unet(x_t, t.float())
    return (eps - pred).square().sum(dim=(1, 2, 3)).mean()


@dataclass(frozen=True)
class TrainResult:
    """What a training call did. `steps` counts optimiser steps (each one of batch_size × world_size
    images); `seconds` is this call's time, `total_seconds` the run's over all resumptions; `finished`:
    the run reached its planned steps (not stopped by max_minutes)."""

    checkpoint: Path
    steps: int
    epochs: float
    final_loss: float
    seconds: float
    finished: bool = False
    total_seconds: float = 0.0
    world_size: int = 1
    rank: int = 0
    first_step: int = 0  # the step this call started from (0 for a new run, the checkpoint's on resume)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by SIGINT (Ctrl-C) or SIGTERM. `checkpoint` holds step `step`; it is None when the
    stop came in the middle of a weight update, which cannot be saved (the last checkpoint stays as it was).

    A KeyboardInterrupt, so code that handles Ctrl-C handles this as well."""

    def __init__(self, signum: int, step: int, checkpoint: Path | None, rank: int = 0) -> None:
        super().__init__(f"interrupted at step {step}")
        self.signum, self.step, self.checkpoint, self.rank = signum, step, checkpoint, rank

    @property
    def exit_code(self) -> int:
        """The shell's status of a process ended by the signal: 130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class _StopSignals:
    """Inside the block, SIGINT and SIGTERM ask the training loop to stop at the next step boundary instead of
    raising wherever they land (inside an optimiser update the weights would be neither step's).

    Handlers can only be installed from the main thread; elsewhere the block changes nothing. With
    `force_on_repeat` (one process), a second SIGINT outside a weight update raises KeyboardInterrupt at once,
    for a user who will not wait for a long step. Under torchrun it does not: the agent passes the user's
    Ctrl-C on to the workers, which then see it twice."""

    def __init__(self, force_on_repeat: bool) -> None:
        self.signum: int | None = None
        self.updating = False  # set by the loop around the optimiser update
        self._force = force_on_repeat
        self._old: dict[int, object] = {}

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None and self._force and signum == signal.SIGINT and not self.updating:
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum

    def __exit__(self, *exc: object) -> None:
        for s, old in self._old.items():
            signal.signal(s, old if old is not None else signal.SIG_DFL)


@dataclass(frozen=True)
class Fitted:
    """A finished training call and the modules this process holds afterwards (the bare UNet, not the
    DistributedDataParallel wrapper; identical on every rank)."""

    result: TrainResult
    unet: UNet
    ema: UNet | None


def plan_split(cfg: RunConfig) -> tuple[list[Path], list[Path]]:
    """The train/validation split of a new run, (train, val) paths; deterministic for the config."""
    paths = list_train(cfg.data.root, cfg.data.category)
    return split_train_val(paths, cfg.train.val_fraction, cfg.train.seed)


def prepare_run(cfg: RunConfig, out: Path) -> tuple[list[Path], list[Path]]:
    """Write config.yaml and the train/validation split of a new run; returns (train, val) paths."""
    train, val = plan_split(cfg)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(dump_run_config(cfg))
    (out / "split.yaml").write_text(yaml.safe_dump({"train": [str(p) for p in train],
                                                    "val": [str(p) for p in val]}))
    return train, val


def continue_config(saved: RunConfig, requested: RunConfig) -> RunConfig:
    """The config of a resumed run: the saved one, with the stop limits (epochs, max_steps, max_minutes,
    checkpoint_every) of the new request, so a run can be extended or trained in time slices."""
    r = requested.train
    train = dataclasses.replace(saved.train, epochs=r.epochs, max_steps=r.max_steps, max_minutes=r.max_minutes,
                                checkpoint_every=r.checkpoint_every)
    return dataclasses.replace(saved, train=train)


def model_difference(saved: RunConfig, asked: RunConfig) -> str:
    """The model keys in which two configs differ, as 'model.KEY A, this training asks for B' phrases."""
    diffs = [(f.name, getattr(saved.model, f.name), getattr(asked.model, f.name))
             for f in dataclasses.fields(saved.model)
             if getattr(saved.model, f.name) != getattr(asked.model, f.name)]
    def shown(v: object) -> object:
        return list(v) if isinstance(v, tuple) else v
    return "; ".join(f"model.{k} {shown(a)}, this training asks for {shown(b)}" for k, a, b in diffs)


def train_diffusion(cfg: RunConfig, out: Path, resume: bool = False, device: str = "auto",
                    show_progress: bool = True) -> TrainResult:
    """Train (or resume) the UNet of `cfg` on the run's training images; checkpoints go to out/checkpoints.

    Stops at `train.epochs`, `train.max_steps` or `train.max_minutes`, whichever comes first, and always
    leaves checkpoints/last.pt with the full config inside. Under torchrun (WORLD_SIZE > 1) every process
    calls this with the same arguments: `train.batch_size` is per process, rank 0 alone writes files and
    shows progress, and every rank returns once last.pt is written.

    SIGINT (Ctrl-C) or SIGTERM stops the training at the end of the step under way: last.pt is written at
    the step reached (by rank 0) and `TrainingInterrupted` is raised (on every rank); `resume=True`
    continues from there.
    """
    return fit_diffusion(cfg, out, resume, device, show_progress).result


def fit_diffusion(cfg: RunConfig, out: Path, resume: bool = False, device: str = "auto",
                  show_progress: bool = True) -> Fitted:
    """`train_diffusion`, returning the trained modules of this process as well."""
    env = detect_env()
    dev = device_for(env, device) if env.distributed else pick_device(device)
    with process_group(env, dev) as ranks:
        return _fit(cfg, Path(out), resume, dev, show_progress and env.is_main, ranks)


def _single_batches(n: int, batch: int, steps_per_epoch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """One process: a fresh permutation from the noise generator at each epoch (drawn lazily, so the
    generator is used in the same order as when the loop drew it inline)."""
    while True:
        order = torch.randperm(n, generator=gen)
        for i in range(steps_per_epoch):
            yield order[i * batch:(i + 1) * batch]


def _sharded_batches(n: int, batch: int, steps_per_epoch: int, seed: int, env: DistEnv, step: int
                     ) -> Iterator[torch.Tensor]:
    """Under torchrun: this rank's shard of each epoch's shared permutation, from step `step` on."""
    epoch, first = divmod(step, steps_per_epoch)
    while True:
        mine = shard_epoch(n, env.world_size, env.rank, seed, epoch)
        for i in range(first, steps_per_epoch):
            yield mine[i * batch:(i + 1) * batch]
        epoch, first = epoch + 1, 0


def _fit(cfg: RunConfig, out: Path, resume: bool, dev: torch.device, show_progress: bool, ranks: Ranks
         ) -> Fitted:
    env = ranks.env
    last = out / "checkpoints" / LAST
    state = None
    if resume and last.is_file():
        state = load_checkpoint(last)
        saved = config_of(state, last)
        if saved.model != cfg.model:
            raise DdadError(f"cannot resume {out}: its checkpoint has {model_difference(saved, cfg)}; a resumed "
                            "run keeps its model: resume without --preset / --image-size, or train a new run "
                            "in another --out")
        cfg = continue_config(saved, cfg)
        split = load_yaml((out / "split.yaml").read_text())
        train_paths = [Path(p) for p in split["train"]]
        if ranks.is_main:
            (out / "config.yaml").write_text(dump_run_config(cfg))  # the limits this session trains to
    else:
        cfg = with_absolute_paths(cfg)  # the run folder must work from any directory
        train_paths, _ = prepare_run(cfg, out) if ranks.is_main else plan_split(cfg)

    torch.manual_seed(cfg.train.seed)
    gen = torch.Generator().manual_seed(cfg.train.seed)
    images = frames_to_tensor(load_images(train_paths, cfg.model.image_size))  # (N, 3, S, S) in [−1, 1]
    unet = UNet(cfg.model).to(dev)  # the same initial weights on every rank (same seed)
    opt = torch.optim.Adam(unet.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    ema = copy.deepcopy(unet).eval() if cfg.train.ema else None
    step = 0
    earlier_s = 0.0
    loss_value = float("nan")
    if state is not None:
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        step = int(state["step"])
        earlier_s = float(state.get("seconds", 0.0))
        loss_value = float(state.get("loss", loss_value))
        gen.manual_seed(cfg.train.seed + step)
    model = ranks.wrap(unet)
    abar = alphas_cumprod(cfg.diffusion)
    n = images.shape[0]
    shard = math.ceil(n / env.world_size)  # images per rank and epoch
    batch = min(cfg.train.batch_size, shard)
    steps_per_epoch = max(1, shard // batch)
    total = cfg.train.epochs * steps_per_epoch
    if cfg.train.max_steps:
        total = min(total, cfg.train.max_steps)
    if ranks.distributed:
        gen.manual_seed(rank_seed(cfg.train.seed, env.rank, step))
        torch.manual_seed(rank_seed(cfg.train.seed, env.rank, step))  # dropout masks differ between ranks
        batches = _sharded_batches(n, batch, steps_per_epoch, cfg.train.seed, env, step)
    else:
        batches = _single_batches(n, batch, steps_per_epoch, gen)
    deadline = time.monotonic() + cfg.train.max_minutes * 60 if cfg.train.max_minutes else math.inf
    amp = dev.type == "cuda"
    started = time.monotonic()

    def save(loss_value: float) -> Path:
        payload = {
            "kind": "diffusion", "config": to_dict(cfg), "unet": unet.state_dict(),
            "ema": ema.state_dict() if ema is not None else None, "optimizer": opt.state_dict(),
            "step": step, "loss": loss_value, "finished": step >= total, "total_steps": total,
            "world_size": env.world_size, "seconds": earlier_s + time.monotonic() - started,
        }
        if cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
            save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", payload)
        return save_checkpoint(last, payload)

    unet.train()
    stop = _StopSignals(force_on_repeat=not ranks.distributed)
    first_step, saved_step, interrupted, broken = step, -1, False, False
    with stop, Progress("train", total=total, enabled=show_progress, initial=step) as bar:
        try:
            while True:
                if stop.signum is not None and ranks.is_main and saved_step != step:
                    save(loss_value)  # before asking the other ranks, which may be gone already
                    saved_step = step
                # every rank stops at the same step: a rank leaving early would leave the others waiting
                if ranks.any(step >= total or time.monotonic() >= deadline):
                    break
                if ranks.any(stop.signum is not None):
                    interrupted = True
                    break
                x0 = images[next(batches)]
                if cfg.train.augment:
                    flip = torch.rand(x0.shape[0], generator=gen) < 0.5
                    x0 = torch.where(flip.view(-1, 1, 1, 1), x0.flip(-1), x0)
                x0 = x0.to(dev, non_blocking=True)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    loss = diffusion_loss(model, x0, abar, gen, cfg.train.t_max)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                stop.updating = True
                opt.step()
                if ema is not None:
                    with torch.no_grad():
                        for pe, p in zip(ema.parameters(), unet.parameters()):
                            pe.lerp_(p, 1 - cfg.train.ema_decay)
                step += 1
                stop.updating = False
                loss_value = ranks.mean(loss)
                bar.update(step, loss=loss_value)
                if ranks.is_main and cfg.train.checkpoint_every and step % cfg.train.checkpoint_every == 0:
                    save(loss_value)
                    saved_step = step
        except KeyboardInterrupt:  # raised by code, or a second Ctrl-C: the step under way is dropped
            interrupted = broken = True
        except Exception:
            if stop.signum is None or not ranks.distributed:
                raise
            interrupted = broken = True  # a collective failed because another rank stopped first
        unet.eval()
        if interrupted:
            torn = stop.updating  # weights between two steps: not worth a checkpoint
            path = None if torn else last
            if ranks.is_main and not torn and saved_step != step:
                save(loss_value)
            if not broken:
                ranks.barrier()
            raise TrainingInterrupted(stop.signum or signal.SIGINT, step, path, env.rank)
    path = save(loss_value) if ranks.is_main else last
    ranks.barrier()  # last.pt exists for every rank once this returns
    seconds = time.monotonic() - started
    result = TrainResult(path, step, step / steps_per_epoch, loss_value, seconds, finished=step >= total,
                         total_seconds=earlier_s + seconds, world_size=env.world_size, rank=env.rank,
                         first_step=first_step)
    return Fitted(result, unet, ema)


def load_val_images(cfg: RunConfig, val_files: list[str]) -> np.ndarray:
    """The held-out nominal images of a run, (N, S, S, 3) uint8."""
    if not val_files:
        raise DdadError("this run holds out no validation images (train.val_fraction is 0): "
                        "train again with a validation fraction > 0")
    return load_images([Path(p) for p in val_files], cfg.model.image_size)
