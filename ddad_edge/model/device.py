"""The torch device a command runs on: `pick_device` turns the user's --device into one, or one line.

It lives with the model, not with training, because evaluation, export, distillation and the benchmark's torch
rows all ask for it: none of them should import the training procedure to find a GPU.
"""

from __future__ import annotations

import torch

from ddad_edge.errors import DdadError


def pick_device(requested: str = "auto") -> torch.device:
    """CUDA when present (or when asked), else the CPU; a device torch cannot use here is one line."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise DdadError(f"device {requested!r} is not a torch device: ask for auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DdadError(f"device {requested} was asked for, but torch sees no CUDA GPU here: ask for cpu, "
                            "or auto (the GPU when there is one)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DdadError(f"device {requested} was asked for, but torch sees {torch.cuda.device_count()} "
                            "CUDA GPU(s) here: ask for cuda:0 or auto")
    return device
