"""Domain adaptation of the feature extractor (DDAD, Sec. 3.3).

For a batch of nominal images split in halves (target y, input x), x is reconstructed conditioned on y
with w_DA, and the adapted extractor φ̂ is trained so that

  L = Σ_layers [ (1 − cos(φ̂(x̂0), φ̂(y))) + λ·(1 − cos(φ̂(y), φ(y))) + λ·(1 − cos(φ̂(x̂0), φ(x̂0))) ]

with φ the frozen original extractor (the λ terms keep φ̂ from forgetting). The cosine is taken per
spatial position over channels and averaged. BatchNorm statistics stay frozen: batches are small, and the
device graph runs BatchNorm in inference mode anyway.

φ is always the backbone the run's config names (scoring.backbone with scoring.backbone_weights), never an
earlier RUN/backbone.pt: every `adapt` starts from and anchors to the original weights and replaces
backbone.pt, so adapting twice does not compound (the λ anchor would otherwise drift further each time).
adapt.max_steps, when set, is the exact number of steps (epochs are then ignored); otherwise adapt.epochs
passes over the training images.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ddad_edge.config_checks import check_run_config
from ddad_edge.data.folders import load_images
from ddad_edge.errors import DdadError
from ddad_edge.model.backbone import FeatureExtractor, load_backbone
from ddad_edge.model.build import teacher_grid
from ddad_edge.model.checkpoint import Run, load_run_unet, save_checkpoint
from ddad_edge.model.device import pick_device
from ddad_edge.model.pipeline import frames_to_tensor
from ddad_edge.model.sampler import reconstruct
from ddad_edge.model.schedule import alphas_cumprod
from ddad_edge.progress import Progress
from ddad_edge.yaml_strict import to_dict


def cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean over positions of 1 − cos over channels. a, b: (B, C, h, w) → scalar."""
    return (1 - F.cosine_similarity(a, b, dim=1, eps=1e-6)).mean()


def adaptation_loss(adapted: FeatureExtractor, frozen: FeatureExtractor, x0: torch.Tensor, target: torch.Tensor,
                    lam: float) -> torch.Tensor:
    """DDAD's domain-adaptation loss for reconstructions x0 of inputs conditioned on `target` (both (B, 3, S, S))."""
    fa = adapted(torch.cat([x0, target]))
    with torch.no_grad():
        ff = frozen(torch.cat([x0, target]))
    b = x0.shape[0]
    loss = x0.new_zeros(())
    for a_l, f_l in zip(fa, ff):
        a_x0, a_y = a_l[:b], a_l[b:]
        f_x0, f_y = f_l[:b], f_l[b:]
        loss = loss + cosine_distance(a_x0, a_y) + lam * cosine_distance(a_y, f_y) + lam * cosine_distance(a_x0, f_x0)
    return loss


@dataclass(frozen=True)
class AdaptResult:
    path: Path
    steps: int
    first_loss: float
    final_loss: float
    seconds: float


def adapt_extractor(run: Run, device: str = "auto", show_progress: bool = True) -> AdaptResult:
    """Adapt the run's configured feature extractor to its domain; writes (replaces) run/backbone.pt.

    Starts from and anchors to the original weights of scoring.backbone / scoring.backbone_weights, not
    an earlier backbone.pt, so running it again redoes the adaptation instead of compounding it. Runs
    exactly adapt.max_steps steps when that is set, else adapt.epochs epochs.
    """
    cfg = check_run_config(run.cfg)  # --epochs / --max-steps given on the command line land here unchecked
    if cfg.adapt.epochs <= 0 and not cfg.adapt.max_steps:
        raise DdadError(f"adapt.epochs is {cfg.adapt.epochs} for this run (DDAD's preset for this category): "
                        "nothing to adapt; pass --epochs N to adapt anyway")
    if not run.train_files:
        raise DdadError(f"run {run.path} lists no training images (split.yaml): train it again")
    dev = pick_device(device)
    images = frames_to_tensor(load_images([Path(p) for p in run.train_files], cfg.model.image_size))
    unet = load_run_unet(run).to(dev)
    frozen = load_backbone(cfg.scoring.backbone, cfg.scoring.backbone_weights).to(dev).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    adapted = copy.deepcopy(frozen).eval()  # eval: BatchNorm statistics stay as they are
    for p in adapted.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(adapted.parameters(), lr=cfg.adapt.lr)
    abar = alphas_cumprod(cfg.diffusion)
    grid = teacher_grid(run)
    gen = torch.Generator().manual_seed(cfg.train.seed + 1)
    n = images.shape[0]
    batch = min(cfg.adapt.batch_size, n)
    batch -= batch % 2
    if batch < 2:
        raise DdadError("domain adaptation needs at least 2 training images")
    per_epoch = max(1, n // batch)
    total = cfg.adapt.max_steps or cfg.adapt.epochs * per_epoch  # max_steps: exactly that many steps
    started = time.monotonic()
    losses: list[float] = []
    step = 0
    with Progress("adapt", total=total, enabled=show_progress) as bar:
        while step < total:
            order = torch.randperm(n, generator=gen)
            for i in range(per_epoch):
                if step >= total:
                    break
                chunk = images[order[i * batch:(i + 1) * batch]].to(dev)
                target, inp = chunk[: batch // 2], chunk[batch // 2:]
                with torch.no_grad():
                    x0 = reconstruct(unet, inp, target, abar, grid, cfg.sampler.t_prime, cfg.adapt.w,
                                     eta=0.0, generator=gen)
                loss = adaptation_loss(adapted, frozen, x0, target, cfg.adapt.lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
                step += 1
                bar.update(step, loss=losses[-1])
    path = save_checkpoint(run.backbone_path, {
        "kind": "backbone", "config": to_dict(cfg), "backbone": adapted.name,
        "state_dict": adapted.state_dict(), "steps": step, "losses": losses,
    })
    return AdaptResult(path, step, losses[0] if losses else float("nan"),
                       losses[-1] if losses else float("nan"), time.monotonic() - started)
