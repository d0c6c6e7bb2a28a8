"""Metrics for classification and retrieval, with 95% bootstrap intervals.

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

Undefined metrics (e.g. AUROC with one class present) are ``None``. Bootstrap intervals are percentile
intervals over ``n_boot`` resamples of rows (seeded); a resample where a metric is undefined is skipped for
that metric. For speed the resamples are evaluated with vectorised numpy formulas on multinomial row
weights (thousands of scikit-learn calls would cost minutes on two CPU cores); ``tests/test_metrics.py``
checks that these formulas equal scikit-learn on the unresampled data.
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Sequence

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

from .errors import fail

ECE_BINS = 15
_BOOT_CHUNK = 100  # resamples evaluated at once (bounds memory at _BOOT_CHUNK x N weights)


# ---- public API -----------------------------------------------------------------------------------------------


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
    return float(_ece_weighted(w, *_ece_parts(y_true, y_score, n_bins), n_bins)[0])


def evaluate(
    y_true: np.ndarray,
    y_score: np.ndarray,
    task: str,
    class_names: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    threshold: float | Sequence[float] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Headline metrics, 95% bootstrap intervals, per-class scores and confusion matrix.

    Returns ``{"metrics": {...}, "ci95": {metric: [lo, hi]}, "per_class": {cls: {...}}, "confusion": ...}``;
    multilabel results (and binary multiclass ones evaluated with a ``threshold``) also carry ``"threshold"`` (one per label) and ``"auroc_skipped"`` (labels without
    both classes). See the module docstring for the definitions.
    """
    class_names = [str(c) for c in class_names]
    y_true, y_score = check_predictions(y_true, y_score, task, class_names)
    if task == "multiclass":
        t = None if threshold is None else _binary_threshold(threshold, len(class_names))
        out = _evaluate_multiclass(y_true, y_score, class_names, t)
        boot = lambda w: _boot_multiclass(w, y_true, y_score, t)  # noqa: E731
    else:
        thr = _thresholds(threshold, len(class_names))
        out = _evaluate_multilabel(y_true, y_score, class_names, thr)
        boot = lambda w: _boot_multilabel(w, y_true, y_score, thr)  # noqa: E731
    out["ci95"] = _bootstrap(boot, len(y_true), out["metrics"], n_boot, seed)
    return out


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
    bootstrap, ``medlib.imbalance.apply_thresholds`` and threshold tuning, so all agree at the boundary.
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


RETRIEVAL_KS = (1, 5, 10)
_SIM_CHUNK = 512  # image rows of the similarity matrix held at once (bounds memory for COCO's 5k x 25k)


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    ks: Sequence[int] = RETRIEVAL_KS,
    text_to_image: np.ndarray | None = None,
) -> dict[str, float]:
    """Image->text and text->image Recall@K from embeddings (L2-normalised here, cosine similarity).

    The one Recall@K of the package: evaluation (``results.save_retrieval_run``) and the validation metric of
    contrastive runs (``finetune``) both call it. ``text_to_image`` (M,) gives the image index of each caption
    (several captions per image: Flickr30K/COCO have five); default: one caption per image, caption i belongs to
    image i. The standard protocol (CLIP_benchmark's ``zeroshot_retrieval``): t2i, each caption is a query and a
    hit when its image is in its top K; i2t, each image is a query and a hit when ANY of its captions is in its
    top K. Ties count against the query (see :func:`retrieval_ranks`).
    Returns ``{"i2t_R@1": ..., ..., "t2i_R@10": ..., "mean_recall": ...}``.
    """
    i2t_rank, t2i_rank = retrieval_ranks(image_emb, text_emb, text_to_image)
    return recall_from_ranks(i2t_rank, t2i_rank, ks)


def recall_from_ranks(i2t_rank: np.ndarray, t2i_rank: np.ndarray, ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, float]:
    """Recall@K from per-query ranks (0 = first): the mean of the hit vectors ``rank < K``."""
    hits = retrieval_hits(i2t_rank, t2i_rank, ks)
    out = {k: float(np.mean(v)) for k, v in hits.items()}
    out["mean_recall"] = float(np.mean(list(out.values())))
    return out


def retrieval_hits(i2t_rank: np.ndarray, t2i_rank: np.ndarray, ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, np.ndarray]:
    """Per-query 0/1 hit vectors ``{"i2t_R@K": (N_img,), "t2i_R@K": (N_txt,)}``: what a (paired) bootstrap over
    queries resamples. Keys in the order of :func:`retrieval_recall`."""
    i2t_rank, t2i_rank = np.asarray(i2t_rank), np.asarray(t2i_rank)
    out = {f"i2t_R@{k}": (i2t_rank < k).astype(np.float64) for k in ks}
    out.update({f"t2i_R@{k}": (t2i_rank < k).astype(np.float64) for k in ks})
    return out


def retrieval_ranks(image_emb: np.ndarray, text_emb: np.ndarray,
                    text_to_image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query ranks ``(i2t_rank (N_img,), t2i_rank (N_txt,))``, int64, 0 = the correct item is first.

    i2t rank of image i: the number of OTHER images' captions scoring at least as high as i's best caption;
    t2i rank of caption j: the number of other images scoring at least as high as j's image. So ties count
    against the query (duplicate captions never lift a score), and with one correct candidate a query's rank + 1
    is scikit-learn's per-query ``coverage_error`` (ties get the maximal rank). Computed over chunks of image rows
    (float64 similarities), so a 5k x 25k problem never holds the whole matrix.
    Own code: scikit-learn has no Recall@K for several positives per query.
    """
    a, b = _normalised_pair(image_emb, text_emb)
    n_img, n_txt = len(a), len(b)
    t2i = _check_text_to_image(text_to_image, n_img, n_txt)
    if np.bincount(t2i, minlength=n_img).min() == 0:
        raise fail("retrieval_recall", "an image has no caption in text_to_image",
                   "give every image at least one caption (or drop captionless images)")
    chunks = [(lo, min(lo + _SIM_CHUNK, n_img)) for lo in range(0, n_img, _SIM_CHUNK)]
    # Pass 1: each caption's score with its own image, taken from the same matrix products as pass 2 (an einsum
    # would round differently and split exact ties).
    correct = np.empty(n_txt)
    for lo, hi in chunks:
        mine = np.flatnonzero((t2i >= lo) & (t2i < hi))
        correct[mine] = (a[lo:hi] @ b.T)[t2i[mine] - lo, mine]
    i2t_rank = np.zeros(n_img, np.int64)
    t2i_rank = np.zeros(n_txt, np.int64)
    for lo, hi in chunks:
        sim = a[lo:hi] @ b.T  # (chunk, N_txt)
        own = t2i[None, :] == np.arange(lo, hi)[:, None]  # own[r, j]: caption j belongs to image lo + r
        best_own = np.where(own, sim, -np.inf).max(axis=1)
        i2t_rank[lo:hi] = ((sim >= best_own[:, None]) & ~own).sum(axis=1)
        t2i_rank += ((sim >= correct[None, :]) & ~own).sum(axis=0)
    return i2t_rank, t2i_rank


def similarity(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity (N_img, N_txt) of two embedding matrices (float64)."""
    a, b = _normalised_pair(image_emb, text_emb)
    return a @ b.T


def _normalised_pair(image_emb: np.ndarray, text_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both embedding matrices as float64 with unit rows (checked: non-empty, same width)."""
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(text_emb, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise fail("retrieval_recall", f"embeddings must be non-empty (N, D) and (M, D), got {a.shape} and {b.shape}",
                   "pass image and text embeddings of the same width")
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a, b


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


def _check_text_to_image(text_to_image, n_img: int, n_txt: int) -> np.ndarray:
    if text_to_image is None:
        if n_img != n_txt:
            raise fail("retrieval_recall", f"{n_img} images but {n_txt} captions and no text_to_image",
                       "pass text_to_image (the image index of each caption)")
        return np.arange(n_img)
    t2i = np.asarray(text_to_image)
    if t2i.shape != (n_txt,) or not np.issubdtype(t2i.dtype, np.integer) or t2i.min() < 0 or t2i.max() >= n_img:
        raise fail("retrieval_recall", f"text_to_image must be {n_txt} integer image indices in 0..{n_img - 1}",
                   "pass one image index per caption")
    return t2i.astype(np.int64)


# ---- point estimates (scikit-learn) ---------------------------------------------------------------------------


def _clean(x: float) -> float | None:
    x = float(x)
    return None if not np.isfinite(x) else x


def _per_class(y_true, y_pred, class_names, labels) -> dict[str, dict[str, Any]]:
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(class_names)}


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
            "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(), **out}


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
            "auroc_skipped": [name for j, name in enumerate(class_names) if not both[j]]}


# ---- bootstrap (vectorised over row weights) ------------------------------------------------------------------


def _bootstrap(boot_fn, n: int, point: dict[str, Any], n_boot: int, seed: int) -> dict[str, list[float] | None]:
    """Percentile 95% intervals; ``boot_fn(W)`` maps (B, N) row weights to {metric: (B,) values, NaN = undefined}."""
    if not n_boot:
        return {}
    values: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for w in _resample_weights(n, n_boot, seed):
        res = boot_fn(w)
        for k in values:
            values[k].append(res[k])
    ci: dict[str, list[float] | None] = {}
    for k, chunks in values.items():
        v = np.concatenate(chunks)
        v = v[np.isfinite(v)]
        ci[k] = [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) and point[k] is not None else None
    return ci


def _resample_weights(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` rows as (B, n) weight chunks: ``default_rng(seed).integers(0, n, (B, n))``
    drawn chunk by chunk (B <= _BOOT_CHUNK); resampling rows with replacement == weighting each row by how often
    it was drawn."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _BOOT_CHUNK):
        b = min(_BOOT_CHUNK, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        yield np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


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


def _ece_parts(y_true, y_score, n_bins):
    conf = y_score.max(axis=1)
    correct = (y_score.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], conf, side="right"), 0, n_bins - 1)
    return conf, correct, bins


def _ece_weighted(w, conf, correct, bins, n_bins):
    onehot = np.eye(n_bins)[bins]  # (N, bins)
    gap = w @ (onehot * (correct - conf)[:, None])  # (B, bins): sum of (correct - confidence) per bin
    return np.abs(gap).sum(axis=1) / w.sum(axis=1)


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
        out["ece"] = _ece_weighted(w, *_ece_parts(y_true, y_score, ECE_BINS), ECE_BINS)
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


# ---- paired bootstrap of a difference between two methods ------------------------------------------------------


def paired_bootstrap(
    y_true: np.ndarray,
    scores_a: Sequence[np.ndarray],
    scores_b: Sequence[np.ndarray],
    task: str,
    class_names: Sequence[str],
    metric: str,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    thresholds_a: Sequence[Any] | None = None,
    thresholds_b: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Paired bootstrap of ``metric(A) - metric(B)`` on the same test rows, 95% percentile interval.

    ``scores_a[s]`` and ``scores_b[s]`` are the two methods' ``y_score`` for seed ``s`` (pairs of runs trained with
    the same seed; a method without training randomness, such as zero-shot, repeats its one array). All rows are
    the same test rows in the same order as ``y_true``. One pair gives the per-seed difference. Several pairs give
    the **pooled** difference: the mean over seeds of the per-seed differences, and each bootstrap replicate draws
    one set of row indices that is applied to both methods *and* every seed (rows resampled jointly across methods
    and seeds), so the interval reflects the test sample while the mean over seeds averages training randomness.

    The point estimate uses :func:`evaluate`'s scikit-learn definitions; replicates use the same vectorised
    formulas and row resampling (:func:`_resample_weights` with ``seed``) as :func:`evaluate`'s intervals. A
    replicate where the metric is undefined for any run is skipped. ``thresholds_*``: per-seed thresholds as stored
    in the predictions files (multi-label, or binary runs with a tuned threshold); None = argmax / 0.5. Identical
    predictions give a difference of exactly 0 with a 0-width interval. Returns ``{"diff", "ci_low", "ci_high", "n", "n_boot", "boot_seed", "n_seeds", "per_seed"}``.
    """
    if len(scores_a) != len(scores_b) or not scores_a:
        raise fail("paired_bootstrap", f"need one score array per seed for both methods, got {len(scores_a)} and "
                   f"{len(scores_b)}", "pass lists of the same length (one entry per seed)")
    class_names = [str(c) for c in class_names]
    thresholds_a = list(thresholds_a) if thresholds_a is not None else [None] * len(scores_a)
    thresholds_b = list(thresholds_b) if thresholds_b is not None else [None] * len(scores_b)
    y, _ = check_predictions(y_true, scores_a[0], task, class_names)
    pairs, per_seed = [], []
    for sa, sb, ta, tb in zip(scores_a, scores_b, thresholds_a, thresholds_b):
        runs = []
        for score, thr in ((sa, ta), (sb, tb)):
            yt, ys = check_predictions(y_true, score, task, class_names)
            value = evaluate(yt, ys, task, class_names, n_boot=0, threshold=thr)["metrics"].get(metric, _MISSING)
            if value is _MISSING:
                raise fail("paired_bootstrap", f"unknown metric {metric!r} for task {task!r}",
                           "use a metric that evaluate() reports for this task")
            runs.append((value, _boot_function(task, yt, ys, thr)))
        (va, fa), (vb, fb) = runs
        if va is None or vb is None:
            raise fail("paired_bootstrap", f"{metric} is undefined on these test rows for one of the methods",
                       "compare on a metric defined for both runs")
        per_seed.append(va - vb)
        pairs.append((fa, fb))
    diffs = []
    for w in _resample_weights(len(y), n_boot, seed):
        d = np.stack([fa(w)[metric] - fb(w)[metric] for fa, fb in pairs])  # (seeds, B)
        diffs.append(d.mean(axis=0))  # NaN when undefined for any seed
    boot = np.concatenate(diffs) if diffs else np.array([])
    boot = boot[np.isfinite(boot)]
    lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5])) if len(boot) else (None, None)
    return {"diff": float(np.mean(per_seed)), "ci_low": lo, "ci_high": hi, "n": int(len(y)), "n_boot": int(n_boot),
            "boot_seed": int(seed), "n_seeds": len(per_seed), "per_seed": [float(d) for d in per_seed]}


_MISSING = object()


def _boot_function(task: str, y_true: np.ndarray, y_score: np.ndarray, threshold: Any):
    """``w -> {metric: (B,) values}`` for one run, the formulas :func:`evaluate` bootstraps with."""
    if task == "multiclass":
        t = None if threshold is None else _binary_threshold(threshold, y_score.shape[1])
        return lambda w: _boot_multiclass(w, y_true, y_score, t)
    thr = _thresholds(threshold, y_score.shape[1])
    return lambda w: _boot_multilabel(w, y_true, y_score, thr)
