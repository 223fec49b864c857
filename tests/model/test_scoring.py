"""DDAD's anomaly map: distances, fusion, blur, and per-image independence."""

import dataclasses

import numpy as np
import pytest
import torch

from ddad_edge.config import RatioMode, ScoringConfig, ScoringMode
from ddad_edge.model.backbone import FeatureExtractor
from ddad_edge.model.scoring import (
    AnomalyScorer,
    feature_distance,
    gaussian_kernel1d,
    measure_fixed_ratio,
    patch_mean,
    pixel_distance,
)
from tests.model import ddad_reference


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


def perturbed_batch(n: int = 3, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and "reconstructions" that differ by a patch of a different strength and place in each image,
    over small noise everywhere: every image's maxima of D_p and D_f differ from the batch's."""
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n, 3, size, size, generator=g) * 2 - 1
    x0 = x + 0.02 * torch.randn(x.shape, generator=g)
    for i in range(n):
        a = 6 + 13 * i
        x0[i, :, a:a + 10, a:a + 12] += 0.25 * (i + 1) * torch.randn(3, 10, 12, generator=g)
    return x, x0.clamp(-1, 1)


def reference(s: AnomalyScorer, x: torch.Tensor, x0: torch.Tensor, fixed_ratio=None, sigma=4.0):
    """The plain float64 transcription (tests/model/ddad_reference.py) of what `s` is configured to do."""
    cfg = s.cfg
    fx = fx0 = None
    if cfg.mode is not ScoringMode.PIXEL:
        fx, fx0 = (ddad_reference.layer_features(s.extractor, t, cfg.layers) for t in (x, x0))
    return ddad_reference.anomaly_map(x.double().numpy(), x0.double().numpy(), fx, fx0, cfg.v,
                                      fixed_ratio=fixed_ratio, pixel=cfg.mode is not ScoringMode.FEATURE,
                                      sigma=sigma)


def assert_matches(m: torch.Tensor, score: torch.Tensor, ref: tuple[np.ndarray, np.ndarray]) -> None:
    ref_map, ref_score = ref
    scale = float(np.abs(ref_map).max())
    assert scale > 0
    np.testing.assert_allclose(m.double().numpy(), ref_map, rtol=0, atol=1e-3 * scale)
    np.testing.assert_allclose(score.double().numpy(), ref_score, rtol=1e-3)


def test_score_is_per_image_not_per_batch():
    s = scorer(v=1.5)
    x, x0 = perturbed_batch()
    with torch.no_grad():
        d_p, d_f = s.distances(x, x0)
        batch_map, batch_scores = s(x, x0)
        alone = [s(x[i:i + 1], x0[i:i + 1]) for i in range(3)]
    # the test means something only if no image's maxima are the batch's: check that it is so
    ratios = d_f.flatten(1).amax(1) / d_p.flatten(1).amax(1)
    assert float((ratios.max() - ratios.min()) / ratios.max()) > 0.1
    for i, (m, score) in enumerate(alone):
        torch.testing.assert_close(batch_map[i:i + 1], m, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(batch_scores[i:i + 1], score, rtol=1e-5, atol=1e-6)
    assert_matches(batch_map, batch_scores, reference(s, x, x0))


@pytest.mark.parametrize("mode, ratio", [(ScoringMode.FUSED, RatioMode.PER_IMAGE), (ScoringMode.FUSED, RatioMode.FIXED),
                                         (ScoringMode.FEATURE, RatioMode.PER_IMAGE),
                                         (ScoringMode.PIXEL, RatioMode.PER_IMAGE)])
def test_forward_matches_a_plain_transcription_of_ddads_map(mode, ratio):
    """The whole forward (distances, fusion, the 33×33 σ=4 blur, the max) against DDAD's heat map written
    out in float64 numpy: a dropped blur, a changed kernel or a wrong fusion moves the map."""
    fixed = 0.37 if ratio is RatioMode.FIXED else None
    s = scorer(mode, v=1.5, ratio=ratio, fixed_ratio=fixed or 0.0)
    x, x0 = perturbed_batch()
    with torch.no_grad():
        m, score = s(x, x0)
    assert m.shape == (3, 1, 64, 64) and m.dtype == torch.float32 and score.shape == (3,)
    assert_matches(m, score, reference(s, x, x0, fixed_ratio=fixed))
    unblurred, _ = reference(s, x, x0, fixed_ratio=fixed, sigma=None)
    assert float(np.abs(m.double().numpy() - unblurred).max()) > 0.05 * float(np.abs(unblurred).max())


@pytest.mark.parametrize("layers", [("layer2", "layer3"), ("layer2",), ("layer3",), ("layer1", "layer3")])
def test_feature_distance_reads_the_configured_backbone_layers(layers):
    """D_f from the layers the configuration names, taken straight from the backbone's modules."""
    s = scorer(ScoringMode.FEATURE, layers=layers)
    x, x0 = perturbed_batch(2)
    with torch.no_grad():
        _, d_f = s.distances(x, x0)
    fx, fx0 = (ddad_reference.layer_features(s.extractor, t, layers) for t in (x, x0))
    ref, _ = ddad_reference.anomaly_map(x.double().numpy(), x0.double().numpy(), fx, fx0, 1.0, pixel=False,
                                        sigma=None)
    np.testing.assert_allclose(d_f.double().numpy(), ref, rtol=0, atol=1e-3 * float(np.abs(ref).max()))


def test_default_layers_are_ddads_layer2_and_layer3():
    assert ScoringConfig().layers == ("layer2", "layer3")


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


def test_fixed_ratio_is_the_largest_feature_distance_over_the_largest_pixel_distance_of_all_pairs():
    """measure_fixed_ratio: max D_f and max D_p each over every pair (not the largest per-pair ratio),
    from the float64 transcription; 1.0 when the reconstructions are perfect (no pixel distance)."""
    s = scorer()
    small, large = perturbed_batch(2, 32), perturbed_batch(2, 32)
    large = (large[0], (large[1] + 0.3 * (large[1] - large[0])).clamp(-1, 1))  # a larger pixel distance
    pairs = [small, large]
    max_p = max(float(np.abs(x0.double().numpy() - x.double().numpy()).mean(axis=1).max()) for x, x0 in pairs)
    max_f = 0.0
    for x, x0 in pairs:
        fx, fx0 = (ddad_reference.layer_features(s.extractor, t, s.cfg.layers) for t in (x, x0))
        d_f, _ = ddad_reference.anomaly_map(x.double().numpy(), x0.double().numpy(), fx, fx0, 1.0, pixel=False,
                                            sigma=None)
        max_f = max(max_f, float(d_f.max()))
    assert 0 < max_p < 1 and 0 < max_f < 1  # below the 1.0 that a wrong starting value would give
    assert measure_fixed_ratio(s, pairs) == pytest.approx(max_f / max_p, rel=1e-3)
    x = perturbed_batch(1, 32)[0]
    assert measure_fixed_ratio(s, [(x, x.clone())]) == 1.0
    pixel_only = AnomalyScorer(ScoringConfig(mode=ScoringMode.PIXEL), None)
    assert measure_fixed_ratio(pixel_only, pairs) == 0.0


def test_blur_kernel_is_the_float64_gaussian_and_stays_out_of_the_state_dict():
    """The kernel is computed in float64 and rounded once; it is rebuilt from the configuration, so a
    checkpoint holds no copy of it that could disagree with the configuration."""
    taps = np.arange(33, dtype=np.float64) - 16
    expected = np.exp(-taps ** 2 / (2 * 4.0 ** 2))
    np.testing.assert_array_equal(gaussian_kernel1d(4.0, 33).numpy(), (expected / expected.sum()).astype(np.float32))
    s = scorer(mode=ScoringMode.PIXEL)
    assert not any(name.startswith("blur") for name in s.state_dict())


def test_feature_modes_need_a_feature_extractor():
    for mode in (ScoringMode.FUSED, ScoringMode.FEATURE):
        with pytest.raises(ValueError, match=f"scoring mode {mode.value} needs a feature extractor"):
            AnomalyScorer(ScoringConfig(mode=mode), None)


def test_feature_distance_of_a_non_square_image_keeps_its_shape_and_ignores_feature_scale():
    """D_f is upsampled to (H, W), not (H, H); a cosine does not depend on the features' scale (small
    features: the similarity's eps must stay far below their norms)."""
    s = scorer(ScoringMode.FEATURE)
    x, x0 = perturbed_batch(1, 64)
    x, x0 = torch.cat([x, x], dim=-1), torch.cat([x0, x], dim=-1)  # (1, 3, 64, 128)
    with torch.no_grad():
        _, d_f = s.distances(x, x0)
        feats = s.extractor(torch.cat([x, x0]))
    assert d_f.shape == (1, 1, 64, 128)
    small = feature_distance([0.01 * f[:1] for f in feats], [0.01 * f[1:] for f in feats], s.cfg.layers, (64, 128))
    torch.testing.assert_close(small, d_f, rtol=1e-4, atol=1e-5)


def test_config_is_frozen():
    cfg = ScoringConfig()
    try:
        cfg.v = 3  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        return
    raise AssertionError("ScoringConfig must be frozen")
