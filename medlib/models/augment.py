"""Batched image augmentation on model-input tensors (no PIL, one ``grid_sample`` per batch).

``augment_batch`` takes the normalised (N, 3, S, S) tensor that ``medlib.preprocess.to_model_input``
returns, undoes the normalisation, applies per-image random resized crop (scale 0.8-1), small
rotation (+-10 deg), optional horizontal flip, brightness/contrast (+-0.1), and normalises again.
All random numbers come from a CPU ``torch.Generator`` so a seed (and its saved state) gives the same
augmentations on CPU and GPU. Written here because torchvision's v2 transforms draw one set of
parameters per call (the whole batch would share one crop) and use the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    scale: tuple[float, float] = (0.8, 1.0)  # area fraction kept by the random resized crop
    ratio: tuple[float, float] = (3 / 4, 4 / 3)  # aspect ratio of the crop
    degrees: float = 10.0  # rotation range +-degrees
    brightness: float = 0.1  # multiplicative factor in [1 - b, 1 + b]
    contrast: float = 0.1  # blend with the image mean, factor in [1 - c, 1 + c]
    hflip: bool = False  # off by default: chest X-rays are not left-right symmetric


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)


def random_affine_params(n: int, gen: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """(n, 2, 3) affine matrices (output -> input coordinates, in [-1, 1] units) for ``affine_grid``."""
    area = _uniform(n, *cfg.scale, gen)
    log_r = _uniform(n, math.log(cfg.ratio[0]), math.log(cfg.ratio[1]), gen)
    r = torch.exp(log_r)
    w = torch.sqrt(area * r).clamp(max=1.0)  # crop width / image width
    h = torch.sqrt(area / r).clamp(max=1.0)
    tx = _uniform(n, -1.0, 1.0, gen) * (1 - w)  # crop centre stays inside the image
    ty = _uniform(n, -1.0, 1.0, gen) * (1 - h)
    ang = torch.deg2rad(_uniform(n, -cfg.degrees, cfg.degrees, gen))
    flip = torch.ones(n, dtype=torch.float64)
    if cfg.hflip:
        flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0).double()
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([
        torch.stack([cos * w * flip, -sin * h, tx], dim=1),
        torch.stack([sin * w * flip, cos * h, ty], dim=1),
    ], dim=1)
    return theta


def augment_batch(x: torch.Tensor, gen: torch.Generator, mean: tuple[float, ...], std: tuple[float, ...],
                  cfg: AugmentConfig | None = None, *, rows: slice | None = None,
                  total: int | None = None) -> torch.Tensor:
    """Augment a normalised (N, 3, S, S) float batch; returns a new tensor of the same shape/device.

    ``rows``/``total``: ``x`` holds rows ``rows`` of a batch of ``total`` images (one process's share under
    several processes): the parameters are drawn for all ``total`` images, as one process would, and this
    share's rows are applied -- so the union of the shares is the single-process augmentation.
    """
    cfg = cfg or AugmentConfig()
    n = x.shape[0]
    total = n if total is None else total
    rows = slice(0, n) if rows is None else rows
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    img = x * s + m  # back to [0, 1]
    theta = random_affine_params(total, gen, cfg)[rows].to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    b = _uniform(total, 1 - cfg.brightness, 1 + cfg.brightness, gen)[rows].to(img).view(n, 1, 1, 1)
    c = _uniform(total, 1 - cfg.contrast, 1 + cfg.contrast, gen)[rows].to(img).view(n, 1, 1, 1)
    img = (img * b).clamp(0, 1)
    mu = img.mean(dim=(1, 2, 3), keepdim=True)
    img = (c * img + (1 - c) * mu).clamp(0, 1)
    return (img - m) / s
