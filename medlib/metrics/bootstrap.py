"""Bootstrap intervals: resampled rows as weights, percentile intervals, and paired differences.

:func:`evaluate` gives a run's metrics with 95% percentile intervals over ``n_boot`` resamples of its test rows
(seeded); a resample where a metric is undefined is skipped for that metric. :func:`paired_interval` is the one
paired bootstrap of a difference ``A - B`` on the same rows, over statistic functions of row weights;
:func:`paired_bootstrap` applies it to two classification methods' predictions, and retrieval applies it to
per-query hit vectors (:func:`mean_statistic`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import fail
from .classification import (_binary_threshold, _evaluate_multiclass, _evaluate_multilabel, _thresholds,
                             check_predictions)
from .replicates import replicate_fn

_BOOT_CHUNK = 100  # resamples evaluated at once (bounds memory at _BOOT_CHUNK x N weights)
Statistic = Callable[[np.ndarray], np.ndarray]  # (B, N) row weights -> (B,) values (NaN = undefined)


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
        boot = replicate_fn(task, y_true, y_score, t)
    else:
        thr = _thresholds(threshold, len(class_names))
        out = _evaluate_multilabel(y_true, y_score, class_names, thr)
        boot = replicate_fn(task, y_true, y_score, thr)
    out["ci95"] = percentile_intervals(boot, len(y_true), out["metrics"], n_boot, seed)
    return out


def percentile_intervals(boot_fn, n: int, point: dict[str, Any], n_boot: int, seed: int) -> dict[str, list[float] | None]:
    """Percentile 95% intervals; ``boot_fn(W)`` maps (B, N) row weights to {metric: (B,) values, NaN = undefined}."""
    if not n_boot:
        return {}
    values: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for w in resample_weights(n, n_boot, seed):
        res = boot_fn(w)
        for k in values:
            values[k].append(res[k])
    ci: dict[str, list[float] | None] = {}
    for k, chunks in values.items():
        v = np.concatenate(chunks)
        v = v[np.isfinite(v)]
        ci[k] = [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) and point[k] is not None else None
    return ci


def resample_weights(n: int, n_boot: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` rows as (B, n) weight chunks: ``default_rng(seed).integers(0, n, (B, n))``
    drawn chunk by chunk (B <= _BOOT_CHUNK); resampling rows with replacement == weighting each row by how often
    it was drawn."""
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _BOOT_CHUNK):
        b = min(_BOOT_CHUNK, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        yield np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


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
    formulas and row resampling (:func:`resample_weights` with ``seed``) as :func:`evaluate`'s intervals. A
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
            runs.append((value, replicate_fn(task, yt, ys, thr)))
        (va, fa), (vb, fb) = runs
        if va is None or vb is None:
            raise fail("paired_bootstrap", f"{metric} is undefined on these test rows for one of the methods",
                       "compare on a metric defined for both runs")
        per_seed.append(va - vb)
        pairs.append((fa, fb))
    stats = [(lambda w, fa=fa: fa(w)[metric], lambda w, fb=fb: fb(w)[metric]) for fa, fb in pairs]
    lo, hi = paired_interval(stats, len(y), n_boot, seed)
    return {"diff": float(np.mean(per_seed)), "ci_low": lo, "ci_high": hi, "n": int(len(y)), "n_boot": int(n_boot),
            "boot_seed": int(seed), "n_seeds": len(per_seed), "per_seed": [float(d) for d in per_seed]}


def paired_interval(pairs: Sequence[tuple[Statistic, Statistic]], n: int, n_boot: int,
                    seed: int) -> tuple[float | None, float | None]:
    """95% percentile interval of the mean over pairs of ``stat_a(w) - stat_b(w)``, over ``n_boot`` resamples of
    the ``n`` shared rows: each replicate draws one set of rows applied to both methods and every pair. A
    replicate where a statistic is undefined (NaN) for any pair is skipped; (None, None) when none is left."""
    diffs = []
    for w in resample_weights(n, n_boot, seed):
        d = np.stack([fa(w) - fb(w) for fa, fb in pairs])  # (pairs, B)
        diffs.append(d.mean(axis=0))  # NaN when undefined for any pair
    boot = np.concatenate(diffs) if diffs else np.array([])
    boot = boot[np.isfinite(boot)]
    if not len(boot):
        return None, None
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


def mean_statistic(values: np.ndarray) -> Statistic:
    """The weighted mean of per-row values (a hit vector: Recall@K) as a statistic of row weights."""
    v = np.asarray(values, dtype=np.float64)
    return lambda w: (w @ v) / w.sum(axis=1)


_MISSING = object()


