"""Parameter and FLOP counts of the UNet, the feature extractor and the whole per-frame graph.

FLOPs are counted by torch's FlopCounterMode on one forward pass (a multiply-add counts as 2 FLOPs);
element-wise work (norms, activations) is not counted, as is customary.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from ddad_edge.config import model_preset
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.unet import UNet, count_parameters


def gflops_of(module: torch.nn.Module, *inputs: torch.Tensor) -> float:
    """GFLOP of one forward pass of `module` on `inputs`."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(*inputs)
    return counter.get_total_flops() / 1e9


def model_costs(preset: str, image_size: int | None, backbone: str = "wide_resnet101_2", steps: int = 10) -> dict:
    """unet_params, gflops_per_call, backbone_params, backbone_gflops (on [x, x̂0]), gflops_per_frame."""
    cfg = model_preset(preset, image_size)
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
