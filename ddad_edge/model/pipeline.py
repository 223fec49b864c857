"""The whole per-image computation in torch: conditioned reconstruction, then the anomaly map.

`DDADPipeline` is the FP32 reference every compressed variant is judged against; `FrameGraph` wraps it
with the uint8 frame input of the exported graph (ARCHITECTURE.md, "The one graph"). Both hold only
inference: no training code reaches an exported graph.
"""

from __future__ import annotations

import torch
from torch import nn

from ddad_edge.model.sampler import ddim_steps, grid_coefficients, noise_to, start_coefficients, start_noise
from ddad_edge.model.scoring import AnomalyScorer
from ddad_edge.model.unet import UNet


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
        self.coefficients = grid_coefficients(alphas_cumprod, self.timesteps, eta)
        self.start = start_coefficients(alphas_cumprod, t_prime)  # √ᾱ_T', √(1−ᾱ_T')
        s = unet.cfg.image_size
        c = unet.cfg.in_channels
        z, step_noise = start_noise(len(self.timesteps), c, s, noise_seed)
        self.register_buffer("z", z.clone())
        self.register_buffer("step_noise", step_noise.clone() if eta > 0 else torch.zeros(0))

    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """x̂0 of x conditioned on y (default y = x). (B, 3, S, S) → (B, 3, S, S)."""
        y = x if y is None else y
        x_t = noise_to(x, self.start, self.z)
        x0 = x_t
        for _, x0 in ddim_steps(self.unet, x_t, y, self.coefficients, self.w, lambda i: self.step_noise[i:i + 1]):
            pass
        return x0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scorer(x, self.reconstruct(x))


class FrameGraph(nn.Module):
    """The exported graph: frames (N, S, S, 3) uint8 RGB → (anomaly_map (N, 1, S, S), score (N,)), float32."""

    def __init__(self, pipeline: DDADPipeline) -> None:
        super().__init__()
        self.pipeline = pipeline

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.pipeline(normalise_frames(frames))


def normalise_frames(frames: torch.Tensor) -> torch.Tensor:
    """uint8 frames (N, S, S, 3) → float32 (N, 3, S, S) in [−1, 1]: the first ops of the exported graph."""
    # Cast first: TensorRT takes UINT8 only as a graph input that feeds a Cast (no UINT8 Transpose).
    return frames.float().permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0


def frames_to_tensor(frames) -> torch.Tensor:
    """uint8 frames (N, S, S, 3) numpy → float (N, 3, S, S) in [−1, 1], exactly as FrameGraph does."""
    return normalise_frames(torch.from_numpy(frames))
