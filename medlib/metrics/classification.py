"""Classification metrics: input checks, the one decision rule, and point estimates from scikit-learn.

Point estimates come from scikit-learn, so every number in a metrics file can be recomputed from its
predictions file with scikit-learn alone:

multiclass (``y_true`` (N,) ints, ``y_score`` (N, C) probabilities, rows sum to 1; prediction = argmax, or for
binary scores with a validation-chosen ``threshold``, ``y_score[:, 1] >= threshold``; then no ECE is reported)
    acc           ``accuracy_score``
    top3          ``top_k_accuracy_score(k=3, labels=range(C))`` (only when C >= 3)
    balanced_acc  ``balanced_accuracy_score`` (mean recall over classes present in y_true)
    macro_f1      ``f1_score(average="macro", labels=range(C), zero_division=0)``
    auroc         binary: ``roc_auc_score(y_true, y_score[:, 1])``;
                  C > 2: ``roc_auc_score(y_true, y_score, multi_class="ovr", average="macro", labels=range(C))``
    worst_class_recall  min of ``recall_score(average=None, labels=range(C))`` over classes with support > 0
    ece           expected calibration error of the top-label confidence, 15 equal-width bins (Guo et al.
                  2017); scikit-learn has no ECE, see :func:`expected_calibration_error`.

multilabel (``y_true`` (N, C) of 0/1, ``y_score`` (N, C) sigmoid scores; prediction = ``y_score >= threshold``,
``threshold`` a scalar or one per label, default 0.5)
    acc           MedMNIST's convention: the mean over labels of ``accuracy_score(y_true[:, j], y_pred[:, j])``
                  (= 1 - ``hamming_loss``), not the exact-match subset accuracy.
    macro_f1      ``f1_score(average="macro", zero_division=0)`` over all labels
    balanced_acc  mean over labels that have both classes of ``balanced_accuracy_score`` per label
    auroc         mean over labels that have both classes of ``roc_auc_score`` per label; the labels skipped
                  are listed in ``auroc_skipped``
    worst_class_recall  min per-label recall over labels with support > 0

Per class: precision, recall, F1, support and ``predicted`` (rows predicted as the class / label); ``degenerate``
names a model whose decisions ignore the image (:func:`degenerate`). Undefined metrics (e.g. AUROC with one class
present) are ``None``. The same metrics as functions of bootstrap
row weights are in :mod:`medlib.metrics.replicates`; :func:`medlib.metrics.bootstrap.evaluate` adds the intervals.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
    top_k_accuracy_score,
)

from ..errors import fail

ECE_BINS = 15


def topk_accuracy(y_true: np.ndarray, y_score: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class is among the ``k`` highest scores (scikit-learn; 1.0 when k >= C)."""
    y_score = np.asarray(y_score)
    with warnings.catch_warnings():  # k >= C is allowed (top-3 of 3 classes): sklearn warns, answer is 1.0
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(top_k_accuracy_score(np.asarray(y_true), y_score, k=k, labels=np.arange(y_score.shape[1])))


def expected_calibration_error(y_true: np.ndarray, y_score: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Top-label ECE: sum over equal-width confidence bins of |B|/N * |accuracy(B) - confidence(B)|.

    Own code because scikit-learn has no ECE (``calibration_curve`` gives bin means but not bin sizes).
    Bin edges are ``linspace(0, 1, n_bins + 1)``; a confidence equal to an inner edge falls in the upper bin.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    w = np.ones((1, len(y_true)))
    return float(ece_weighted(w, *ece_parts(y_true, y_score, n_bins), n_bins)[0])



def check_predictions(y_true: np.ndarray, y_score: np.ndarray, task: str,
                      class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Validated arrays as :func:`evaluate` reads them: ``y_true`` int64, (N,) for multiclass (MedMNIST's (N, 1)
    squeezed) or (N, C) of 0/1 for multilabel; ``y_score`` float64 (N, C). Raises MedlibError on bad input."""
    class_names = [str(c) for c in class_names]
    if task == "multiclass":
        return _check_multiclass(y_true, y_score, class_names)
    if task == "multilabel":
        return _check_multilabel(y_true, y_score, class_names)
    raise fail("evaluate", f"unknown task {task!r}", "use 'multiclass' or 'multilabel'")


def predict_labels(y_score: np.ndarray, task: str, threshold: Any = None) -> np.ndarray:
    """Decisions from scores -- medlib's one threshold rule: a score **at or above** its threshold is positive.

    multiclass: the argmax, or for binary (N, 2) scores with a ``threshold``, ``y_score[:, 1] >= threshold``
    (class 1); multilabel: ``y_score >= threshold`` per label (default 0.5). Used by :func:`evaluate`, its
    bootstrap, ``medlib.metrics.thresholds.apply_thresholds`` and threshold tuning, so all agree at the boundary.
    """
    s = np.asarray(y_score)
    if task == "multilabel":
        return (s >= _thresholds(threshold, s.shape[1])[None, :]).astype(np.int64)
    if threshold is None:
        return s.argmax(axis=1)
    return (s[:, 1] >= _binary_threshold(threshold, s.shape[1])).astype(np.int64)


def _binary_threshold(threshold: Any, c: int) -> float:
    t = np.asarray(threshold, dtype=np.float64).ravel()
    if c != 2 or t.size != 1:
        raise fail("evaluate", f"a multiclass threshold needs binary (N, 2) scores and one value, got {c} classes "
                   f"and {t.size} values", "pass threshold=None (argmax) or one threshold on the class-1 score")
    return float(t[0])


# ---- input checks ---------------------------------------------------------------------------------------------


def _check_multiclass(y_true, y_score, class_names):
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    c = len(class_names)
    if y_true.ndim == 2 and y_true.shape[1] == 1:  # MedMNIST stores labels as (N, 1)
        y_true = y_true[:, 0]
    if y_true.ndim != 1 or y_score.ndim != 2 or len(y_true) != len(y_score) or y_score.shape[1] != c:
        raise fail("evaluate", f"multiclass needs y_true (N,) and y_score (N, {c}), got {y_true.shape} and "
                   f"{y_score.shape}", "pass one probability row per example and one column per class")
    if len(y_true) == 0:
        raise fail("evaluate", "no examples", "evaluate a non-empty split")
    if c < 2:
        raise fail("evaluate", f"need at least 2 classes, got {class_names}", "check the class list")
    if not np.issubdtype(y_true.dtype, np.integer) and not np.all(np.mod(y_true, 1) == 0):
        raise fail("evaluate", "y_true must hold class indices", "pass integer labels")
    y_true = y_true.astype(np.int64)
    if y_true.min() < 0 or y_true.max() >= c:
        raise fail("evaluate", f"label {int(y_true.max() if y_true.max() >= c else y_true.min())} outside the {c} "
                   f"classes {class_names}", f"map labels to 0..{c - 1}")
    if not np.all(np.isfinite(y_score)) or not np.allclose(y_score.sum(axis=1), 1.0, atol=1e-3):
        raise fail("evaluate", "multiclass y_score rows must be finite probabilities summing to 1",
                   "apply softmax to the logits before evaluating")
    return y_true, y_score


def _check_multilabel(y_true, y_score, class_names):
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    c = len(class_names)
    if y_true.shape != y_score.shape or y_true.ndim != 2 or y_true.shape[1] != c or len(y_true) == 0:
        raise fail("evaluate", f"multilabel needs y_true and y_score of shape (N, {c}), got {y_true.shape} and "
                   f"{y_score.shape}", "pass one 0/1 column and one score column per label")
    if not np.isin(y_true, (0, 1)).all():
        raise fail("evaluate", "multilabel y_true must hold only 0 and 1", "binarise the labels")
    if not np.all(np.isfinite(y_score)):
        raise fail("evaluate", "y_score has NaN or inf", "check the model outputs")
    return y_true.astype(np.int64), y_score


def _thresholds(threshold, c: int) -> np.ndarray:
    if threshold is None:
        return np.full(c, 0.5)
    thr = np.asarray(threshold, dtype=np.float64)
    if thr.ndim == 0:
        return np.full(c, float(thr))
    if thr.shape != (c,):
        raise fail("evaluate", f"threshold must be a scalar or one per label ({c}), got shape {thr.shape}",
                   "pass a scalar or an array of length C")
    return thr



# ---- point estimates (scikit-learn) ---------------------------------------------------------------------------


def _clean(x: float) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def _per_class(y_true, y_pred, class_names, labels) -> dict[str, dict[str, Any]]:
    """Per class: precision, recall, F1 (zero_division=0), support and ``predicted`` (rows predicted as it)."""
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    predicted = (np.bincount(y_pred, minlength=len(class_names)) if y_pred.ndim == 1 else y_pred.sum(axis=0))
    return {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i]),
                   "predicted": int(predicted[i])} for i, name in enumerate(class_names)}


def degenerate(y_pred: np.ndarray, class_names: Sequence[str]) -> str | None:
    """Why a model's decisions carry no information about the image, or None: multiclass (``y_pred`` (N,)) when
    every row gets the same class; multi-label ((N, C) 0/1) when no row gets any positive label, or when every
    label's decision is the same for every row. Stored as ``degenerate`` in the metrics record so tables and the
    report can say so."""
    y_pred = np.asarray(y_pred)
    if y_pred.ndim == 1:
        classes = np.unique(y_pred)
        return f"predicts one class only ({class_names[int(classes[0])]})" if len(classes) == 1 else None
    if not y_pred.any():
        return "no positive predictions on any label"
    if (y_pred == y_pred[:1]).all():
        return "every label's decision is the same for every row"
    return None


def _evaluate_multiclass(y_true, y_score, class_names, threshold: float | None = None) -> dict[str, Any]:
    c = len(class_names)
    labels = np.arange(c)
    y_pred = predict_labels(y_score, "multiclass", threshold)
    present = np.bincount(y_true, minlength=c) > 0
    m: dict[str, float | None] = {"acc": float(accuracy_score(y_true, y_pred))}
    if c >= 3:
        m["top3"] = topk_accuracy(y_true, y_score, 3)
    m["balanced_acc"] = float(balanced_accuracy_score(y_true, y_pred))
    m["macro_f1"] = float(f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0))
    if not present.all():
        m["auroc"] = None  # one-vs-rest AUROC is undefined for a class with no examples
    elif c == 2:
        m["auroc"] = float(roc_auc_score(y_true, y_score[:, 1]))
    else:
        m["auroc"] = float(roc_auc_score(y_true, y_score, multi_class="ovr", average="macro", labels=labels))
    recall = recall_score(y_true, y_pred, average=None, labels=labels, zero_division=0)
    m["worst_class_recall"] = float(recall[present].min())
    out: dict[str, Any] = {}
    if threshold is None:  # ECE is the argmax's calibration: it has no meaning for a thresholded decision
        m["ece"] = expected_calibration_error(y_true, y_score)
    else:
        out["threshold"] = [float(threshold)]
    return {"metrics": m, "per_class": _per_class(y_true, y_pred, class_names, labels),
            "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
            "degenerate": degenerate(y_pred, class_names), **out}


def _evaluate_multilabel(y_true, y_score, class_names, thr) -> dict[str, Any]:
    y_pred = predict_labels(y_score, "multilabel", thr)
    c = len(class_names)
    pos = y_true.sum(axis=0)
    both = (pos > 0) & (pos < len(y_true))
    per_label_auc = [float(roc_auc_score(y_true[:, j], y_score[:, j])) if both[j] else None for j in range(c)]
    per_label_bacc = [float(balanced_accuracy_score(y_true[:, j], y_pred[:, j])) for j in range(c) if both[j]]
    m: dict[str, float | None] = {
        "acc": float(np.mean([accuracy_score(y_true[:, j], y_pred[:, j]) for j in range(c)])),
        "balanced_acc": float(np.mean(per_label_bacc)) if per_label_bacc else None,
        "macro_f1": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
        "auroc": float(np.mean([a for a in per_label_auc if a is not None])) if both.any() else None,
    }
    recall = recall_score(y_true, y_pred, average=None, zero_division=0)
    m["worst_class_recall"] = float(recall[pos > 0].min()) if (pos > 0).any() else None
    per_class = _per_class(y_true, y_pred, class_names, None)
    for j, name in enumerate(class_names):
        per_class[name]["auroc"] = per_label_auc[j]
        per_class[name]["threshold"] = float(thr[j])
    return {"metrics": m, "per_class": per_class,
            "confusion": multilabel_confusion_matrix(y_true, y_pred).tolist(),
            "threshold": [float(t) for t in thr],
            "auroc_skipped": [name for j, name in enumerate(class_names) if not both[j]],
            "degenerate": degenerate(y_pred, class_names)}



def ece_parts(y_true, y_score, n_bins):
    conf = y_score.max(axis=1)
    correct = (y_score.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], conf, side="right"), 0, n_bins - 1)
    return conf, correct, bins


def ece_weighted(w, conf, correct, bins, n_bins):
    onehot = np.eye(n_bins)[bins]  # (N, bins)
    gap = w @ (onehot * (correct - conf)[:, None])  # (B, bins): sum of (correct - confidence) per bin
    return np.abs(gap).sum(axis=1) / w.sum(axis=1)

