"""The classification metrics of :mod:`medlib.metrics.classification` as functions of row weights.

A bootstrap resample of N rows is a vector of N multinomial weights (how often each row was drawn). For speed
the resamples are evaluated with these vectorised numpy formulas on (B, N) weight matrices, thousands at once
(thousands of scikit-learn calls would cost minutes on two CPU cores); ``tests/test_metrics.py`` checks that
they equal scikit-learn on the unresampled data. Own code: scikit-learn has no batched, weighted metrics.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .classification import ECE_BINS, _binary_threshold, _thresholds, ece_parts, ece_weighted, predict_labels


def _nanmean(x: np.ndarray) -> np.ndarray:
    """Row-wise mean ignoring NaN; NaN (not a warning) for an all-NaN row."""
    ok = np.isfinite(x)
    n = ok.sum(axis=1)
    return _safe_div(np.where(ok, x, 0.0).sum(axis=1), n)


def _nanmin(x: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x)
    return np.where(ok.any(axis=1), np.where(ok, x, np.inf).min(axis=1), np.nan)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def _weighted_auc(w: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Weighted binary ROC AUC for each row of weights ``w`` (B, N): the Mann-Whitney statistic with half credit
    for ties, which equals scikit-learn's trapezoidal ``roc_auc_score`` with ``sample_weight``. NaN where one
    class has zero weight."""
    order = np.argsort(s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order].astype(bool)
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])  # groups of tied scores
    ws = w[:, order]
    pos = np.add.reduceat(ws * y_sorted, starts, axis=1)
    neg = np.add.reduceat(ws * ~y_sorted, starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    u = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return _safe_div(u, pos.sum(axis=1) * neg.sum(axis=1))



def _topk_hits(y_true, y_score, k):
    # Same ordering rule as sklearn's top_k_accuracy_score (stable argsort, reversed).
    order = np.argsort(y_score, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return (order == y_true[:, None]).any(axis=1).astype(np.float64)


def _boot_multiclass(w, y_true, y_score, threshold: float | None = None) -> dict[str, np.ndarray]:
    c = y_score.shape[1]
    y_pred = predict_labels(y_score, "multiclass", threshold)
    cm = (w @ np.eye(c * c)[y_true * c + y_pred]).reshape(-1, c, c)  # (B, true, pred)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, predicted = cm.sum(axis=2), cm.sum(axis=1)
    total = w.sum(axis=1)
    recall = _safe_div(tp, support)
    f1 = np.nan_to_num(_safe_div(2 * tp, support + predicted), nan=0.0)  # zero_division=0
    out = {"acc": tp.sum(axis=1) / total}
    if c >= 3:
        out["top3"] = (w @ _topk_hits(y_true, y_score, 3)) / total
    out["balanced_acc"] = _nanmean(recall)  # recall is NaN for classes absent from the resample
    out["worst_class_recall"] = _nanmin(recall)
    out["macro_f1"] = f1.mean(axis=1)
    if c == 2:
        out["auroc"] = _weighted_auc(w, y_true == 1, y_score[:, 1])
    else:
        aucs = np.stack([_weighted_auc(w, y_true == j, y_score[:, j]) for j in range(c)], axis=1)
        out["auroc"] = aucs.mean(axis=1)  # NaN (skipped) when a class is missing from the resample
    if threshold is None:
        out["ece"] = ece_weighted(w, *ece_parts(y_true, y_score, ECE_BINS), ECE_BINS)
    return out


def _boot_multilabel(w, y_true, y_score, thr) -> dict[str, np.ndarray]:
    y_pred = predict_labels(y_score, "multilabel", thr).astype(np.float64)
    yt = y_true.astype(np.float64)
    tp, fp = w @ (yt * y_pred), w @ ((1 - yt) * y_pred)
    fn, tn = w @ (yt * (1 - y_pred)), w @ ((1 - yt) * (1 - y_pred))
    total = w.sum(axis=1)[:, None]
    pos, neg = tp + fn, fp + tn
    recall = _safe_div(tp, pos)
    both = (pos > 0) & (neg > 0)
    bacc = np.where(both, 0.5 * (recall + _safe_div(tn, neg)), np.nan)
    aucs = np.stack([_weighted_auc(w, y_true[:, j] == 1, y_score[:, j]) for j in range(yt.shape[1])], axis=1)
    return {
        "acc": ((tp + tn) / total).mean(axis=1),
        "balanced_acc": _nanmean(bacc),
        "macro_f1": np.nan_to_num(_safe_div(2 * tp, 2 * tp + fp + fn), nan=0.0).mean(axis=1),
        "auroc": _nanmean(aucs),  # over the labels with both classes in this resample
        "worst_class_recall": _nanmin(recall),  # recall is NaN for labels without positives
    }




def replicate_fn(task: str, y_true: np.ndarray, y_score: np.ndarray,
                 threshold: Any = None) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """``w -> {metric: (B,) values}`` for one run's checked predictions (NaN where a metric is undefined)."""
    if task == "multiclass":
        t = None if threshold is None else _binary_threshold(threshold, y_score.shape[1])
        return lambda w: _boot_multiclass(w, y_true, y_score, t)
    thr = _thresholds(threshold, y_score.shape[1])
    return lambda w: _boot_multilabel(w, y_true, y_score, thr)
