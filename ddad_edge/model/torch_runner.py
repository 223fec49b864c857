"""The torch reference runner: a DDADPipeline in FP32 eager torch, behind the same Runner protocol as the
ONNX Runtime, TensorRT and OpenVINO runners, so the parity suite compares every backend against it.

It lives in model/ (it needs torch, which runtime/ never imports) and joins runtime/'s backend table from
here: ddad_edge/model/__init__.py registers it under the `torch` backend by its dotted path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddad_edge.bundle import Bundle
from ddad_edge.model.build import build_pipeline, pipeline_of_bundle
from ddad_edge.model.checkpoint import open_run
from ddad_edge.model.pipeline import DDADPipeline, frames_to_tensor
from ddad_edge.runtime.base import Inspection, RunnerBase


class TorchRunner(RunnerBase):
    """Runs a DDADPipeline in torch (FP32, eager) on uint8 frames, `batch_size` frames per forward pass."""

    backend = "torch"

    def __init__(self, pipeline: DDADPipeline | Bundle, device: str = "cpu", batch_size: int = 8) -> None:
        if isinstance(pipeline, Bundle):
            pipeline = pipeline_of_bundle(pipeline)
        self.pipeline = pipeline.to(device).eval()
        self.device = torch.device(device)
        self.image_size = pipeline.unet.cfg.image_size
        self.batch_size = batch_size
        self.max_batch = batch_size  # RunnerBase.infer cuts larger batches into forward passes of this size

    @classmethod
    def from_run(cls, run_dir: Path, **pipeline_options: Any) -> TorchRunner:
        return cls(build_pipeline(open_run(run_dir), **pipeline_options))

    @torch.no_grad()
    def _infer_batch(self, frames: np.ndarray) -> Inspection:
        maps, scores = self.pipeline(frames_to_tensor(frames).to(self.device))
        return Inspection(maps.float().cpu().numpy(), scores.float().cpu().numpy())
