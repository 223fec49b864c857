"""Parameter and FLOP counts of the UNet, the feature extractor and the whole per-frame graph.

FLOPs are counted by torch's FlopCounterMode on one forward pass (a multiply-add counts as 2 FLOPs);
element-wise work (norms, activations) is not counted, as is customary.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ddad_edge.config import BACKBONES, RunConfig
from ddad_edge.config_checks import check_run_config
from ddad_edge.config_presets import model_preset
from ddad_edge.errors import DdadError
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.unet import UNet, count_parameters


def gflops_of(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOP of one forward pass of `module` on `inputs`."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9


def model_costs(preset: str, image_size: int | None, backbone: str = "wide_resnet101_2", steps: int = 10) -> dict:
    """unet_params, gflops_per_call, backbone_params, backbone_gflops (on [x, x̂0]), gflops_per_frame.

    A size the preset cannot take, a step count below 1 or an unknown backbone is one line (DdadError),
    checked as `train` checks them, before anything is built.
    """
    if image_size is not None and image_size < 1:  # not "the preset's size": that is leaving it out
        raise DdadError(f"--image-size {image_size}: give a size in pixels (8 to 2048), or leave it out for "
                        "the preset's")
    if not 1 <= steps <= 100_000:
        raise DdadError(f"--steps {steps}: give the network calls per frame, 1 or more")
    if backbone and backbone != "none" and backbone not in BACKBONES:
        raise DdadError(f"--backbone {backbone!r}: choose one of {', '.join(BACKBONES)}, or none")
    cfg = model_preset(preset, image_size)
    try:
        check_run_config(RunConfig(model=cfg))  # the size against the preset's levels, norm groups, attention
    except DdadError as exc:
        raise DdadError(f"--image-size {cfg.image_size} does not fit preset {preset}: {exc}") from None
    unet = UNet(cfg).eval()
    s = cfg.image_size
    x = torch.zeros(1, cfg.in_channels, s, s)
    per_call = gflops_of(unet, x, torch.zeros(1))
    out = {"preset": preset, "image_size": s, "unet_params": count_parameters(unet), "gflops_per_call": per_call}
    if backbone and backbone != "none":
        ext = FeatureExtractor(backbone).eval()
        out["backbone"] = backbone
        out["backbone_params"] = count_parameters(ext)
        out["backbone_gflops"] = gflops_of(ext, torch.zeros(2, 3, s, s))
    out["steps"] = steps
    out["gflops_per_frame"] = steps * per_call + out.get("backbone_gflops", 0.0)
    return out
