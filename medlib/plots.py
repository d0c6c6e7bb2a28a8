"""Figures: small generic plot helpers that take arrays/DataFrames and return a matplotlib Figure, and
:func:`save_figure`, which writes ``reports/<profile>/figures/<name>.png`` atomically and marks smoke figures.

Helpers put their title in the figure's suptitle so ``save_figure`` can prefix it with "SMOKE — " on smoke
profiles. Nothing here needs a display (works under the Agg backend); in a notebook the inline backend
shows each figure at the end of its cell.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt  # without a display matplotlib falls back to Agg by itself
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve

from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator

from .config import Profile
from .errors import fail
from .io import write_bytes
from .results import reports_dir, slug

SMOKE_PREFIX = "SMOKE — "
GENERATED_MARK = "GENERATED DATA"
NOT_COMPARABLE = "NOT COMPARABLE"
DPI = 110
PAGE_WIDTH_IN = 9.0  # widest figure: 9 in at 110 dpi, scaled to the report's text width stays legible
# Qualitative palette with 14+ distinct colours: tab20's saturated shades first, then its light ones.
PALETTE = [plt.get_cmap("tab20")(i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2))]


def save_figure(fig: Figure, profile: Profile, name: str) -> Path:
    """Write ``fig`` to ``reports/<profile>/figures/<name>.png`` atomically and return the path.

    ``name`` follows ``<NN>_<what>__<dataset>__<model>__<method>`` (NN = notebook number), e.g.
    ``02_confusion__pneumoniamnist__tiny__zero-shot``. On smoke profiles the suptitle gets the prefix
    "SMOKE — " (or becomes "SMOKE" when the figure has none).
    """
    name = name[:-4] if name.endswith(".png") else name
    if not name or slug(name) != name:
        raise fail("save_figure", f"figure name {name!r} must be lowercase [a-z0-9_.-]", f"use {slug(name)!r}")
    if _is_generated(profile, name):
        mark_generated(fig)
    if profile.smoke:
        mark_smoke(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    return write_bytes(reports_dir(profile, "figures") / f"{name}.png", buf.getvalue())


def _is_generated(profile: Profile, name: str) -> bool:
    """Whether the dataset a figure is named after (``NN_<what>__<dataset>__...``) is a generated stand-in, as
    notebook 01 recorded it in ``tables/data_summary.csv`` (or the profile forces a fixture)."""
    parts = name.split("__")
    if len(parts) < 2:
        return False
    ds = parts[1]
    spec = next((d for d in getattr(profile, "datasets", []) or [] if getattr(d, "name", None) == ds), None)
    if spec is not None and getattr(spec, "synthetic", "never") == "always":
        return True
    path = profile.reports_path / "tables" / "data_summary.csv"
    if not path.is_file():
        return False
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return False
    if not {"dataset", "synthetic"} <= set(df.columns):
        return False
    rows = df[df["dataset"].astype(str) == ds]
    return bool(len(rows)) and rows["synthetic"].astype(str).str.lower().isin(["true", "1", "yes"]).any()


def mark_generated(fig: Figure) -> Figure:
    """Prefix the suptitle with "GENERATED DATA — " (once): the figure shows a generated stand-in."""
    current = fig.get_suptitle()
    if GENERATED_MARK not in current:
        fig.suptitle(f"{GENERATED_MARK} — {current}" if current else GENERATED_MARK)
    return fig


def mark_smoke(fig: Figure) -> Figure:
    """Prefix the suptitle with "SMOKE — " (once)."""
    current = fig.get_suptitle()
    if not current.startswith("SMOKE"):
        fig.suptitle(f"{SMOKE_PREFIX}{current}" if current else "SMOKE")
    return fig


def _title(fig: Figure, title: str) -> Figure:
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 80)) or title)
    fig.tight_layout()
    return fig


def _all_zero_note(ax: Any, values: Sequence[float], what: str = "every value") -> bool:
    """Write 'all values are 0' across an axis whose bars are all zero (or missing), so an empty-looking plot
    says why. Returns True when it did."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if vals.size and np.all(np.nan_to_num(vals) == 0):
        ax.text(0.5, 0.5, f"{what} is 0", transform=ax.transAxes, ha="center", va="center", fontsize=11,
                color="0.3", bbox={"facecolor": "white", "edgecolor": "0.6"})
        return True
    return False


def _unit_axis(values: Sequence[float]) -> tuple[float, float] | None:
    """(0, 1.02) for values that look like rates/scores in [0, 1] (accuracy, recall, AUROC): a fixed scale, so
    noise of a few hundredths does not fill the plot."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    vals = vals[np.isfinite(vals)]
    if vals.size and vals.min() >= 0 and vals.max() <= 1:
        return (0.0, 1.02)
    return None


def _short_label(text: str, width: int = 30, lines: int = 2) -> str:
    """Wrap a long tick label onto at most ``lines`` lines of ``width`` characters ("…" past that); the full
    name stays in the table the figure comes from."""
    wrapped = textwrap.wrap(str(text), width) or [str(text)]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped)


def majority_rate(labels: Any) -> float | None:
    """Share of the most frequent class in integer labels (N,): the accuracy of always answering that class.
    None for multi-label (N, C) labels, where AUROC 0.5 is the reference instead."""
    y = np.asarray(labels)
    if y.ndim != 1 or not len(y):
        return None
    return float(np.bincount(y.astype(int)).max() / len(y))


# ---- plot helpers ----------------------------------------------------------------------------------------------


def class_counts_bar(counts: pd.DataFrame | Mapping[str, Mapping[str, int]], title: str = "Class counts",
                     log: bool = False) -> Figure:
    """Grouped bars of examples per class; ``counts`` is a DataFrame (index = class, columns = splits) or
    ``{split: {class: count}}``."""
    df = counts if isinstance(counts, pd.DataFrame) else pd.DataFrame(counts)
    if len(df) > 6:  # many classes: one row per class, so the figure fits the page width at a legible size
        fig, ax = plt.subplots(figsize=(7.5, min(9.0, 0.13 * len(df) * max(1, df.shape[1]) + 1.5)))
        df.plot.barh(ax=ax, logx=log, color=PALETTE[: df.shape[1]])
        ax.invert_yaxis()
        ax.set_ylabel("class")
        ax.set_xlabel("examples" + (" (log scale)" if log else ""))
        ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN, max(5.0, 0.6 * len(df) * max(1, df.shape[1]) + 2)), 3.8))
        df.plot.bar(ax=ax, logy=log, rot=0, color=PALETTE[: df.shape[1]])
        ax.set_xticks(range(len(df)), [_short_label(c, 14) for c in df.index])
        ax.set_xlabel("class")
        ax.set_ylabel("examples" + (" (log scale)" if log else ""))
        ax.legend(title="split", fontsize=8)
    for cont in ax.containers:
        ax.bar_label(cont, fontsize=6)
    _all_zero_note(ax, df.to_numpy().ravel().tolist(), "every count")
    return _title(fig, title)


def sample_grid(images: np.ndarray, captions: Sequence[str] | None = None, ncols: int = 4, max_chars: int = 60,
                title: str = "Samples") -> Figure:
    """Images (N, H, W) or (N, H, W, 3) uint8 in a grid, each with its caption (shortened to ``max_chars``)."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.9 * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images[i].ndim == 2 else None)
        if captions is not None:
            cap = str(captions[i])
            cap = cap if len(cap) <= max_chars else cap[: max_chars - 1] + "…"
            ax.set_title(_wrap(cap, 28), fontsize=7)
    return _title(fig, title)


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def confusion_matrix_plot(cm: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str],
                          normalize: bool = True, title: str = "Confusion matrix") -> Figure:
    """Heat map of a confusion matrix (rows = true, columns = predicted); ``normalize`` divides each row by its
    total (recall on the diagonal). Counts are always printed alongside."""
    cm = np.asarray(cm, dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    shown = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0) if normalize else cm
    c = len(class_names)
    size = max(3.5, 0.55 * c + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    vmax = 1.0 if normalize else float(shown.max() or 1.0)
    im = ax.imshow(shown, cmap="Blues", vmin=0, vmax=vmax)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(c), class_names, rotation=45, ha="right")
    ax.set_yticks(range(c), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 20:
        for i in range(c):
            for j in range(c):
                txt = f"{shown[i, j]:.2f}\n({int(cm[i, j])})" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, txt, ha="center", va="center", fontsize=7,
                        color="white" if shown[i, j] > 0.55 * vmax else "black")
    return _title(fig, title + (" (row-normalised)" if normalize else ""))


def multilabel_confusion_plot(confusions: Sequence[Sequence[Sequence[int]]], class_names: Sequence[str],
                              title: str = "Per-label confusion") -> Figure:
    """One row per label of its row-normalised 2x2 confusion matrix ``[[TN, FP], [FN, TP]]`` (as in
    sklearn's ``multilabel_confusion_matrix``): columns TNR, FPR, FNR, TPR (= recall), counts alongside."""
    cms = np.asarray(confusions, dtype=float).reshape(len(class_names), 2, 2)
    rows = cms.sum(axis=2, keepdims=True)
    rates = np.divide(cms, rows, out=np.zeros_like(cms), where=rows > 0).reshape(len(class_names), 4)
    counts = cms.reshape(len(class_names), 4)
    fig, ax = plt.subplots(figsize=(6, max(3, 0.38 * len(class_names) + 1.2)))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks(range(4), ["TNR", "FPR", "FNR", "TPR (recall)"])
    ax.set_yticks(range(len(class_names)), class_names)
    for i in range(len(class_names)):
        for j in range(4):
            ax.text(j, i, f"{rates[i, j]:.2f} ({int(counts[i, j])})", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.55 else "black")
    return _title(fig, title + " (row-normalised)")


def per_class_bars(per_class: Mapping[str, Mapping[str, Any]], metric: str = "recall",
                   title: str = "") -> Figure:
    """Bars of one per-class metric (from a metrics file's ``per_class``), support written under each class."""
    names = list(per_class)
    vals = [np.nan if per_class[k].get(metric) is None else float(per_class[k][metric]) for k in names]
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN, max(4.5, 0.5 * len(names) + 2)), 3.6))
    ax.bar(range(len(names)), vals, color="tab:blue")
    labels = [f"{_short_label(k, 16, 1)}\n(n={per_class[k].get('support', '?')})" for k in names]
    ax.set_xticks(range(len(names)), labels, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4
                  else "center", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric)
    if metric == "auroc":
        ax.axhline(0.5, color="0.4", ls="--", lw=1, label="chance (AUROC 0.5)")
        _low_auroc_note(ax, vals)
    _all_zero_note(ax, vals, f"every {metric}")
    return _title(fig, title or f"Per-class {metric}")


LOW_AUROC_NOTE = "AUROC < 0.5: the scores rank the classes worse than chance"


def _low_auroc_note(ax: Any, values: Sequence[float]) -> None:
    """Add a note under the x label when any AUROC is below 0.5."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if np.any(vals[np.isfinite(vals)] < 0.5):
        label = ax.get_xlabel()
        ax.set_xlabel((label + "\n" if label else "") + LOW_AUROC_NOTE, fontsize=8)


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
    unit = _unit_axis(h["val_metric"].tolist())
    if unit:
        ax2.set_ylim(*unit)
    return _title(fig, title)


def bar_with_ci(df: pd.DataFrame, x: str, y: str, lo: str | None = None, hi: str | None = None,
                hue: str | None = None, title: str = "", hatch: str | None = None,
                horizontal: bool = False, majority: float | None = None) -> Figure:
    """Grouped bars of ``df[y]`` by ``x`` (and ``hue``) with 95% interval whiskers from ``lo``/``hi``
    (missing intervals drawn without whiskers). Rows where the boolean column ``hatch`` is true are hatched
    (e.g. published values next to measured ones). ``horizontal``: one bar per row, labels on the left (for many
    bars with long labels)."""
    df = df.reset_index(drop=True)
    xs = list(dict.fromkeys(df[x].astype(str)))
    if horizontal:
        if hue:
            raise fail("bar_with_ci", "hue is not drawn with horizontal=True", "pass hue=None or horizontal=False")
        return _hbar_with_ci(df, x, y, lo, hi, xs, title, hatch, majority)
    hues = list(dict.fromkeys(df[hue].astype(str))) if hue else [None]
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(xs) * max(1, len(hues) * 0.6) + 2), 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for h_i, h in enumerate(hues):
        sub = df if h is None else df[df[hue].astype(str) == h]
        for _, row in sub.iterrows():
            pos = xs.index(str(row[x])) + (h_i - (len(hues) - 1) / 2) * width
            val, err = float(row[y]), _whisker(row, float(row[y]), lo, hi)
            ax.bar(pos, val, width, yerr=err, capsize=3, color=colors[h_i % len(colors)], label=h,
                   **_hatch_style(row, hatch))
    if hue:
        handles, labels = ax.get_legend_handles_labels()
        uniq: dict[str, Any] = {}
        for lab, hnd in zip(labels, handles):
            uniq.setdefault(lab, hnd)
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    if hatch:
        ax.set_xlabel("hatched bars = published values (quoted, not measured)")
    ax.set_xticks(range(len(xs)), [_short_label(v, 22) for v in xs], rotation=30 if len(xs) > 3 else 0,
                  ha="right" if len(xs) > 3 else "center")
    metrics = df["metric"].astype(str).unique() if "metric" in df.columns else []
    ax.set_ylabel(metrics[0] if len(metrics) == 1 else y)  # "acc", not the column name "value"
    unit = _unit_axis(df[y].tolist())
    if unit:
        ax.set_ylim(*unit)
    if majority is not None:
        ax.axhline(majority, color="darkred", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    _all_zero_note(ax, df[y].tolist())
    return _title(fig, title)


def _whisker(row: pd.Series, val: float, lo: str | None, hi: str | None) -> list[list[float]] | None:
    """Error-bar lengths [[below], [above]] from the row's ``lo``/``hi`` columns; None without an interval."""
    if not (lo and hi and pd.notna(row.get(lo)) and pd.notna(row.get(hi))):
        return None
    return [[max(0.0, val - float(row[lo]))], [max(0.0, float(row[hi]) - val)]]


def _hatch_style(row: pd.Series, hatch: str | None) -> dict[str, Any]:
    """Bar style: rows whose boolean column ``hatch`` is true (published values) are hatched and paler."""
    if hatch and bool(row.get(hatch)):
        return {"hatch": "//", "edgecolor": "black", "alpha": 0.6}
    return {"alpha": 1.0}


def _hbar_with_ci(df: pd.DataFrame, x: str, y: str, lo: str | None, hi: str | None, xs: list[str], title: str,
                  hatch: str | None, majority: float | None = None) -> Figure:
    """One bar per row. Rows whose ``note`` says NOT COMPARABLE are greyed and their label says so; a ``metric``
    column of ``auroc`` draws the chance line at 0.5, ``majority`` (or a ``majority_rate`` column) the
    majority-class rate; AUROC below 0.5 gets a note. Long labels are wrapped (full names: the table)."""
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(xs) + 1.9))
    color = plt.rcParams["axes.prop_cycle"].by_key()["color"][0]
    notes = df["note"].astype(str) if "note" in df.columns else pd.Series([""] * len(df))
    nc = notes.str.contains(NOT_COMPARABLE, case=False, na=False)
    labels = {}
    for i, row in df.iterrows():
        pos = xs.index(str(row[x]))
        val, err = float(row[y]), _whisker(row, float(row[y]), lo, hi)
        style = _hatch_style(row, hatch)
        bar_color = color
        if nc.iloc[i]:
            bar_color, style = "0.75", {"hatch": "xx", "edgecolor": "0.45", "alpha": 0.8}
            labels[pos] = f"[{NOT_COMPARABLE}] " + str(row[x])
        ax.barh(pos, val, 0.7, xerr=err, capsize=3, color=bar_color, **style)
        right = val + (err[1][0] if err else 0.0)
        ax.text(right + 0.01, pos, f"{val:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(xs)), [_short_label(labels.get(i, s), 34) for i, s in enumerate(xs)], fontsize=7)
    for i, tick in enumerate(ax.get_yticklabels()):
        if i in labels:
            tick.set_color("0.35")
    ax.invert_yaxis()
    metric = str(df["metric"].iloc[0]) if "metric" in df.columns and len(df) else y
    if majority is None and "majority_rate" in df.columns and df["majority_rate"].notna().any():
        majority = float(df["majority_rate"].dropna().iloc[0])
    if metric == "auroc":
        ax.axvline(0.5, color="0.3", ls="--", lw=1, label="chance (AUROC 0.5)")
        majority = None  # the majority-class rate is an accuracy; AUROC's chance level is 0.5
    if majority is not None:
        ax.axvline(majority, color="darkred", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
    if metric == "auroc" or majority is not None:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    unit = _unit_axis(df[y].tolist())
    if unit:
        ax.set_xlim(0, 1.12)  # room for the value labels
    xlabel = metric + ("   (hatched = published, quoted, not measured)" if hatch else "")
    if nc.any():
        xlabel += f"\ngrey = {NOT_COMPARABLE} (different data, sample, split or resolution; see the table's note)"
    ax.set_xlabel(xlabel, fontsize=8)
    if metric == "auroc":
        _low_auroc_note(ax, df[y].tolist())
    return _title(fig, title)


WISE_SUBTITLE = "all weights interpolated: θ = (1 − α)·θ_zero-shot + α·θ_fine-tuned"


def wise_curve(alphas: Sequence[float], acc: Sequence[float], other: Sequence[float] | None = None,
               title: str = "WiSE-FT: zero-shot and fine-tuned weights interpolated", acc_label: str = "accuracy",
               other_label: str = "general-domain recall") -> Figure:
    """Metric against the WiSE-FT mixing weight alpha (0 = zero-shot, 1 = fine-tuned); ``other`` on a second
    axis (e.g. general-domain retrieval recall). The axes title always says what is interpolated; metrics in
    [0, 1] are drawn on the fixed scale 0..1."""
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    ax.plot(alphas, acc, "o-", color="tab:blue", label=acc_label)
    ax.set_xlabel("alpha (0 = zero-shot model, 1 = fine-tuned model)")
    ax.set_ylabel(acc_label, color="tab:blue")
    unit = _unit_axis(list(acc))
    if unit:
        ax.set_ylim(*unit)
    if other is not None:
        ax2 = ax.twinx()
        ax2.plot(alphas, other, "s--", color="tab:orange", label=other_label)
        ax2.set_ylabel(other_label, color="tab:orange")
        unit = _unit_axis(list(other))
        if unit:
            ax2.set_ylim(*unit)
    ax.set_title(WISE_SUBTITLE, fontsize=8)
    return _title(fig, title)


def pr_curves(y_true: np.ndarray, y_score: np.ndarray, class_names: Sequence[str],
              title: str = "Precision-recall curves") -> Figure:
    """One precision-recall curve per class (one-vs-rest for multiclass ``y_true`` (N,), per label for
    multilabel (N, C)), average precision in the legend; classes without positives are skipped."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    onehot = y_true if y_true.ndim == 2 else np.eye(y_score.shape[1], dtype=int)[y_true]
    fig, ax = plt.subplots(figsize=(8.0, 4.4))
    for j, name in enumerate(class_names):
        if onehot[:, j].sum() == 0:
            continue
        p, r, _ = precision_recall_curve(onehot[:, j], y_score[:, j])
        ap = average_precision_score(onehot[:, j], y_score[:, j])
        ax.plot(r, p, color=PALETTE[j % len(PALETTE)], lw=1.3,
                label=f"{_short_label(name, 20, 1)} (AP {ap:.3f}, prev. {onehot[:, j].mean():.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)  # outside the curves
    return _title(fig, title)


def tradeoff_scatter(df: pd.DataFrame, x: str, y: str, label: str, title: str = "") -> Figure:
    """Scatter of ``y`` against ``x``, each point annotated with ``df[label]`` (e.g. worst-class recall vs
    accuracy per remedy). Labels are placed so they do not overlap (each tries a few offsets around its point
    and takes the first free one; own code: a label-repel package would be one more dependency for one plot).
    Metrics in [0, 1] are drawn on the fixed scale 0..1."""
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    ax.scatter(df[x], df[y], color="tab:blue", zorder=3)
    for setter, col in ((ax.set_xlim, x), (ax.set_ylim, y)):
        unit = _unit_axis(df[col].tolist())
        if unit:
            setter(-0.02, 1.02)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    _title(fig, title or f"{y} vs {x}")
    _place_labels(fig, ax, df[x].to_numpy(dtype=float), df[y].to_numpy(dtype=float), [str(v) for v in df[label]])
    return fig


_OFFSETS = [(5, 5), (5, -12), (-8, 5), (-8, -12), (5, 16), (-8, 16), (5, -24), (-8, -24), (14, -3), (-14, -3),
            (5, 28), (5, -36), (-8, 28), (-8, -36)]


def _place_labels(fig: Figure, ax: Any, xs: np.ndarray, ys: np.ndarray, texts: list[str]) -> list[Any]:
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    boxes: list[Any] = []
    for px, py, text in zip(xs, ys, texts):
        ann = None
        for dx, dy in _OFFSETS:
            ha = "left" if dx >= 0 else "right"
            ann = ax.annotate(text, (px, py), textcoords="offset points", xytext=(dx, dy), fontsize=7, ha=ha,
                              arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(dy) > 12 else None)
            box = Text.get_window_extent(ann, renderer).expanded(1.05, 1.15)  # the text, not its leader line
            if not any(box.overlaps(bb) for bb in boxes):
                break
            ann.remove()
            ann = None
        if ann is None:  # every offset taken: the last one, still readable over its neighbours
            ann = ax.annotate(text, (px, py), textcoords="offset points", xytext=_OFFSETS[-1], fontsize=7,
                              bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
            box = Text.get_window_extent(ann, renderer)
        boxes.append(box)
        placed.append(ann)
    return placed


def text_statistics_plot(lengths: Mapping[str, np.ndarray], prevalence: pd.DataFrame, title: str = "",
                         note: str = "") -> Figure:
    """Statistics of data whose text and images may not be shown (credentialed sources such as MIMIC-CXR):
    caption length per split (histogram, words) and label prevalence per split (bars). ``note`` says why."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 4.2))
    for split, ln in lengths.items():
        a.hist(ln, bins=20, alpha=0.6, label=f"{split} (n={len(ln)})")
    a.set_xlabel("caption length (words)"), a.set_ylabel("captions")
    if lengths:
        a.legend(fontsize=8)
    if not prevalence.empty:
        prevalence.plot.barh(ax=b)
        b.set_xlabel("share of images with the label"), b.legend(fontsize=8)
    if note:
        fig.text(0.5, -0.02, _wrap(note, 140), ha="center", va="top", fontsize=8)
    return _title(fig, title)


# ---- several seeds, label efficiency, comparison bars, paired differences (notebooks 03-06) -------------------


def _reference_lines(ax: Any, majority: float | None = None, chance_auroc: bool = False, vertical: bool = False) -> None:
    """Dotted reference lines: the majority-class rate and/or AUROC 0.5 (what a constant guess scores)."""
    line = ax.axvline if vertical else ax.axhline
    if majority is not None and np.isfinite(majority):
        line(majority, color="grey", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
    if chance_auroc:
        line(0.5, color="grey", ls="--", lw=1.0, label="AUROC 0.5 (chance)")


def seed_bars(summary: pd.DataFrame, metric: str, title: str = "", majority: float | None = None) -> Figure:
    """Bars of the mean over seeds of ``metric`` per method (rows of :func:`medlib.tables.seed_summary`), whiskers
    from the lowest to the highest seed, each seed's count under its label; the majority-class rate (accuracy) or
    AUROC 0.5 as a reference line. The value axis spans 0-1, so small differences are not blown up."""
    df = summary[summary["metric"] == metric].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.1 * len(df) + 2), 3.8))
    for i, row in df.iterrows():
        err = [[row["mean"] - row["min"]], [row["max"] - row["mean"]]] if row["n_seeds"] > 1 else None
        ax.bar(i, row["mean"], 0.7, yerr=err, capsize=4, color="tab:blue")
        ax.text(i, 0.02, f"{row['mean']:.3f}", ha="center", va="bottom", color="white", fontsize=8)
    _reference_lines(ax, majority if metric in ("acc", "top3") else None, chance_auroc=metric == "auroc")
    ax.set_xticks(range(len(df)), [f"{_wrap(m, 18)}\n({n} seed{'s' if n > 1 else ''})"
                                   for m, n in zip(df["method"], df["n_seeds"])], fontsize=8)
    ax.set_ylim(0, 1.0)
    ax.set_ylabel(f"test {metric} (mean over seeds; whiskers min–max)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _title(fig, title)


def label_efficiency_plot(summary: pd.DataFrame, zero_shot: float | None = None, majority: float | None = None,
                          title: str = "", ylabel: str = "test accuracy") -> Figure:
    """Test metric against training examples per class (rows of :func:`medlib.tables.label_efficiency_summary`):
    one line per method at the mean over draws with a ± 1 sd band, the zero-shot score and the majority-class
    rate as flat reference lines."""
    shots = list(dict.fromkeys(summary["shots_per_class"].astype(str)))
    fig, ax = plt.subplots(figsize=(6.0, 4.0))
    for method, d in summary.groupby("method", sort=False):
        x = [shots.index(str(s)) for s in d["shots_per_class"]]
        mean, sd = d["mean"].to_numpy(float), np.nan_to_num(d["sd"].to_numpy(float))
        ax.plot(x, mean, "o-", label=f"{method} (mean ± sd over draws)")
        ax.fill_between(x, mean - sd, mean + sd, alpha=0.2)
    if zero_shot is not None:
        ax.axhline(zero_shot, color="tab:red", ls="--", lw=1.2, label=f"zero-shot {zero_shot:.3f}")
    _reference_lines(ax, majority)
    ax.set_xticks(range(len(shots)), shots)
    ax.set_xlabel("training examples per class")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _title(fig, title)


def sota_bars(df: pd.DataFrame, title: str = "") -> Figure:
    """Horizontal bars of one dataset's comparison rows for one metric (:func:`medlib.tables.sota_table`):
    measured solid with their 95% interval (several seeds: the mean, whiskers from the lowest to the highest seed), published hatched, published rows that are NOT COMPARABLE greyed with the
    mark in their label; model names wrapped (the full name stays in the table); the majority-class rate (accuracy)
    or AUROC 0.5 as a reference line."""
    df = df.reset_index(drop=True)
    metric = str(df["metric"].iloc[0]) if len(df) else ""
    labels = []
    for _, r in df.iterrows():
        text = _wrap(f"{r['model']} · {r['method']}", 45)
        if r["source"] == "measured" and pd.notna(r.get("n_seeds")) and r.get("n_seeds", 1) > 1:
            text += f"\n[mean of {int(r['n_seeds'])} seeds; whisker min–max]"
        if r["source"] != "measured":
            text += f"\n[{r.get('resolution') or '?'}; published]" + ("" if r.get("comparable") else " NOT COMPARABLE")
        labels.append(text)
    fig, ax = plt.subplots(figsize=(8.0, 0.55 * len(df) + 1.8))
    for i, r in df.iterrows():
        several = r["source"] == "measured" and pd.notna(r.get("n_seeds")) and r.get("n_seeds", 1) > 1
        err = _whisker(r, float(r["value"]), "min", "max") if several else _whisker(r, float(r["value"]), "ci_low",
                                                                                  "ci_high")
        if r["source"] == "measured":
            style = {"color": "tab:blue"}
        elif r.get("comparable"):
            style = {"color": "tab:orange", "hatch": "//", "edgecolor": "black"}
        else:
            style = {"color": "lightgrey", "hatch": "//", "edgecolor": "grey"}
        ax.barh(i, float(r["value"]), 0.7, xerr=err, capsize=3, **style)
        ax.text(float(r["value"]) + (err[1][0] if err else 0.0) + 0.01, i, f"{float(r['value']):.3f}", va="center",
                fontsize=7)
    majority = df["majority_rate"].dropna().iloc[0] if "majority_rate" in df and df["majority_rate"].notna().any() \
        else None
    _reference_lines(ax, majority if metric in ("acc", "top3") else None, chance_auroc=metric == "auroc", vertical=True)
    ax.set_yticks(range(len(df)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"test {metric}: measured (blue), published (hatched; grey = NOT COMPARABLE)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    return _title(fig, title)


def paired_differences_plot(df: pd.DataFrame, title: str = "") -> Figure:
    """Forest plot of paired differences (rows of ``tables/paired_differences.csv``): each difference A − B with
    its 95% paired-bootstrap interval, a line at 0 (no difference)."""
    df = df.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(df) + 1.6))
    for i, r in df.iterrows():
        lo, hi = float(r["ci_low"]), float(r["ci_high"])
        color = "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:grey"
        ax.errorbar(r["diff"], i, xerr=[[r["diff"] - lo], [hi - r["diff"]]], fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(df)), [_wrap(f"{r.dataset}: {r.method_a} − {r.method_b} ({r.metric}, seed {r.seed})", 60)
                                   for r in df.itertuples()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("difference A − B with 95% paired-bootstrap interval (green/red: interval excludes 0)")
    return _title(fig, title)
