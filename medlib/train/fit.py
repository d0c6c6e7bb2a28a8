"""The epoch loop of a training run: validate before training (epoch 0), train and validate each epoch, keep the
best epoch by the validation metric, checkpoint every epoch atomically, resume exactly after an interruption.

``fit(bundle, data, mode=..., cfg=..., run_dir=..., seed=...)`` fine-tunes a copy of ``bundle`` on
``data.splits["train"]`` (the steps are :class:`medlib.train.engine.Engine`'s) and checkpoints every epoch to
``run_dir/last.pt`` (+ ``best.pt``). Calling it again with the same ``run_dir`` resumes from ``last.pt`` (or returns
at once if that run had finished) unless ``fresh=True``. Every run's ``log.csv`` starts with an epoch-0 row: the
validation metric before the first update (for label/multilabel modes, the zero-shot classifier's).
With ``log_to=["tensorboard"]`` (the profile's ``log_to``) the same curves also go to TensorBoard, as open_clip's
training script writes them: ``run_dir/tensorboard/`` (train loss, validation metric, learning rate per epoch).
Checkpoints hold only what the run changes, as plain tensors any PyTorch user reads
(``torch.load(path, weights_only=True)["model"]``), and shrink to a small record once the run has finished
(``checkpoint.py``).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn as nn

from ..config import TrainConfig
from ..data.base import DatasetBundle
from ..errors import MedlibError
from ..files import write_text
from ..models import ClipBundle
from . import checkpoint
from .distributed import barrier
from .engine import Engine
from .heads import check_mode
from .result import HISTORY_COLUMNS, TrainResult


def fit(bundle: ClipBundle, data: DatasetBundle, *, mode: str, cfg: TrainConfig, run_dir: Path, seed: int,
          class_texts: list[list[str]] | None = None, loss: str = "ce", loss_kwargs: dict | None = None,
          sampler: str = "none", fresh: bool = False, progress: bool = True,
          init_head: nn.Linear | None = None, negative_texts: list[list[str]] | None = None,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
          log_to: Sequence[str] = ()) -> TrainResult:
    """Fine-tune a copy of ``bundle`` on ``data`` (train split; val for selection) and return the best model.

    ``class_texts``: prompts per class (head init, zero-shot validation, label-generated captions);
    default: the domain's templates from ``medlib.models.prompts``. ``loss``: label mode ce | weighted_ce |
    focal | logit_adjust; multilabel bce (= ce) | weighted_bce | focal | logit_adjust; options in
    ``loss_kwargs`` (weights="inverse_freq"|"effective_number"|list, beta, gamma, tau, alpha).
    ``init_head``: start from this head instead of the text-initialised one (LP-FT).
    ``negative_texts``: multilabel only, the "absent" prompts per class; the head starts as the zero-shot
    classifier ``s * (pos - neg)`` (default: the domain's negative templates, as ``medlib.models.zeroshot``).
    ``on_epoch_end(epoch, row)``: called after each epoch's checkpoint is written.
    ``log_to``: ``["tensorboard"]`` also writes the epochs' curves under ``run_dir/tensorboard/``.
    """
    check_mode(mode)
    check_log_to(log_to)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    eng = Engine(bundle, data, mode, cfg, seed, class_texts, loss, dict(loss_kwargs or {}), sampler, init_head,
                 negative_texts)
    last, best_path = run_dir / "last.pt", run_dir / "best.pt"
    history: list[dict[str, Any]] = []
    start, best, best_epoch, bad, resumed_from = 0, -math.inf, 0, 0, None
    w = eng.world  # several processes: every rank reads the same last.pt; rank 0 alone writes
    resume = last.exists() and not fresh
    barrier(w)  # every rank has decided before rank 0 removes anything
    if resume:
        ck = checkpoint.load(last, eng.signature)
        history, start, best, best_epoch, bad = ck["history"], ck["epoch"], ck["best"], ck["best_epoch"], ck["bad"]
        resumed_from = start
        if ck["finished"] and ck.get("weights_dropped"):  # evaluated once and not kept: no model to return
            return dataclasses.replace(eng.result(run_dir, history, best_epoch, best, resumed_from), model=None,
                                       head=None)
        if ck["finished"]:  # a small record: the weights are best.pt's
            eng.load_model_state(checkpoint.load(best_path, eng.signature), best_path)
            return eng.result(run_dir, history, best_epoch, best, resumed_from)
        eng.load_model_state(ck, last)
        eng.opt.load_state_dict(ck["optimizer"])
        eng.sched.load_state_dict(ck["scheduler"])
        eng.set_rng_state(ck["rng"])
    else:
        # seed the global RNGs too (dropout, anything drawing from them); shuffling uses our generators
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        # a fresh start drops the old run's checkpoints at once: if it is interrupted before its first
        # epoch is saved, the next call must not resume the old run (nor find it without its best.pt)
        if w.main:
            for stale in (last, best_path, run_dir / "log.csv"):
                stale.unlink(missing_ok=True)
        barrier(w)
        # epoch 0: where training starts (label/multilabel: the zero-shot classifier). Logged, not selectable.
        t0 = time.perf_counter()
        history.append({"epoch": 0, "train_loss": math.nan, "val_metric": eng.validate(), "lr": math.nan,
                        "seconds": time.perf_counter() - t0, "images_per_s": math.nan})
    writer = curve_writer(run_dir, log_to) if w.main else None
    if not resume:
        log_curves(writer, history[0], eng.metric_name)
    finished = False
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            train_loss, seen = eng.train_epoch(epoch, progress)
            t_train = time.perf_counter() - t0
            metric = eng.validate()
            row = {"epoch": epoch, "train_loss": train_loss, "val_metric": metric,
                   "lr": eng.opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
                   "images_per_s": seen / max(t_train, 1e-9)}
            history.append(row)
            if metric > best:  # strictly better: ties keep the earlier epoch
                best, best_epoch, bad = metric, epoch, 0
                if w.main:
                    checkpoint.save(best_path, {"signature": eng.signature, "model": eng.model_state(),
                                                "base": eng.base_digest, "epoch": epoch, "metric": metric})
            else:
                bad += 1
            finished = epoch == cfg.epochs or (cfg.patience > 0 and bad >= cfg.patience)
            record = {"signature": eng.signature, "epoch": epoch, "best": best, "best_epoch": best_epoch, "bad": bad,
                      "history": history, "finished": finished}
            if not finished:  # what an exact resume needs; a finished run keeps the small record alone
                record.update(model=eng.model_state(), base=eng.base_digest, optimizer=eng.opt.state_dict(),
                              scheduler=eng.sched.state_dict(), rng=eng.rng_state())
            if w.main:
                checkpoint.save(last, record)
                write_text(run_dir / "log.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(index=False))
                log_curves(writer, row, eng.metric_name)
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
            barrier(w)  # the checkpoint is complete before any rank goes on (or is killed)
            if finished:
                break
    finally:
        if writer is not None:
            writer.close()
    if not best_path.exists():  # zero epochs requested
        raise MedlibError(f"{run_dir}: no epoch was trained (epochs={cfg.epochs}). Fix: set epochs >= 1")
    eng.load_model_state(checkpoint.load(best_path, eng.signature), best_path)
    return eng.result(run_dir, history, best_epoch, best, resumed_from)


# ---- training curves in TensorBoard ---------------------------------------------------------------------

LOG_TO = ("tensorboard",)
TENSORBOARD_FIX = ("pip install tensorboard (or pip install -e '.[tensorboard]'), or remove tensorboard from the "
                   "profile's log_to")


def check_log_to(log_to: Sequence[str]) -> None:
    """A one-line MedlibError for an unknown ``log_to`` entry, or for ``tensorboard`` without its package."""
    unknown = sorted(set(log_to) - set(LOG_TO))
    if unknown:
        raise MedlibError(f"log_to: unknown {unknown}. Fix: use [] or {list(LOG_TO)}")
    if "tensorboard" in log_to:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401 - needs the tensorboard package
        except ImportError:
            raise MedlibError("log_to: [tensorboard]: the tensorboard package is not installed. "
                              f"Fix: {TENSORBOARD_FIX}") from None


def curve_writer(run_dir: Path, log_to: Sequence[str]) -> Any:
    """torch's TensorBoard ``SummaryWriter`` on ``run_dir/tensorboard/`` when ``log_to`` asks for it, else None."""
    if "tensorboard" not in log_to:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def log_curves(writer: Any, row: dict[str, Any], metric_name: str) -> None:
    """One epoch's row of log.csv as TensorBoard scalars (open_clip's names: ``train/loss``, ``train/lr``,
    ``val/<metric>``), written to disk at once; epoch 0 (before training) has the validation metric alone."""
    if writer is None:
        return
    step = int(row["epoch"])
    for tag, value in (("train/loss", row["train_loss"]), ("train/lr", row["lr"]), (f"val/{metric_name}",
                                                                                  row["val_metric"])):
        if value is not None and math.isfinite(value):
            writer.add_scalar(tag, float(value), step)
    writer.flush()
