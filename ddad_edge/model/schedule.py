"""The forward noise process: ᾱ_t of a linear beta schedule, and DDIM step grids.

Index convention (DDPM, as in DDAD's code): timesteps run 0..T-1, ᾱ_t = Π_{s≤t} (1 − β_s), so even t = 0
carries a little noise; ᾱ_{−1} = 1 is the clean image, the target of the last DDIM step.
"""

from __future__ import annotations

import torch

from ddad_edge.config import DiffusionConfig


def alphas_cumprod(cfg: DiffusionConfig) -> torch.Tensor:
    """ᾱ_t for t = 0..T−1 (float64, shape (T,)) of the linear schedule β_t from beta_start to beta_end."""
    betas = torch.linspace(cfg.beta_start, cfg.beta_end, cfg.num_timesteps, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, dim=0)


def alpha_bar(abar: torch.Tensor, t: int) -> float:
    """ᾱ_t as a Python float, with ᾱ_{−1} = 1."""
    return 1.0 if t < 0 else float(abar[t])


def ddim_timesteps(t_prime: int, skip: int) -> list[int]:
    """The conditioned DDIM grid, descending: T'−skip, T'−2·skip, …, 0 (DDAD: T'=250, skip 25 → 225…0).

    The image is noised to level T' and each network call at t steps to the next grid point, the last
    one (t = 0) to the clean image.
    """
    if skip <= 0 or t_prime <= 0 or t_prime % skip:
        raise ValueError(f"T'={t_prime} must be a positive multiple of skip={skip}")
    return list(range(t_prime - skip, -1, -skip))


def level_grid(level: int, steps: int) -> list[int]:
    """DDIM's own K-step grid from noise level L, descending: L, L−L/K, …, L/K (L=100, K=2 → 100, 50).

    Unlike `ddim_timesteps` (DDAD's grid, whose first network call is one skip below the level the image was
    noised to), the first call is at the level itself, so one step is a whole denoising step: x̂0 =
    (x_L − √(1−ᾱ_L)·ε_θ(x_L, L)) / √ᾱ_L. On DDAD's grid one step would be the call at t = 0.
    """
    if steps <= 0 or level <= 0 or level % steps:
        raise ValueError(f"level {level} must be a positive multiple of steps={steps}")
    return list(range(level, 0, -(level // steps)))


def halve_grid(timesteps: list[int]) -> list[int]:
    """The step grid of a distilled student: every second timestep of its teacher's grid.

    A teacher grid [t_0 > t_1 > … > t_{K−1}] with K even becomes [t_0, t_2, …, t_{K−2}]: one student step
    from t_{2i} lands where two teacher steps land (t_{2i+2}, or the clean image after the last).
    """
    if len(timesteps) % 2:
        raise ValueError(f"cannot halve a grid of {len(timesteps)} steps: it must have an even number")
    return list(timesteps[0::2])
