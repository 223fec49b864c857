"""The whole per-image computation in torch: conditioned reconstruction, then the anomaly map.

`DDADPipeline` is the FP32 reference every compressed variant is judged against; `FrameGraph` wraps it
with the uint8 frame input of the exported graph (ARCHITECTURE.md, "The one graph"). Both hold only
inference: no training code reaches an exported graph.
"""

from __future__ import annotations

import torch
from torch import nn

from ddad_edge.model.sampler import conditioned_step, step_coefficients
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.model.unet import UNet


def seeded_noise(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Standard normal noise of `shape` from a CPU generator seeded with `seed` (same on every machine)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


class DDADPipeline(nn.Module):
    """Images x (B, 3, S, S) in [−1, 1] → (anomaly_map (B, 1, S, S), score (B,)).

    The reconstruction starts from x_T' with the fixed noise constant `z` (1, 3, S, S), shared by every
    image, so a frame's result does not depend on its batch. With eta > 0 the per-step noise is a fixed
    seeded constant too. `timesteps` is the descending DDIM grid (e.g. 225, 200, …, 0).
    """

    def __init__(self, unet: UNet, scorer: AnomalyScorer, alphas_cumprod: torch.Tensor, timesteps: list[int],
                 t_prime: int, w: float, eta: float = 0.0, noise_seed: int = 0) -> None:
        super().__init__()
        self.unet = unet
        self.scorer = scorer
        self.timesteps = list(timesteps)
        self.t_prime = t_prime
        self.w = float(w)
        self.eta = float(eta)
        nexts = self.timesteps[1:] + [-1]
        self.coefficients = [step_coefficients(alphas_cumprod, t, n, eta) for t, n in zip(self.timesteps, nexts)]
        self.start = step_coefficients(alphas_cumprod, t_prime, -1, 0.0)  # √ᾱ_T', √(1−ᾱ_T')
        s = unet.cfg.image_size
        c = unet.cfg.in_channels
        noise = seeded_noise((1 + len(self.timesteps), c, s, s), noise_seed)
        self.register_buffer("z", noise[:1].clone())
        self.register_buffer("step_noise", noise[1:].clone() if eta > 0 else torch.zeros(0))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x̂0 of x conditioned on y (default y = x). (B, 3, S, S) → (B, 3, S, S)."""
        y = x if y is None else y
        x_t = self.start.sqrt_abar * x + self.start.sqrt_one_minus_abar * self.z
        x0 = x_t
        for i, k in enumerate(self.coefficients):
            t = torch.full((x.shape[0],), float(k.t), dtype=x.dtype, device=x.device)
            eps = self.unet(x_t, t)
            z = self.step_noise[i:i + 1] if k.c1 > 0 else None
            x_t, x0 = conditioned_step(eps, x_t, y, k, self.w, z)
        return x0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer(x, self.reconstruct(x))


class FrameGraph(nn.Module):
    """The exported graph: frames (N, S, S, 3) uint8 RGB → (anomaly_map (N, 1, S, S), score (N,)), float32."""

    def __init__(self, pipeline: DDADPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Cast first: TensorRT takes UINT8 only as a graph input that feeds a Cast (no UINT8 Transpose).
        x = frames.float().permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0  # (N, 3, S, S) in [−1, 1]
        return self.pipeline(x)


def frames_to_tensor(frames) -> torch.Tensor:
    """uint8 frames (N, S, S, 3) numpy → float (N, 3, S, S) in [−1, 1], exactly as FrameGraph does."""
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    return t * (2.0 / 255.0) - 1.0



