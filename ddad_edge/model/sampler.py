"""The conditioned DDIM reconstruction of DDAD, as pure math apart from the network.

This is the one place the DDIM update lives: the pipeline (the exported graph), step distillation and
domain adaptation all run `ddim_steps`, and the deployed start noise z comes from `start_noise`.

Symbols. DDIM (Song, Meng & Ermon, 2021) writes α_t for what DDPM and this code write ᾱ_t; equation numbers
below are DDIM's. DDAD (Mousakhan et al., 2023, Sec. 3) adds the conditioning on a target y.
  x_t   current sample                    y      conditioning target (the input image itself at test time)
  ᾱ_t   alphas_cumprod[t]                 ε_t    ε_θ(x_t, t), the network's noise estimate
  x_T'  √ᾱ_T'·x + √(1−ᾱ_T')·z, the input noised to level T'                         (DDIM eq. 4)
  y_t   √ᾱ_t·y + √(1−ᾱ_t)·ε_t, the target noised with the network's own noise         (DDAD, conditioning)
  ε̂    ε_t − w·√(1−ᾱ_t)·(y_t − x_t), the conditioned noise estimate (w: weight)      (DDAD, conditioning)
  x̂0   (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, pred_original_sample                                (DDIM eq. 9)
  x_next = √ᾱ_next·x̂0 + c2·ε̂ + c1·z'                                                (DDIM eq. 12)
        c1 = σ = η·√((1−ᾱ_next)/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_next),  c2 = √(1−ᾱ_next−c1²)      (DDIM eq. 16)

All noise (z, and z' per step when η > 0) is passed in or drawn from a seeded generator, so a reconstruction is
reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from ddad_edge.model.schedule import alpha_bar

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
StepNoise = Callable[[int], torch.Tensor]  # step index → that step's fresh noise z' (asked for only when η > 0)


@dataclass(frozen=True)
class StepCoefficients:
    """Scalar coefficients of one conditioned DDIM step from t to t_next (all Python floats)."""

    t: int
    sqrt_abar: float  # √ᾱ_t
    sqrt_one_minus_abar: float  # √(1−ᾱ_t)
    sqrt_abar_next: float  # √ᾱ_next
    c1: float  # weight of fresh noise z' (DDIM's σ, eq. 16)
    c2: float  # weight of ε̂


@dataclass(frozen=True)
class StartCoefficients:
    """The noising of the input to level T' (DDIM eq. 4): x_T' = sqrt_abar·x + sqrt_one_minus_abar·z."""

    sqrt_abar: float  # √ᾱ_T'
    sqrt_one_minus_abar: float  # √(1−ᾱ_T')


def start_coefficients(abar: torch.Tensor, t_prime: int) -> StartCoefficients:
    """√ᾱ_T' and √(1−ᾱ_T'), as Python floats, of the level T' the reconstruction starts from."""
    a = alpha_bar(abar, t_prime)
    return StartCoefficients(math.sqrt(a), math.sqrt(1 - a))


def step_coefficients(abar: torch.Tensor, t: int, t_next: int, eta: float) -> StepCoefficients:
    """The coefficients of the step t → t_next (t_next = −1 means the clean image)."""
    a, a_next = alpha_bar(abar, t), alpha_bar(abar, t_next)
    c1 = eta * math.sqrt((1 - a / a_next) * (1 - a_next) / (1 - a))  # DDIM eq. 16
    c2 = math.sqrt(max(1 - a_next - c1 ** 2, 0.0))
    return StepCoefficients(t, math.sqrt(a), math.sqrt(1 - a), math.sqrt(a_next), c1, c2)


def grid_coefficients(abar: torch.Tensor, timesteps: Sequence[int], eta: float) -> list[StepCoefficients]:
    """The coefficients of every step of a descending grid, the last one to the clean image."""
    nexts = list(timesteps[1:]) + [-1]
    return [step_coefficients(abar, t, t_next, eta) for t, t_next in zip(timesteps, nexts)]


def seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise of `shape` from a CPU generator seeded with `seed` (same on every machine)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


def start_noise(steps: int, channels: int, image_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The deployed noise constants of a K-step pipeline: z (1, C, S, S), the start noise of x_T', and the K
    per-step z' (K, C, S, S) of a stochastic (η > 0) grid.

    Both come from ONE seeded draw of (1 + K, C, S, S), z its first row, so the pipeline and distillation (which
    trains on the deployed trajectory) get the same z from the same call.
    """
    noise = seeded_noise((1 + steps, channels, image_size, image_size), seed)
    return noise[:1], noise[1:]


def noise_to(x: torch.Tensor, start: StartCoefficients, z: torch.Tensor) -> torch.Tensor:
    """x_T' = √ᾱ_T'·x + √(1−ᾱ_T')·z (DDIM eq. 4). x, z: (B, C, H, W), z may be (1, C, H, W)."""
    return start.sqrt_abar * x + start.sqrt_one_minus_abar * z


def conditioned_step(eps: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, k: StepCoefficients, w: float,
                     z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One conditioned DDIM step given the network output ε_t. Returns (x_next, x̂0), both (B, C, H, W)."""
    y_t = k.sqrt_abar * y + k.sqrt_one_minus_abar * eps  # DDAD: the target noised with ε_t
    eps_hat = eps - w * k.sqrt_one_minus_abar * (y_t - x_t)  # DDAD: the conditioned noise estimate
    x0 = (x_t - k.sqrt_one_minus_abar * eps_hat) / k.sqrt_abar  # DDIM eq. 9
    x_next = k.sqrt_abar_next * x0 + k.c2 * eps_hat  # DDIM eq. 12 (its σ·z' term added below)
    if k.c1 > 0:
        if z is None:
            raise ValueError("a stochastic step (eta > 0) needs its noise z'")
        x_next = x_next + k.c1 * z
    return x_next, x0


def ddim_steps(model: EpsModel, x_t: torch.Tensor, y: torch.Tensor, coefficients: Sequence[StepCoefficients],
               w: float, step_noise: StepNoise | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """THE conditioned DDIM loop: from x_t (x_T', (B, C, H, W)) yields (x_next, x̂0) after each step.

    The last step's x_next is the clean image's level (ᾱ = 1), i.e. its x̂0. `step_noise(i)` gives step i's
    z' and is called, in step order, only for a stochastic step (c1 > 0). The network sees t as a (B,) tensor
    of y's dtype and device.
    """
    for i, k in enumerate(coefficients):
        # t takes its batch size from y, the image itself in the pipeline: the exported graph then reads the
        # batch size off its input once, not off each step's x_t
        t = torch.full((y.shape[0],), float(k.t), dtype=y.dtype, device=y.device)
        eps = model(x_t, t)
        z = step_noise(i) if k.c1 > 0 and step_noise is not None else None
        x_t, x0 = conditioned_step(eps, x_t, y, k, w, z)
        yield x_t, x0


def reconstruct(model: EpsModel, x: torch.Tensor, y: torch.Tensor, abar: torch.Tensor, timesteps: list[int],
                t_prime: int, w: float, eta: float = 0.0, z: torch.Tensor | None = None,
                step_noise: list[torch.Tensor] | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Reconstruct x conditioned on y with DDIM over `timesteps` (descending, ending at 0): returns x̂0.

    x, y: (B, C, H, W) in [−1, 1]. `z` is the start noise and `step_noise` the fresh noise of each step
    (needed only when eta > 0); whatever is not given is drawn from `generator`.
    """
    def draw() -> torch.Tensor:
        return torch.randn(x.shape, generator=generator, device="cpu", dtype=x.dtype).to(x.device)

    z = draw() if z is None else z
    x_t = noise_to(x, start_coefficients(abar, t_prime), z)
    x0 = x_t
    noise = (lambda i: step_noise[i]) if step_noise is not None else (lambda i: draw())
    for _, x0 in ddim_steps(model, x_t, y, grid_coefficients(abar, timesteps, eta), w, noise):
        pass
    return x0
