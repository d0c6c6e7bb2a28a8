"""Training figures: learning curves, WiSE-FT curves, seeds per method, label efficiency."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ...errors import fail
from ..names import axis_label, metric_name, method_name
from .figure import reference_lines, titled, unit_axis, wrap


def learning_curve(history: pd.DataFrame, title: str = "Learning curve", val_label: str = "val metric") -> Figure:
    """Training loss and validation metric per epoch (columns ``epoch``, ``train_loss``, ``val_metric``).

    A ``stage`` column (LP-FT: ``probe`` then ``ft``) draws the stages one after the other on one axis, each
    shaded and labelled, instead of both over epochs 1..n. Epoch ticks are integers; a metric in [0, 1] is drawn
    on the fixed scale 0..1."""
    missing = {"epoch", "train_loss", "val_metric"} - set(history.columns)
    if missing:
        raise fail("learning_curve", f"history lacks columns {sorted(missing)}",
                   "log epoch, train_loss, val_metric per epoch")
    h = history.reset_index(drop=True)
    val_label = axis_label(val_label)  # "val balanced_acc" -> "val balanced accuracy"
    stages = list(dict.fromkeys(h["stage"].astype(str))) if "stage" in h.columns else []
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    if len(stages) > 1:  # consecutive: step = running count over all stages
        x = np.arange(len(h), dtype=float)
        names = {"probe": "linear probe", "ft": "fine-tune"}
        start = 0
        for i, st in enumerate(stages):
            n = int((h["stage"].astype(str) == st).sum())
            if i % 2 == 0:
                ax.axvspan(start - 0.5, start + n - 0.5, color="0.93", zorder=0)
            ax.text(start + (n - 1) / 2, 1.0, names.get(st, st), transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=8)
            start += n
        ticks = [f"{names.get(st, st)[:1].upper()}{int(e)}" for st, e in zip(h["stage"].astype(str), h["epoch"])]
        ax.set_xticks(x, ticks, fontsize=7)
        ax.set_xlabel("epoch within stage (stages one after the other)")
    else:
        x = h["epoch"].to_numpy(dtype=float)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
    ax.plot(x, h["train_loss"], "o-", color="tab:red", label="train loss")
    ax.set_ylabel("train loss", color="tab:red")
    losses = h["train_loss"].to_numpy(dtype=float)
    top = np.nanmax(losses) if np.isfinite(losses).any() else 1.0
    ax.set_ylim(0, top * 1.1 if top > 0 else 1.0)  # from 0, with room above the highest point
    ax2 = ax.twinx()
    ax2.plot(x, h["val_metric"], "s-", color="tab:blue", label=val_label)
    ax2.set_ylabel(val_label, color="tab:blue")
    unit = unit_axis(h["val_metric"].tolist())
    if unit:
        ax2.set_ylim(*unit)
    return titled(fig, title)


WISE_SUBTITLE = "all weights interpolated: θ = (1 − α)·θ_zero-shot + α·θ_fine-tuned"


def wise_curve(alphas: Sequence[float], acc: Sequence[float], other: Sequence[float] | None = None,
               title: str = "WiSE-FT: zero-shot and fine-tuned weights interpolated", acc_label: str = "accuracy",
               other_label: str = "general-domain recall") -> Figure:
    """Metric against the WiSE-FT mixing weight alpha (0 = zero-shot, 1 = fine-tuned); ``other`` on a second
    axis (e.g. general-domain retrieval recall). The axes title always says what is interpolated; metrics in
    [0, 1] are drawn on the fixed scale 0..1."""
    acc_label, other_label = axis_label(acc_label), axis_label(other_label)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ax.plot(alphas, acc, "o-", color="tab:blue", label=acc_label)
    ax.set_xlabel("alpha (0 = zero-shot model, 1 = fine-tuned model)")
    ax.set_ylabel(acc_label, color="tab:blue")
    unit = unit_axis(list(acc))
    if unit:
        ax.set_ylim(*unit)
    if other is not None:
        ax2 = ax.twinx()
        ax2.plot(alphas, other, "s--", color="tab:orange", label=other_label)
        ax2.set_ylabel(other_label, color="tab:orange")
        unit = unit_axis(list(other))
        if unit:
            ax2.set_ylim(*unit)
    ax.set_title(WISE_SUBTITLE, fontsize=8)
    return titled(fig, title)


def seed_bars(summary: pd.DataFrame, metric: str, title: str = "", majority: float | None = None) -> Figure:
    """Bars of the mean over seeds of ``metric`` per method (rows of :func:`medlib.outputs.tables.seed_summary`), whiskers
    from the lowest to the highest seed, each seed's count under its label; the majority-class rate (accuracy) or
    AUROC 0.5 as a reference line. The value axis spans 0-1, so small differences are not blown up."""
    df = summary[summary["metric"] == metric].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(df) + 2), 3.8))
    if df.empty:  # e.g. accuracy of a multi-label set: say so instead of drawing empty axes
        ax.axis("off")
        ax.text(0.5, 0.5, f"not applicable: no run has a test {metric_name(metric)}"
                + (" (multi-label sets are scored by AUROC)" if metric == "acc" else ""), ha="center",
                va="center", fontsize=10, color="0.3", transform=ax.transAxes)
        return titled(fig, title)
    for i, row in df.iterrows():
        err = [[row["mean"] - row["min"]], [row["max"] - row["mean"]]] if row["n_seeds"] > 1 else None
        ax.bar(i, row["mean"], 0.7, yerr=err, capsize=4, color="tab:blue")
        ax.text(i, 0.02, f"{row['mean']:.3f}", ha="center", va="bottom", color="white", fontsize=8)
    reference_lines(ax, majority if metric in ("acc", "top3") else None, chance_auroc=metric == "auroc")
    ax.set_xticks(range(len(df)), [f"{wrap(method_name(m), 18)}\n({n} seed{'s' if n > 1 else ''})"
                                   for m, n in zip(df["method"], df["n_seeds"])], fontsize=8)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel(f"test {metric_name(metric)} (mean over seeds; whiskers min–max)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return titled(fig, title)


def label_efficiency_plot(summary: pd.DataFrame, zero_shot: float | None = None, majority: float | None = None,
                          title: str = "", ylabel: str = "test accuracy") -> Figure:
    """Test metric against training examples per class (rows of :func:`medlib.studies.few_shot.label_efficiency_summary`):
    one line per method at the mean over draws with a ± 1 sd band, the zero-shot score and the majority-class
    rate as flat reference lines."""
    shots = list(dict.fromkeys(summary["shots_per_class"].astype(str)))
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for method, d in summary.groupby("method", sort=False):
        x = [shots.index(str(s)) for s in d["shots_per_class"]]
        mean, sd = d["mean"].to_numpy(float), np.nan_to_num(d["sd"].to_numpy(float))
        ax.plot(x, mean, "o-", label=f"{method_name(method)} (mean ± sd over draws)")
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    if zero_shot is not None:
        ax.axhline(zero_shot, color="tab:red", ls="--", lw=1.2, label=f"zero-shot {zero_shot:.3f}")
    reference_lines(ax, majority)
    ax.set_xticks(range(len(shots)), shots)
    ax.set_xlabel("training examples per class")
    ax.set_ylabel(axis_label(ylabel))
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return titled(fig, title)
