"""The conditioned DDIM sampler against a plain, independent transcription of DDAD's equations."""

import math

import numpy as np
import pytest
import torch

from ddad_edge.config import DiffusionConfig, ScoringConfig, ScoringMode
from ddad_edge.config_presets import model_preset
from ddad_edge.model.pipeline import DDADPipeline
from ddad_edge.model.sampler import conditioned_step, reconstruct, step_coefficients
from ddad_edge.model.schedule import alphas_cumprod, ddim_timesteps, halve_grid
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.model.unet import UNet


def plain_reconstruction(eps_fn, x, y, z, step_noise, w, eta, t_prime=250, skip=25):
    """Written straight from the equations, in float64 numpy, with its own schedule and loop."""
    betas = np.linspace(1e-4, 0.02, 1000)
    abar = np.cumprod(1.0 - betas)

    def a(t):
        return 1.0 if t < 0 else abar[t]

    xt = math.sqrt(a(t_prime)) * x + math.sqrt(1 - a(t_prime)) * z
    ts = list(range(0, t_prime, skip))[::-1]  # 225, 200, ..., 0
    x0 = None
    for i, t in enumerate(ts):
        t_next = ts[i + 1] if i + 1 < len(ts) else -1
        e = eps_fn(xt, t)
        yt = math.sqrt(a(t)) * y + math.sqrt(1 - a(t)) * e
        e_hat = e - w * math.sqrt(1 - a(t)) * (yt - xt)
        x0 = (xt - math.sqrt(1 - a(t)) * e_hat) / math.sqrt(a(t))
        c1 = eta * math.sqrt((1 - a(t) / a(t_next)) * (1 - a(t_next)) / (1 - a(t)))
        c2 = math.sqrt(1 - a(t_next) - c1 ** 2)
        xt = math.sqrt(a(t_next)) * x0 + c1 * step_noise[i] + c2 * e_hat
    return x0


@pytest.fixture(scope="module")
def eps_model():
    # A randomly initialised tiny UNet with its zero-initialised output layers perturbed, so ε_θ is a
    # non-trivial function of x_t and t.
    torch.manual_seed(0)
    unet = UNet(model_preset("tiny", 32)).double().eval()
    with torch.no_grad():
        for p in unet.parameters():
            if not p.abs().sum():
                p.normal_(0, 0.05)
    return unet


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_sampler_matches_plain_equations(eps_model, eta):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1
    z = torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64)
    noise = [torch.randn(2, 3, 32, 32, generator=g, dtype=torch.float64) for _ in range(10)]
    w = 3.0

    def eps_np(xt, t):
        with torch.no_grad():
            return eps_model(torch.from_numpy(xt), torch.full((2,), float(t), dtype=torch.float64)).numpy()

    expected = plain_reconstruction(eps_np, x.numpy(), y.numpy(), z.numpy(), [n.numpy() for n in noise], w, eta)
    abar = alphas_cumprod(DiffusionConfig())
    with torch.no_grad():
        got = reconstruct(eps_model, x, y, abar, ddim_timesteps(250, 25), 250, w, eta=eta, z=z, step_noise=noise)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("eta, w", [(0.0, 3.0), (1.0, 3.0), (0.5, 0.0)])
def test_reconstruction_follows_the_equations_with_a_cheap_noise_model(eta, w):
    """The same comparison as above with ε_θ a plain function of x_t and t instead of a UNet: the sampler's
    arithmetic alone, fast enough to run for every mutant of sampler.py (scripts/mutation.sh)."""
    def eps_np(xt, t):
        return np.tanh(xt) * 0.5 + np.cos(xt * 3.0) * (t / 1000.0)

    seen = []

    def eps_torch(xt, t):
        seen.append(t)
        return torch.tanh(xt) * 0.5 + torch.cos(xt * 3.0) * (t[:, None, None, None] / 1000.0)

    g = torch.Generator().manual_seed(6)
    x, y = (torch.rand(2, 3, 8, 8, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
    z = torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64)
    noise = [torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(10)]
    expected = plain_reconstruction(eps_np, x.numpy(), y.numpy(), z.numpy(), [n.numpy() for n in noise], w, eta)
    got = reconstruct(eps_torch, x, y, alphas_cumprod(DiffusionConfig()), ddim_timesteps(250, 25), 250, w,
                      eta=eta, z=z, step_noise=noise)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-9, atol=1e-9)
    # the network sees each grid step once, as a (B,) tensor in x's dtype
    assert [t.tolist() for t in seen] == [[float(t)] * 2 for t in ddim_timesteps(250, 25)]
    assert all(t.dtype == x.dtype for t in seen)
    if eta == 0:  # deterministic, and the default
        default = reconstruct(eps_torch, x, y, alphas_cumprod(DiffusionConfig()), ddim_timesteps(250, 25), 250, w,
                              z=z)
        torch.testing.assert_close(default, got, rtol=0, atol=0)


def test_noise_not_given_is_drawn_from_the_generator_start_noise_first():
    """Without z and step_noise, the sampler draws the start noise and then each step's noise, in x's dtype,
    from `generator`: the same as passing those draws in."""
    def eps_model(x_t, t):  # any function of x_t and t will do here
        return 0.1 * x_t + t[:, None, None, None] / 1000
    x = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 2 - 1
    abar = alphas_cumprod(DiffusionConfig())
    grid = ddim_timesteps(250, 25)
    g = torch.Generator().manual_seed(5)
    draws = [torch.randn(x.shape, generator=g, dtype=torch.float64) for _ in range(1 + len(grid))]
    with torch.no_grad():
        drawn = reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 1.0, generator=torch.Generator().manual_seed(5))
        given = reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 1.0, z=draws[0], step_noise=draws[1:])
    assert drawn.dtype == torch.float64
    torch.testing.assert_close(drawn, given, rtol=0, atol=0)
    # a deterministic reconstruction with its start noise given draws nothing: the seeded stream is untouched
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 0.0, z=draws[0], generator=g)
    torch.testing.assert_close(torch.randn(x.shape, generator=g, dtype=torch.float64), draws[0], rtol=0, atol=0)


def test_noise_is_drawn_on_the_cpu_and_the_steps_follow_x_to_its_device():
    """The noise comes from a CPU generator, whatever torch's default device, and moves to x's device; the
    network gets its t there too. "meta" tensors (shapes without data) stand in for a GPU here."""
    seen = []

    def eps_model(x_t, t):
        seen.append(t.device.type)
        return torch.tanh(x_t) * 0.5 + torch.cos(x_t * 3.0) * (t[:, None, None, None] / 1000.0)

    abar, grid = alphas_cumprod(DiffusionConfig()), ddim_timesteps(250, 25)
    x = torch.zeros(1, 3, 4, 4, device="meta")
    out = reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 1.0, generator=torch.Generator().manual_seed(1))
    assert out.device.type == "meta" and set(seen) == {"meta"}
    x = torch.rand(1, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 1.0, generator=torch.Generator().manual_seed(1))
    with torch.device("meta"):  # a program that made another device the default
        got = reconstruct(eps_model, x, x, abar, grid, 250, 3.0, 1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_a_stochastic_step_without_its_noise_is_refused_and_a_deterministic_one_needs_none():
    abar = alphas_cumprod(DiffusionConfig())
    x = torch.zeros(1, 3, 4, 4)
    with pytest.raises(ValueError, match=r"^a stochastic step \(eta > 0\) needs its noise z'$"):
        conditioned_step(x, x, x, step_coefficients(abar, 100, 50, eta=0.5), 1.0)
    conditioned_step(x, x, x, step_coefficients(abar, 100, 50, eta=0.0), 1.0)  # no noise needed
    assert step_coefficients(abar, 100, 50, eta=0.0).t == 100  # the step the pipeline feeds the network


def test_eta_changes_the_result(eps_model):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 3, 32, 32, generator=g, dtype=torch.float64)
    abar = alphas_cumprod(DiffusionConfig())
    z = torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64)
    noise = [torch.randn(1, 3, 32, 32, generator=g, dtype=torch.float64) for _ in range(10)]
    with torch.no_grad():
        a = reconstruct(eps_model, x, x, abar, ddim_timesteps(250, 25), 250, 3.0, 0.0, z=z, step_noise=noise)
        b = reconstruct(eps_model, x, x, abar, ddim_timesteps(250, 25), 250, 3.0, 1.0, z=z, step_noise=noise)
    assert (a - b).abs().max() > 1e-4


def test_grid_is_ddads():
    assert ddim_timesteps(250, 25) == [225, 200, 175, 150, 125, 100, 75, 50, 25, 0]
    assert ddim_timesteps(248, 31) == [217, 186, 155, 124, 93, 62, 31, 0]


def test_grids_halve_onto_teacher_points():
    g8 = ddim_timesteps(248, 31)
    g4 = halve_grid(g8)
    g2 = halve_grid(g4)
    g1 = halve_grid(g2)
    assert g4 == [217, 155, 93, 31]
    assert g2 == [217, 93]
    assert g1 == [217]
    assert set(g4) <= set(g8) and set(g2) <= set(g4)
    with pytest.raises(ValueError):
        halve_grid(ddim_timesteps(250, 50))  # 5 steps


def test_pipeline_reconstruction_equals_sampler(eps_model):
    """The exportable pipeline unrolls exactly the sampler's steps with its fixed noise constant."""
    unet = eps_model.float()
    scorer = AnomalyScorer(ScoringConfig(mode=ScoringMode.PIXEL), None)
    abar = alphas_cumprod(DiffusionConfig())
    grid = ddim_timesteps(250, 25)
    pipe = DDADPipeline(unet, scorer, abar, grid, 250, w=2.0, eta=0.0, noise_seed=7).eval()
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        got = pipe.reconstruct(x)
        want = reconstruct(unet, x, x, abar, grid, 250, 2.0, eta=0.0, z=pipe.z.expand_as(x))
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    eps_model.double()
