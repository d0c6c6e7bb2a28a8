"""What a training run returns (:class:`TrainResult`) and the columns of its ``log.csv``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch.nn as nn

from ..config import TrainConfig
from ..models import ClipBundle

MODES = ("contrastive", "label", "multilabel")
HISTORY_COLUMNS = ["epoch", "train_loss", "val_metric", "lr", "seconds", "images_per_s"]


@dataclass
class TrainResult:
    """What :func:`medlib.train.train` returns; ``model`` holds the best epoch's weights."""

    model: ClipBundle | None  # None: a finished run whose weights were not kept (checkpoint.drop_weights)
    history: pd.DataFrame  # epoch, train_loss, val_metric, lr, seconds, images_per_s
    best_epoch: int
    run_dir: Path
    resumed_from: int | None  # epoch the run resumed after (None: started fresh)
    head: nn.Linear | None = None  # classifier head (label/multilabel; contrastive: from class texts)
    mode: str = "label"
    metric_name: str = "acc"
    best_metric: float = float("nan")
    cfg: TrainConfig | None = None  # the configuration the (last stage of the) run trained with
