"""The denoising UNet ε_θ(x_t, t) of DDAD and DDAD-S.

The layout of DDPM / guided-diffusion as DDAD uses it: a sinusoidal time embedding and an MLP, residual
blocks that add the time embedding after their first convolution, BigGAN-style residual blocks for
down- and up-sampling (average pooling / nearest upsampling inside the block), self-attention at
chosen feature-map resolutions, GroupNorm everywhere, and zero-initialised output convolutions so an
untrained block starts as the identity.

DDAD-S at 256 px (base 32 channels, multipliers (1,1,2,2,4,4), 2 heads) has ~8.26M parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ddad_edge.config import ModelConfig


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t (B,) float → (B, dim): [sin(t·f_k), cos(t·f_k)], f_k = 10000^(-k/half)."""
    half = dim // 2
    dtype = t.dtype if t.is_floating_point() else torch.float32
    freqs = torch.exp(torch.arange(half, device=t.device, dtype=dtype) * (-math.log(10000.0) / half))
    args = t.to(dtype)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, + time embedding, GroupNorm-SiLU-dropout-conv(zero), with a skip path.

    With `resample` = "down" / "up" the block halves / doubles the resolution between its first norm and
    its first convolution (BigGAN style), on both the residual and the skip path.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int,
                 resample: str = "none") -> None:
        super().__init__()
        self.resample = resample
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def _resample(self, x: torch.Tensor) -> torch.Tensor:
        if self.resample == "down":
            return F.avg_pool2d(x, 2)
        if self.resample == "up":
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        return x

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self._resample(F.silu(self.norm1(x)))  # (B, C_in, H', W')
        x = self._resample(x)
        h = self.conv1(h) + self.emb(F.silu(emb))[:, :, None, None]  # (B, C_out, H', W')
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all spatial positions, with a zero-initialised output projection."""

    def __init__(self, channels: int, num_heads: int, groups: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)  # (B, C, L)
        qkv = self.qkv(self.norm(flat))  # (B, 3C, L)
        ch = c // self.num_heads
        q, k, v = qkv.reshape(b * self.num_heads, 3 * ch, h * w).split(ch, dim=1)  # each (B·heads, ch, L)
        scale = ch ** -0.25  # split between q and k: keeps fp16 products in range
        weights = torch.softmax(torch.einsum("bcl,bcm->blm", q * scale, k * scale), dim=-1)  # (B·heads, L, L)
        out = torch.einsum("blm,bcm->bcl", weights, v).reshape(b, c, h * w)
        return (flat + self.proj(out)).reshape(b, c, h, w)


class Level(nn.Module):
    """One step of the encoder or decoder: a residual block, then attention where configured."""

    def __init__(self, block: ResBlock, attention: AttentionBlock | None) -> None:
        super().__init__()
        self.block = block
        self.attention = attention

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        x = self.block(x, emb)
        return self.attention(x) if self.attention is not None else x


class UNet(nn.Module):
    """ε_θ(x_t, t): images (B, C, S, S) in [-1, 1] scale and timesteps (B,) → predicted noise (B, C, S, S)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        base, groups, drop = cfg.base_channels, cfg.norm_groups, cfg.dropout
        emb_dim = 4 * base
        n_levels = len(cfg.channel_mults)
        if cfg.image_size % (2 ** (n_levels - 1)):
            raise ValueError(f"image size {cfg.image_size} is not divisible by 2^{n_levels - 1}")
        attn_at = {cfg.image_size // r for r in cfg.attention_resolutions}  # down-sampling factors

        def attention(ch: int, ds: int) -> AttentionBlock | None:
            return AttentionBlock(ch, cfg.num_heads, groups) if ds in attn_at else None

        self.time_mlp = nn.Sequential(nn.Linear(base, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.stem = nn.Conv2d(cfg.in_channels, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        ch, ds = base, 1
        for i, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                out = base * mult
                self.down.append(Level(ResBlock(ch, out, emb_dim, drop, groups), attention(out, ds)))
                ch = out
                skip_channels.append(ch)
            if i != n_levels - 1:
                self.down.append(Level(ResBlock(ch, ch, emb_dim, drop, groups, "down"), None))
                ds *= 2
                skip_channels.append(ch)

        self.middle = nn.ModuleList([
            Level(ResBlock(ch, ch, emb_dim, drop, groups), AttentionBlock(ch, cfg.num_heads, groups)),
            Level(ResBlock(ch, ch, emb_dim, drop, groups), None),
        ])

        self.up = nn.ModuleList()
        for i, mult in reversed(list(enumerate(cfg.channel_mults))):
            for j in range(cfg.num_res_blocks + 1):
                out = base * mult
                layers = [Level(ResBlock(ch + skip_channels.pop(), out, emb_dim, drop, groups), attention(out, ds))]
                ch = out
                if i and j == cfg.num_res_blocks:
                    layers.append(Level(ResBlock(ch, ch, emb_dim, drop, groups, "up"), None))
                    ds //= 2
                self.up.append(nn.ModuleList(layers))

        self.head = nn.Sequential(nn.GroupNorm(groups, ch), nn.SiLU(),
                                  _zero(nn.Conv2d(ch, cfg.in_channels, 3, padding=1)))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))  # (B, 4·base)
        h = self.stem(x)
        skips = [h]
        for level in self.down:
            h = level(h, emb)
            skips.append(h)
        for level in self.middle:
            h = level(h, emb)
        for levels in self.up:
            h = torch.cat([h, skips.pop()], dim=1)
            for level in levels:
                h = level(h, emb)
        return self.head(h)


def count_parameters(module: nn.Module) -> int:
    """Number of parameters of a module."""
    return sum(p.numel() for p in module.parameters())
