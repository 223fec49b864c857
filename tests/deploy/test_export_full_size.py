"""The full-size DDAD-S graph (256 px, K = 2, wide_resnet50_2) exports and ONNX Runtime matches torch.

The UNet is untrained, with its zero-initialised output convolutions given random weights so every block
contributes and the outputs are not trivial; the backbone has random weights. One frame keeps the test
near a minute on two cores.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddad_edge.config import DiffusionConfig, ScoringConfig
from ddad_edge.config_presets import model_preset
from ddad_edge.deploy.fidelity import run_onnx
from ddad_edge.deploy.onnx_export import check_graph, export_onnx
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.pipeline import DDADPipeline
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.model.torch_runner import TorchRunner
from ddad_edge.model.unet import UNet, count_parameters


def _full_size_pipeline() -> DDADPipeline:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet(model_preset("ddad-s", 256))
        for m in unet.modules():
            if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)) and not m.weight.any():
                torch.nn.init.normal_(m.weight, std=0.02)
        extractor = FeatureExtractor("wide_resnet50_2").eval()
    scorer = AnomalyScorer(ScoringConfig(backbone="wide_resnet50_2"), extractor)
    return DDADPipeline(unet, scorer, alphas_cumprod(DiffusionConfig()), ddim_timesteps(250, 125), 250, 3.0,
                        0.0).eval()


@pytest.mark.slow
def test_full_size_ddad_s_graph_matches_torch(tmp_path):
    pipeline = _full_size_pipeline()
    assert 8.0e6 < count_parameters(pipeline.unet) < 8.6e6  # DDAD-S, ~8.3M
    path = export_onnx(pipeline, tmp_path / "ddad-s.onnx")
    summary = check_graph(path, 256, 2)
    assert summary.unet_calls == 2 and summary.opset == 17
    frames = np.random.default_rng(0).integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    ref = TorchRunner(pipeline).infer(frames)
    maps, scores = run_onnx(path, frames)
    scale = float(np.abs(ref.maps).max())
    assert scale > 1e-3 and float(ref.maps.std()) > 1e-4  # a map with structure, not a constant
    assert float(np.abs(maps - ref.maps).max()) <= 1e-4 * scale
    np.testing.assert_allclose(scores, ref.scores, rtol=1e-4)
