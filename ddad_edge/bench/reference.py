"""The DDAD-S reference every benchmark row is compared with, and FLOP counts per variant — torch.

The reference is what DDAD publishes and a user would otherwise run: torch eager, FP32, the DDAD-S
UNet at 256 px, 10 conditioned DDIM steps from T'=250 (skip 25) with η = 1 as in DDAD, and the
wide_resnet101_2 feature extractor on [x, x̂0]. It runs in the same process as the rows it is compared
with, on the GPU where torch sees one (DDAD's own code runs on CUDA), else on the CPU. Its weights are
random (no download, no training run needed): a dense network's speed does not depend on its weights'
values. Zero-initialised layers are filled with random values too, so no
exporter or runtime can treat them as special.

Import this module only where torch is wanted (`--reference`, FLOP counts): the rest of the benchmark
runs without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

from ddad_edge.config import DiffusionConfig, SamplerConfig, ScoringConfig, ScoringMode
from ddad_edge.config_presets import model_preset
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.flops import gflops_of
from ddad_edge.model.pipeline import DDADPipeline
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.model.torch_runner import TorchRunner
from ddad_edge.model.unet import UNet


@dataclass(frozen=True)
class ReferenceSpec:
    """The reference's settings (DDAD's defaults; the timing does not depend on w)."""

    preset: str = "ddad-s"
    image_size: int = 256
    t_prime: int = 250
    skip: int = 25  # → 10 steps: 225, 200, …, 0
    eta: float = 1.0
    w: float = SamplerConfig().w
    backbone: str = "wide_resnet101_2"
    seed: int = 0

    @property
    def steps(self) -> int:
        return len(ddim_timesteps(self.t_prime, self.skip))

    def describe(self, device: str = "cpu") -> str:
        return (f"DDAD-S reference: torch {torch.__version__} eager FP32, {self.preset} UNet at {self.image_size} px, "
                f"{self.steps} conditioned DDIM steps (T'={self.t_prime}, eta={self.eta:g}), {self.backbone} "
                f"features, fused map; random weights (speed does not depend on them), on {device_label(device)}")


def device_label(device: str | torch.device) -> str:
    """Where torch runs, in words: the GPU's name (with cuDNN's TF32 setting, torch's default kept as DDAD's
    code keeps it), or the CPU's torch thread count."""
    device = torch.device(device)
    if device.type == "cpu":
        return f"the CPU, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        tf32 = "on" if torch.backends.cudnn.allow_tf32 else "off"
        return f"{torch.cuda.get_device_name(device)} ({device}; cuDNN TF32 convolutions {tf32})"
    return str(device)


def fill_zero_parameters(module: nn.Module, seed: int = 0, std: float = 0.02) -> nn.Module:
    """Give every all-zero parameter of `module` random normal values (std `std`); returns `module`.

    A fresh UNet has zero-initialised output convolutions (identity blocks at the start of training);
    left at zero, identical tensors can be merged by an exporter and quantize to a zero scale, which a
    trained network never does.
    """
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if not torch.any(p):
                p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def random_unet(preset: str = "ddad-s", image_size: int = 256, seed: int = 0) -> UNet:
    """A randomly initialised UNet of a preset, every layer non-zero, in eval mode."""
    torch.manual_seed(seed)
    return fill_zero_parameters(UNet(model_preset(preset, image_size)), seed).eval()


def random_extractor(backbone: str, seed: int = 0) -> FeatureExtractor:
    """A randomly initialised feature extractor (torchvision-layout ResNet up to layer3), eval mode, with its
    zero-initialised BatchNorm shifts filled too (folded into the convolutions at export, they would make
    every bias the same zero tensor)."""
    torch.manual_seed(seed)
    return fill_zero_parameters(FeatureExtractor(backbone), seed).eval()


def speed_pipeline(unet: UNet, timesteps: list[int], t_prime: int, eta: float, backbone: str | None,
                   w: float = SamplerConfig().w, seed: int = 0) -> DDADPipeline:
    """A DDADPipeline for timing: `unet` on the grid `timesteps`, fused scoring with a random `backbone`,
    or pixel-only scoring when `backbone` is None."""
    mode = ScoringMode.FUSED if backbone else ScoringMode.PIXEL
    scoring = ScoringConfig(backbone=backbone or "none", backbone_weights="none", mode=mode)
    extractor = random_extractor(backbone, seed) if backbone else None
    scorer = AnomalyScorer(scoring, extractor)
    return DDADPipeline(unet, scorer, alphas_cumprod(DiffusionConfig()), timesteps, t_prime, w, eta,
                        noise_seed=seed).eval()


def reference_pipeline(spec: ReferenceSpec = ReferenceSpec()) -> DDADPipeline:
    """The reference DDADPipeline of `spec` (random weights)."""
    unet = random_unet(spec.preset, spec.image_size, spec.seed)
    return speed_pipeline(unet, ddim_timesteps(spec.t_prime, spec.skip), spec.t_prime, spec.eta, spec.backbone,
                          spec.w, spec.seed)


def reference_runner(spec: ReferenceSpec = ReferenceSpec(), device: str = "cpu") -> TorchRunner:
    """The reference behind the Runner protocol (one frame per torch call) on `device`."""
    return TorchRunner(reference_pipeline(spec), device=device, batch_size=1)


@lru_cache(maxsize=None)
def unet_call_gflops(preset: str, image_size: int) -> float:
    """GFLOP of one UNet call on one image (a multiply-add counts 2; element-wise work not counted)."""
    unet = UNet(model_preset(preset, image_size)).eval()
    return gflops_of(unet, torch.zeros(1, unet.cfg.in_channels, image_size, image_size), torch.zeros(1))


@lru_cache(maxsize=None)
def backbone_gflops(backbone: str, image_size: int) -> float:
    """GFLOP of the feature extractor on [x, x̂0] (two images) up to layer3."""
    return gflops_of(FeatureExtractor(backbone).eval(), torch.zeros(2, 3, image_size, image_size))


def variant_gflops(preset: str, image_size: int, steps: int, backbone: str | None) -> float:
    """GFLOP per frame of a variant: `steps` UNet calls plus the extractor on [x, x̂0] (none: pixel-only)."""
    total = steps * unet_call_gflops(preset, image_size)
    if backbone:
        total += backbone_gflops(backbone, image_size)
    return total
