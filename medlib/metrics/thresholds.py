"""Decision thresholds chosen on the validation split, and their cross-fitted validation metrics.

Everything here takes validation arrays only (:func:`tune_thresholds` takes nothing else), so the test split
cannot leak into a threshold. The decision rule is :func:`medlib.metrics.classification.predict_labels`'s:
a score at or above its threshold is positive.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_curve, roc_curve

from ..errors import MedlibError
from .bootstrap import evaluate
from .classification import predict_labels

THRESHOLD_METRICS = ("f1", "balanced_acc", "youden")
# The decision rule of multi-label fine-tunes' thresholded metrics (per-label P/R/F1, confusion matrices).
MULTILABEL_THRESHOLD_METRIC = "f1"
MULTILABEL_THRESHOLD_RULE = ("per-label thresholds chosen on the validation split, each maximising that label's F1 "
                             "(0.5 for a label without both values there); a score at or above it is positive")


def _best_threshold(y: np.ndarray, s: np.ndarray, metric: str) -> float:
    """Threshold on score ``s`` that maximises ``metric`` for binary truth ``y``."""
    if y.min() == y.max():
        return 0.5  # one class only: no information, keep the default
    if metric == "f1":
        prec, rec, thr = precision_recall_curve(y, s)
        f1 = 2 * prec[:-1] * rec[:-1] / np.maximum(prec[:-1] + rec[:-1], 1e-12)
        return float(thr[int(np.argmax(f1))])
    fpr, tpr, thr = roc_curve(y, s)  # balanced_acc / youden: balanced accuracy = (tpr + 1 - fpr) / 2
    i = int(np.argmax(tpr - fpr))
    return float(min(thr[i], 1.0))


def tune_thresholds(y_true_val: np.ndarray, y_score_val: np.ndarray, metric: str = "balanced_acc") -> np.ndarray:
    """Decision thresholds chosen on the VALIDATION split only, for the rule ``score >= threshold``
    (scikit-learn's curves use the same rule, so the chosen threshold achieves the metric it was chosen for).

    ``metric``: the profile's ``imbalance.threshold_metric`` -- ``balanced_acc`` (default; = Youden's J),
    ``f1`` (of the positive class / label) or ``youden``. Multi-label (y_true (N, C)): one threshold per
    label. Binary multiclass (y_score (N, 2)): one threshold on the class-1 probability, returned as
    shape (1,). Multiclass with more than two classes has no single threshold: error.
    """
    if metric not in THRESHOLD_METRICS:  # checked first: a one-class label would never reach the metric
        raise MedlibError(f"tune_thresholds: unknown metric {metric!r}. Fix: use 'f1' or 'balanced_acc'")
    y = np.asarray(y_true_val)
    s = np.asarray(y_score_val, dtype=np.float64)
    if y.ndim == 2:
        return np.array([_best_threshold(y[:, c], s[:, c], metric) for c in range(y.shape[1])])
    if s.ndim != 2 or s.shape[1] != 2:
        raise MedlibError(
            f"tune_thresholds: got scores of shape {s.shape}; thresholds apply to binary (N, 2) or multi-label "
            "scores. Fix: use argmax predictions for multiclass with more than two classes")
    return np.array([_best_threshold((y == 1).astype(int), s[:, 1], metric)])


def multilabel_thresholds(y_true_val: np.ndarray, y_score_val: np.ndarray) -> tuple[np.ndarray, dict]:
    """A multi-label fine-tune's decision thresholds, chosen on the VALIDATION split (:data:`MULTILABEL_THRESHOLD_RULE`),
    and what its metrics record states about them: ``(thresholds (C,), {"threshold_rule": ...})``."""
    thr = tune_thresholds(y_true_val, y_score_val, metric=MULTILABEL_THRESHOLD_METRIC)
    return thr, {"threshold_rule": MULTILABEL_THRESHOLD_RULE}


def cross_fitted_threshold_metrics(y_true_val: np.ndarray, y_score_val: np.ndarray, task: str,
                                   class_names: list[str], metric: str = "balanced_acc", seed: int = 0,
                                   folds: int = 2) -> dict:
    """Validation metrics of the threshold remedy that a selection on validation may use: thresholds tuned on
    all but one fold of the validation rows, scored on the held-out fold, metrics averaged over the folds.

    Scoring thresholds on the rows that tuned them flatters the remedy (it wins any selection on validation by
    construction); cross-fitting keeps tuning and scoring apart without touching the test split. The thresholds
    applied to the test split are still tuned on the whole validation split (:func:`tune_thresholds`).
    A metric undefined on any fold (e.g. a label with no positives) is None.
    """
    y = np.asarray(y_true_val)
    s = np.asarray(y_score_val)
    order = np.random.default_rng(seed).permutation(len(y))
    parts = np.array_split(order, folds)
    per_fold = []
    for k, held in enumerate(parts):
        fit = np.concatenate([p for j, p in enumerate(parts) if j != k])
        thr = tune_thresholds(y[fit], s[fit], metric=metric)
        per_fold.append(evaluate(y[held], s[held], task, class_names, n_boot=0, threshold=thr)["metrics"])
    out = {}
    for key in per_fold[0]:
        vals = [m.get(key) for m in per_fold]
        out[key] = None if any(v is None for v in vals) else float(np.mean(vals))
    return out


def apply_thresholds(y_score: np.ndarray, thresholds: np.ndarray, task: str) -> np.ndarray:
    """Predictions from scores: (N,) class indices for binary multiclass, (N, C) 0/1 for multi-label, by
    the one rule of :func:`medlib.metrics.classification.predict_labels` (a score at or above its threshold is positive)."""
    s = np.asarray(y_score)
    t = np.asarray(thresholds, dtype=np.float64)
    if task == "multiclass" and (s.ndim != 2 or s.shape[1] != 2 or t.size != 1):
        raise MedlibError("apply_thresholds: a single threshold needs binary (N, 2) scores. Fix: use argmax")
    if task not in ("multiclass", "multilabel"):
        raise MedlibError(f"apply_thresholds: unknown task {task!r}. Fix: use 'multiclass' or 'multilabel'")
    return predict_labels(s, task, t)
