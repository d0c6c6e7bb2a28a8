"""Per-class figures: confusion matrices, per-class bars, precision-recall curves."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve

from ..names import metric_name
from .figure import PAGE_WIDTH_IN, PALETTE, all_zero_note, low_auroc_note, short_label, titled


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
    return titled(fig, title + (" (row-normalised)" if normalize else ""))


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
    return titled(fig, title + " (row-normalised)")


def per_class_bars(per_class: Mapping[str, Mapping[str, Any]], metric: str = "recall",
                   title: str = "") -> Figure:
    """Bars of one per-class metric (from a metrics file's ``per_class``), support written under each class."""
    names = list(per_class)
    vals = [np.nan if per_class[k].get(metric) is None else float(per_class[k][metric]) for k in names]
    fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN, max(4.5, 0.5 * len(names) + 2)), 3.6))
    ax.bar(range(len(names)), vals, color="tab:blue")
    labels = [f"{short_label(k, 16, 1)}\n(n={per_class[k].get('support', '?')})" for k in names]
    ax.set_xticks(range(len(names)), labels, rotation=45 if len(names) > 4 else 0, ha="right" if len(names) > 4
                  else "center", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(metric_name(metric))
    if metric == "auroc":
        ax.axhline(0.5, color="0.4", ls="--", lw=1, label="chance (AUROC 0.5)")
        low_auroc_note(ax, vals)
    all_zero_note(ax, vals, f"every {metric_name(metric)}")
    return titled(fig, title or f"Per-class {metric_name(metric)}")


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
                label=f"{short_label(name, 20, 1)} (AP {ap:.3f}, prev. {onehot[:, j].mean():.3f})")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)  # outside the curves
    return titled(fig, title)
