"""The conditioned DDIM reconstruction of DDAD, as pure math apart from the network.

Symbols (DDAD, eq. numbers of the paper's Sec. 3):
  x_t   current sample                    y      conditioning target (the input image itself at test time)
  ᾱ_t   alphas_cumprod[t]                 ε_t    ε_θ(x_t, t), the network's noise estimate
  y_t   √ᾱ_t·y + √(1−ᾱ_t)·ε_t, the target noised with the network's own noise
  ε̂    ε_t − w·√(1−ᾱ_t)·(y_t − x_t), the conditioned noise estimate (w: conditioning weight)
  x̂0   (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t, pred_original_sample
  x_next = √ᾱ_next·x̂0 + c1·z' + c2·ε̂, c1 = η·√((1−ᾱ_t/ᾱ_next)(1−ᾱ_next)/(1−ᾱ_t)), c2 = √(1−ᾱ_next−c1²)

The start is x_T' = √ᾱ_T'·x + √(1−ᾱ_T')·z. All noise (z, and z' per step when η > 0) is passed in or
drawn from a seeded generator, so a reconstruction is reproducible.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ddad_edge.model.schedule import alpha_bar

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class StepCoefficients:
    """Scalar coefficients of one conditioned DDIM step from t to t_next (all Python floats)."""

    t: int
    sqrt_abar: float  # √ᾱ_t
    sqrt_one_minus_abar: float  # √(1−ᾱ_t)
    sqrt_abar_next: float  # √ᾱ_next
    c1: float  # weight of fresh noise z'
    c2: float  # weight of ε̂


def step_coefficients(abar: torch.Tensor, t: int, t_next: int, eta: float) -> StepCoefficients:
    """The coefficients of the step t → t_next (t_next = −1 means the clean image)."""
    a, a_next = alpha_bar(abar, t), alpha_bar(abar, t_next)
    c1 = eta * math.sqrt((1 - a / a_next) * (1 - a_next) / (1 - a))
    c2 = math.sqrt(max(1 - a_next - c1 ** 2, 0.0))
    return StepCoefficients(t, math.sqrt(a), math.sqrt(1 - a), math.sqrt(a_next), c1, c2)


def noise_to(x: torch.Tensor, abar: torch.Tensor, t_prime: int, z: torch.Tensor) -> torch.Tensor:
    """x_T' = √ᾱ_T'·x + √(1−ᾱ_T')·z. x, z: (B, C, H, W)."""
    a = alpha_bar(abar, t_prime)
    return math.sqrt(a) * x + math.sqrt(1 - a) * z


def conditioned_step(eps: torch.Tensor, x_t: torch.Tensor, y: torch.Tensor, k: StepCoefficients, w: float,
                     z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One conditioned DDIM step given the network output ε_t. Returns (x_next, x̂0), both (B, C, H, W)."""
    y_t = k.sqrt_abar * y + k.sqrt_one_minus_abar * eps
    eps_hat = eps - w * k.sqrt_one_minus_abar * (y_t - x_t)
    x0 = (x_t - k.sqrt_one_minus_abar * eps_hat) / k.sqrt_abar
    x_next = k.sqrt_abar_next * x0 + k.c2 * eps_hat
    if k.c1 > 0:
        if z is None:
            raise ValueError("a stochastic step (eta > 0) needs its noise z'")
        x_next = x_next + k.c1 * z
    return x_next, x0


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
    x_t = noise_to(x, abar, t_prime, z)
    x0 = x_t
    nexts = list(timesteps[1:]) + [-1]
    for i, (t, t_next) in enumerate(zip(timesteps, nexts)):
        k = step_coefficients(abar, t, t_next, eta)
        zi = None
        if k.c1 > 0:
            zi = step_noise[i] if step_noise is not None else draw()
        eps = model(x_t, torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype))
        x_t, x0 = conditioned_step(eps, x_t, y, k, w, zi)
    return x0
