"""Learning-rate schedule: linear warmup, then cosine decay (or constant), per optimizer step."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ..errors import MedlibError

SCHEDULERS = ("cosine", "constant")


def lr_lambda(warmup: int, total: int, kind: str) -> Callable[[int], float]:
    """Multiplier of the base lr at optimizer step ``step`` (0-based)."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        e = step - warmup
        es = max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(e, es) / es))
    return f


def build_scheduler(opt: torch.optim.Optimizer, kind: str, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    if kind not in SCHEDULERS:
        raise MedlibError(f"TrainConfig.scheduler={kind!r}: unknown. Fix: use cosine or constant")
    return torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(warmup, total, kind))
