"""What trains and how: which parameters are trainable, their weight-decay groups, the optimizer."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ..errors import MedlibError

OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}


def set_trainable(clip: nn.Module, lock_image: bool, lock_text: bool, mode: str) -> None:
    """Freeze/unfreeze the towers: the logit scale trains in contrastive mode only; the text tower
    never trains in label/multilabel modes (they do not run it)."""
    for n, p in clip.named_parameters():
        is_image = n.startswith("visual.")
        is_scale = n.startswith("logit_")
        if is_scale:
            p.requires_grad_(mode == "contrastive")
        elif is_image:
            p.requires_grad_(not lock_image)
        else:
            p.requires_grad_(mode == "contrastive" and not lock_text)


def param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip's training-script rule: no weight decay on parameters with ``ndim <= 1`` (gains, biases,
    norms, embeddings' scalars) nor on the logit scale/bias; everything else (weight matrices, convolution
    kernels, embedding tables) decays -- whatever the parameter is called."""
    decay, no_decay = [], []
    for n, p in module.named_parameters():
        if not p.requires_grad:
            continue
        excluded = p.ndim <= 1 or n.rsplit(".", 1)[-1] in ("logit_scale", "logit_bias")
        (no_decay if excluded else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(module: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW with decoupled decay on the decay group, or classic Adam (L2 decay on all, only where asked)."""
    params = param_groups(module, weight_decay)
    if not any(g["params"] for g in params):
        raise MedlibError("finetune: nothing to train (both towers locked). Fix: unlock a tower")
    opt_cls = OPTIMIZERS.get(name)
    if opt_cls is None:
        raise MedlibError(f"TrainConfig.optimizer={name!r}: unknown. Fix: use adamw or adam")
    if name == "adam":
        params = [{"params": [p for g in params for p in g["params"]], "weight_decay": weight_decay}]
    return opt_cls(params, lr=lr)
