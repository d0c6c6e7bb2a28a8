"""Label efficiency (notebook 04): nested k-shot draws, the runs trained on them, and their tables."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import pandas as pd

from ..config import Profile, TrainConfig
from ..data.base import DatasetBundle
from ..models import ClipBundle
from ..train import probe_config
from .runs import finetune


def few_shot(data: DatasetBundle, k: int, seed: int, draw: int = 0, val: bool = True) -> DatasetBundle:
    """``data`` with its train split (and, with ``val``, its validation split) cut to ``k`` examples per class
    (k = 0: all), the ``draw``-th random draw for ``seed``.

    Draws are nested: for one (seed, draw) each class's examples are taken in one fixed random order, so the
    1-shot subset lies inside the 4-shot one and so on. The validation subset is drawn the same way (its own
    stream), so a k-shot run selects its epoch on k labelled examples per class, not on the full validation split.
    Test is untouched. Multi-label sets are not supported (shots per class are ill-defined there).
    """
    if k <= 0:
        return data
    if data.task != "multiclass":
        raise ValueError("few_shot needs a multiclass dataset")
    splits = {**data.splits, "train": _k_per_class(data.splits["train"], k, data.num_classes, (seed, draw, 0))}
    if val:
        splits["val"] = _k_per_class(data.splits["val"], k, data.num_classes, (seed, draw, 1))
    return dataclasses.replace(data, splits=splits)


def _k_per_class(split, k: int, num_classes: int, entropy: tuple[int, ...]):
    rng = np.random.default_rng(list(entropy))
    idx = np.concatenate([rng.permutation(np.flatnonzero(split.labels == c))[:k] for c in range(num_classes)])
    return split.subset(np.sort(idx))


def few_shot_config(cfg: TrainConfig, n_train: int, min_steps: int) -> TrainConfig:
    """``cfg`` stretched so a k-shot run takes at least ``min_steps`` optimizer steps (a 2-image training set has
    one step per epoch); warmup shrinks to a tenth of the run and early stopping is off (the best epoch is still
    chosen on the validation split)."""
    steps_per_epoch = max(1, -(-n_train // cfg.batch_size))
    epochs = max(cfg.epochs, -(-min_steps // steps_per_epoch))
    return dataclasses.replace(cfg, epochs=epochs, warmup_steps=min(cfg.warmup_steps, max(1, epochs * steps_per_epoch // 10)),
                               patience=epochs)


def few_shot_run(profile: Profile, clip: ClipBundle, data: DatasetBundle, *, notebook: str, method: str, k: int,
                 draw: int, fresh: bool = False) -> dict:
    """One label-efficiency run: ``method`` (``linear-probe`` or ``label-ft``) trained on draw ``draw`` of ``k``
    examples per class (train and validation subsets drawn alike, see :func:`few_shot`), stretched to the profile's
    minimum number of steps; saved as ``<method>-<k>shot-d<draw>``. Returns the metrics record."""
    cfg = profile.label_finetune
    sub = few_shot(data, k, profile.seed, draw)
    base_cfg = probe_config(cfg.train, cfg.probe_epochs, cfg.probe_lr) if method == "linear-probe" else cfg.train
    k_cfg = few_shot_config(base_cfg, len(sub.splits["train"]), cfg.few_shot_min_steps)
    _, rec = finetune(profile, clip, sub, notebook=notebook, method=f"{method}-{k}shot-d{draw}", mode="label", cfg=k_cfg,
                      fresh=fresh, keep_weights=False,
                      extra={"shots_per_class": k, "draw": draw, "n_train": len(sub.splits["train"]),
                             "n_val": len(sub.splits["val"])})
    return rec


def label_efficiency(few_shot: Sequence[dict], full: Sequence[dict], metric: str = "acc") -> pd.DataFrame:
    """One row per run: dataset, method, shots_per_class (``all`` for the full-data runs in ``full``), draw,
    n_train, seed and the test ``metric`` (``value``). Few-shot records carry ``extra.shots_per_class``/``draw``
    (:func:`few_shot_run`)."""
    rows = []
    for r in few_shot:
        x = r.get("extra") or {}
        rows.append({"dataset": r["dataset"], "method": r["method"].rsplit(f"-{x['shots_per_class']}shot", 1)[0],
                     "shots_per_class": str(x["shots_per_class"]), "draw": x["draw"], "n_train": x.get("n_train"),
                     "seed": r.get("seed"), "value": r["metrics"].get(metric)})
    for r in full:
        rows.append({"dataset": r["dataset"], "method": r["method"], "shots_per_class": "all", "draw": None,
                     "n_train": None, "seed": r.get("seed"), "value": r["metrics"].get(metric)})
    return pd.DataFrame(rows, columns=["dataset", "method", "shots_per_class", "draw", "n_train", "seed", "value"])


def label_efficiency_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (over draws; over seeds for ``all``), min, max and count per dataset, method and shots, in the
    order the shots first appear."""
    if df.empty:
        return pd.DataFrame(columns=["dataset", "method", "shots_per_class", "mean", "sd", "min", "max", "n_runs"])
    return (df.groupby(["dataset", "method", "shots_per_class"], sort=False)
            .agg(mean=("value", "mean"), sd=("value", "std"), min=("value", "min"), max=("value", "max"),
                 n_runs=("value", "size")).reset_index())
