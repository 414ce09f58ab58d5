"""Generic camera perturbations of a training batch: shift, small rotation and zoom, blur,
contrast, brightness and sensor noise.

They are what differs between two cameras, or one camera on two days; none is tuned to a
particular drift. Every draw comes from the ``torch.Generator`` passed in, so a seeded run
perturbs the same way each time. Inputs and outputs are normalised tensors ``[N, C, H, W]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field


class Augmentation(BaseModel):
    """How strongly training images are perturbed (0 turns a perturbation off)."""

    model_config = ConfigDict(extra="forbid")

    shift: float = Field(default=0.12, ge=0, le=0.5, description="Largest shift, as a share of the size.")
    rotate_degrees: float = Field(default=15.0, ge=0, le=180, description="Largest rotation either way.")
    zoom: float = Field(default=0.1, ge=0, le=0.5, description="Largest zoom in or out, as a share.")
    blur_sigma: float = Field(default=1.0, ge=0, le=5, description="Largest Gaussian blur sigma (pixels).")
    contrast: float = Field(default=0.5, ge=0, lt=1, description="Contrast scaled by 1 +- up to this.")
    brightness: float = Field(default=0.2, ge=0, le=2, description="Largest brightness offset (normalised).")
    noise: float = Field(default=0.1, ge=0, le=2, description="Largest sensor-noise std (normalised units).")
    probability: float = Field(
        default=0.8, ge=0, le=1, description="Share of training images perturbed; the rest stay as taken."
    )


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _geometry(x: torch.Tensor, cfg: Augmentation, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    angle = _uniform(n, -cfg.rotate_degrees, cfg.rotate_degrees, gen) * (math.pi / 180.0)
    scale = _uniform(n, 1.0 - cfg.zoom, 1.0 + cfg.zoom, gen)
    tx = _uniform(n, -2 * cfg.shift, 2 * cfg.shift, gen)  # affine_grid spans -1..1, so x2
    ty = _uniform(n, -2 * cfg.shift, 2 * cfg.shift, gen)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(x: torch.Tensor, cfg: Augmentation, gen: torch.Generator) -> torch.Tensor:
    sigma = float(_uniform(1, 0.0, cfg.blur_sigma, gen)[0])
    if sigma < 0.3:
        return x
    radius = max(1, math.ceil(2 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(taps**2) / (2 * sigma * sigma))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    pad = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(pad, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _photometric(x: torch.Tensor, cfg: Augmentation, gen: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _uniform(n, 1.0 - cfg.contrast, 1.0 + cfg.contrast, gen).view(n, 1, 1, 1)
    bright = _uniform(n, -cfg.brightness, cfg.brightness, gen).view(n, 1, 1, 1)
    sigma = _uniform(n, 0.0, cfg.noise, gen).view(n, 1, 1, 1)
    noise = torch.randn(x.shape, generator=gen) * sigma
    return (x - mean) * contrast + mean + bright + noise


def perturb(x: torch.Tensor, cfg: Augmentation, gen: torch.Generator) -> torch.Tensor:
    """A perturbed copy of the batch; a share ``1 - probability`` of images is left as is."""
    if cfg.probability <= 0 or x.shape[0] == 0:
        return x
    out = _photometric(_blur(_geometry(x, cfg, gen), cfg, gen), cfg, gen)
    keep = (torch.rand(x.shape[0], generator=gen) >= cfg.probability).view(-1, 1, 1, 1)
    return torch.where(keep, x, out)
