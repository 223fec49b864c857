"""DDAD's anomaly map: distances, fusion, blur, and per-image independence."""

import dataclasses

import torch

from ddad_edge.config import RatioMode, ScoringConfig, ScoringMode
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.scoring import AnomalyScorer, gaussian_kernel1d, patch_mean, pixel_distance


def scorer(mode=ScoringMode.FUSED, **kw):
    torch.manual_seed(0)
    # Randomly initialised resnet18: enough to test the arithmetic of the map.
    return AnomalyScorer(ScoringConfig(mode=mode, **kw), FeatureExtractor("resnet18").eval())


def test_identical_reconstruction_gives_zero_map():
    s = scorer()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        m, score = s(x, x.clone())
    assert m.shape == (2, 1, 64, 64) and score.shape == (2,)
    assert m.abs().max() < 1e-5


def test_score_is_per_image_not_per_batch():
    s = scorer()
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    x0 = x.clone()
    x0[1, :, 20:30, 20:30] = 1.0  # a big difference in one image only
    with torch.no_grad():
        _, batch_scores = s(x, x0)
        alone = torch.stack([s(x[i:i + 1], x0[i:i + 1])[1][0] for i in range(3)])
    torch.testing.assert_close(batch_scores, alone, rtol=1e-5, atol=1e-6)
    assert batch_scores[1] > 5 * batch_scores[0]


def test_fused_map_follows_the_formula():
    s = scorer(v=2.0, blur_kernel=1, blur_sigma=1.0)  # a 1-tap blur is the identity
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    x0 = x + 0.3 * torch.randn_like(x)
    with torch.no_grad():
        d_p, d_f = s.distances(x, x0)
        m, _ = s(x, x0)
    expected = d_f + 2.0 * (d_f.max() / d_p.max()) * d_p
    torch.testing.assert_close(m, expected, rtol=1e-5, atol=1e-6)


def test_fixed_ratio_and_modes():
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    x0 = x + 0.3 * torch.randn_like(x)
    pix = AnomalyScorer(ScoringConfig(mode=ScoringMode.PIXEL, blur_kernel=1), None)
    with torch.no_grad():
        m, _ = pix(x, x0)
    torch.testing.assert_close(m, pixel_distance(x, x0))
    fixed = scorer(ratio=RatioMode.FIXED, fixed_ratio=0.0, blur_kernel=1)
    feat = scorer(mode=ScoringMode.FEATURE, blur_kernel=1)
    with torch.no_grad():
        torch.testing.assert_close(fixed(x, x0)[0], feat(x, x0)[0])


def test_blur_kernel_and_patch_mean():
    k = gaussian_kernel1d(4.0, 33)
    assert k.shape == (33,) and abs(float(k.sum()) - 1) < 1e-6 and int(k.argmax()) == 16
    f = torch.ones(1, 2, 5, 5)
    p = patch_mean(f)
    assert p[0, 0, 2, 2] == 1 and abs(float(p[0, 0, 0, 0]) - 4 / 9) < 1e-6  # zero padding at the border
    s = scorer(mode=ScoringMode.PIXEL)
    impulse = torch.zeros(1, 1, 64, 64)
    impulse[0, 0, 32, 32] = 1
    blurred = s.blur(impulse)
    assert abs(float(blurred.sum()) - 1) < 1e-4 and blurred.max() < 0.02


def test_config_is_frozen():
    cfg = ScoringConfig()
    try:
        cfg.v = 3  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("ScoringConfig must be frozen")
