"""OpenCLIP model loading: a named tag, an hf-hub id, a local checkpoint, or a registered tiny config.

(Skeleton: the models helper completes checkpoints, error handling and tests; the public names
below are the contract other modules code against.)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch

from .config import ModelSpec

CONFIG_DIR = Path(__file__).parent / "model_configs"
open_clip.add_model_config(CONFIG_DIR)


@dataclass
class ClipBundle:
    """A loaded CLIP model and everything needed to feed it."""

    model: torch.nn.Module  # open_clip CLIP / CustomTextCLIP: encode_image, encode_text, logit_scale
    tokenizer: Callable[[list[str]], torch.Tensor]  # texts -> (N, context_length) token ids
    image_size: int  # square input side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str  # ModelSpec.name (used in run names)
    display: str  # human label for tables/figures
    arch: str
    pretrained: str
    device: torch.device

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "pretrained": self.pretrained, "image_size": self.image_size,
                "params_m": round(sum(p.numel() for p in self.model.parameters()) / 1e6, 3)}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_model(spec: ModelSpec, device: str | torch.device = "cpu") -> ClipBundle:
    """Load ``spec`` through open_clip and return a :class:`ClipBundle` in eval mode on ``device``."""
    device = resolve_device(device) if isinstance(device, str) else device
    pretrained = spec.pretrained or None
    model, _, preprocess = open_clip.create_model_and_transforms(spec.arch, pretrained=pretrained, device=device)
    tokenizer = open_clip.get_tokenizer(spec.arch)
    visual = model.visual
    size = visual.image_size
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(getattr(visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN)
    std = tuple(getattr(visual, "image_std", None) or open_clip.OPENAI_DATASET_STD)
    model.eval()
    return ClipBundle(model=model, tokenizer=tokenizer, image_size=size, mean=mean, std=std, name=spec.name,
                      display=spec.display or f"{spec.arch}:{spec.pretrained or 'random'}", arch=spec.arch,
                      pretrained=spec.pretrained, device=device)
