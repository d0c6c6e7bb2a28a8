"""Batched tensor preprocessing: a uint8 image batch -> the model's normalised input, on its device.

Same steps as open_clip's inference preprocess (``create_model_and_transforms(...)[2]``), but on a
whole batch at once instead of one PIL image at a time:

1. gray (N,H,W) or RGB (N,H,W,3) uint8 -> (N,C,H,W) uint8 tensor on ``device``;
2. resize the shortest side to ``image_size`` (bicubic, antialiased, rounded back to uint8 as PIL
   does) and center-crop (``resize_mode="shortest"``), or resize both sides (``"squash"``);
3. gray -> 3 identical channels (after resizing: 3x less work, same result as PIL's L -> RGB);
4. scale to [0, 1] and normalise with the model's mean/std.

Resizing uses torchvision's tensor kernels (``transforms.v2.functional``), which are written to match
PIL. Measured against open_clip's PIL preprocess on the 624 PneumoniaMNIST test images
(tests/test_preprocess.py): 28 -> 28 and 224 -> 224 are bit-identical; 28 -> 224 bicubic differs in
~0.05% of pixels by at most 2 uint8 levels (PIL computes in fixed point, torch in float32), i.e. max abs
diff of the normalised tensors <= 2/255/min(std) ~ 0.030 and mean abs diff ~ 7e-6.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

if TYPE_CHECKING:
    from .load import ClipBundle

#: stated tolerance vs open_clip's PIL preprocess, in normalised units (two uint8 levels / min std)
TOLERANCE_MAX_ABS = 2.0 / 255.0 / 0.26130258 + 1e-5
TOLERANCE_MEAN_ABS = 1e-4

_INTERP = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR,
           "nearest": InterpolationMode.NEAREST}


def as_uint8_nchw(images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu") -> torch.Tensor:
    """(N,H,W) or (N,H,W,3) uint8 (numpy or torch) -> (N,1|3,H,W) uint8 tensor on ``device``."""
    if isinstance(images, np.ndarray):
        arr = np.ascontiguousarray(images)
        # A batch of a prepared split is a read-only memory map: copy it (one batch) rather than hand torch a
        # non-writable buffer (torch warns, and the tensor would alias the file's pages).
        x = torch.from_numpy(arr if arr.flags.writeable else np.array(arr))
    else:
        x = images
    if x.dtype != torch.uint8:
        raise ValueError(f"images must be uint8, got {x.dtype} (medlib.data loaders return uint8 arrays)")
    if x.ndim == 3:
        x = x.unsqueeze(1)
    elif x.ndim == 4 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"images must be (N,H,W) gray or (N,H,W,3) RGB, got shape {tuple(x.shape)}")
    return x.to(device, non_blocking=True).contiguous()


def to_model_input(
    images: np.ndarray | torch.Tensor,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    *,
    train: bool = False,
    generator: torch.Generator | None = None,
    interpolation: str = "bicubic",
    resize_mode: str = "shortest",
) -> torch.Tensor:
    """uint8 batch -> float32 (N, 3, S, S) normalised model input on ``device``.

    ``train`` must stay False: training augmentation lives in ``medlib.train.engine``; ``generator`` is
    accepted for signature compatibility and unused.
    """
    if train:
        raise ValueError("to_model_input(train=True) is not supported: medlib.train.engine applies augmentation")
    if interpolation not in _INTERP:
        raise ValueError(f"interpolation {interpolation!r} not supported; use one of {sorted(_INTERP)}")
    x = as_uint8_nchw(images, device)
    size = int(image_size)
    if resize_mode == "shortest":
        x = TF.resize(x, [size], interpolation=_INTERP[interpolation], antialias=True)
        x = TF.center_crop(x, [size, size])
    elif resize_mode == "squash":
        x = TF.resize(x, [size, size], interpolation=_INTERP[interpolation], antialias=True)
    else:
        raise ValueError(f"resize_mode {resize_mode!r} not supported; use 'shortest' or 'squash'")
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    out = x.to(torch.float32).div_(255.0)
    m = torch.as_tensor(mean, dtype=torch.float32, device=out.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=out.device).view(1, 3, 1, 1)
    return out.sub_(m).div_(s)


def bundle_input(bundle: "ClipBundle", images: np.ndarray | torch.Tensor, train: bool = False,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """:func:`to_model_input` with the bundle's size, mean/std, interpolation and device."""
    return to_model_input(images, bundle.image_size, bundle.mean, bundle.std, bundle.device, train=train,
                          generator=generator, interpolation=bundle.interpolation, resize_mode=bundle.resize_mode)


def open_clip_preprocess(image_size: int, mean: Sequence[float], std: Sequence[float],
                         interpolation: str = "bicubic", resize_mode: str = "shortest"):
    """open_clip's own per-image (PIL) inference transform, for comparison and benchmarks."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    cfg = PreprocessCfg(size=image_size, mean=tuple(mean), std=tuple(std), interpolation=interpolation,
                        resize_mode=resize_mode)
    return image_transform_v2(cfg, is_train=False)


def pil_reference(images: np.ndarray, transform) -> torch.Tensor:
    """Run a per-image PIL transform over a uint8 batch (the slow path we replace)."""
    from PIL import Image

    return torch.stack([transform(Image.fromarray(img)) for img in images])
