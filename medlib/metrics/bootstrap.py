"""Bootstrap intervals: resampled rows as weights, percentile intervals, and paired differences.

One resampling rule serves every interval (:func:`resample_weights`): a replicate draws the ``n`` resampling units
(test rows; for retrieval, test images with all their captions) with replacement, and a replicate that loses a
class of the test split (:func:`class_set`: a class with no row left, a multi-label label left without positives
or without negatives) is discarded and redrawn, so every replicate averages over the same classes as the point
estimate; how many were redrawn is recorded.

:func:`evaluate` gives a run's metrics with 95% percentile intervals over ``n_boot`` replicates (seeded); those
carry the test split's sampling variance only, conditional on the run's trained model. :func:`paired_interval` is
the one paired bootstrap of a difference ``A - B`` on the same units, over statistic functions of unit weights:
with several seeds it is two-level (each replicate resamples the seeds too), so a pooled interval carries the
training randomness as well as the test sampling. :func:`paired_bootstrap` applies it to two classification
methods' predictions, retrieval to per-query hit vectors (:func:`mean_statistic`, captions weighted by their image).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..errors import fail
from .classification import (_binary_threshold, _evaluate_multiclass, _evaluate_multilabel, _thresholds,
                             check_predictions)
from .replicates import replicate_fn
from .verdicts import bootstrap_p_value, seed_interval

_BOOT_CHUNK = 100  # replicates evaluated at once (bounds memory at _BOOT_CHUNK x N weights)
MAX_DRAWS = 50  # draws per kept replicate at most: a class set kept by under 1 replicate in 50 gives fewer replicates
SEED_STREAM = 1  # the seed draws of a two-level replicate come from default_rng([seed, SEED_STREAM])
RESAMPLING = ("test rows resampled with replacement; replicates that lose a class of the test split are redrawn")
Statistic = Callable[[np.ndarray], np.ndarray]  # (B, N) unit weights -> (B,) values (NaN = undefined)


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

    Returns ``{"metrics": {...}, "ci95": {metric: [lo, hi]}, "bootstrap": {...}, "per_class": {cls: {...}},
    "confusion": ..., "degenerate": str | None}``; multilabel results (and binary multiclass ones evaluated with a
    ``threshold``) also carry ``"threshold"`` (one per label) and ``"auroc_skipped"`` (labels without both
    classes). ``bootstrap``: ``replicates`` kept, ``redrawn`` (replicates that lost a class, see
    :func:`resample_weights`) and the ``resampling`` rule. ``degenerate`` names a model whose decisions carry no
    information (:func:`medlib.metrics.classification.degenerate`), else None.
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
    tally: dict[str, int] = {}
    out["ci95"] = percentile_intervals(boot, len(y_true), out["metrics"], n_boot, seed,
                                       keep=class_set(y_true, task), tally=tally)
    out["bootstrap"] = {"replicates": tally.get("kept", 0), "redrawn": tally.get("redrawn", 0),
                        "resampling": RESAMPLING}
    return out


def class_set(y_true: np.ndarray, task: str) -> np.ndarray | None:
    """The test split's class set as (N, K) 0/1 columns a replicate must keep weight on (:func:`resample_weights`):
    multiclass, one column per class present in ``y_true``; multilabel, the positives and the negatives of every
    label that has both. None when there is nothing to keep."""
    y = np.asarray(y_true)
    if task == "multiclass":
        y = y.reshape(len(y), -1)[:, 0].astype(np.int64)
        cols = [(y == c) for c in np.unique(y)]
    else:
        cols = [col for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y) for col in (y[:, j] == 1, y[:, j] == 0)]
    return np.stack(cols, axis=1).astype(np.float64) if cols else None


def percentile_intervals(boot_fn, n: int, point: dict[str, Any], n_boot: int, seed: int,
                         keep: np.ndarray | None = None,
                         tally: dict[str, int] | None = None) -> dict[str, list[float] | None]:
    """Percentile 95% intervals; ``boot_fn(W)`` maps (B, N) row weights to {metric: (B,) values, NaN = undefined};
    replicates drawn by :func:`resample_weights` (``keep``, ``tally`` as there)."""
    if not n_boot:
        return {}
    values: dict[str, list[np.ndarray]] = {k: [] for k in point}
    for w in resample_weights(n, n_boot, seed, keep=keep, tally=tally):
        res = boot_fn(w)
        for k in values:
            values[k].append(res[k])
    ci: dict[str, list[float] | None] = {}
    for k, chunks in values.items():
        v = np.concatenate(chunks) if chunks else np.array([])
        v = v[np.isfinite(v)]
        ci[k] = [float(x) for x in np.percentile(v, [2.5, 97.5])] if len(v) and point[k] is not None else None
    return ci


def resample_weights(n: int, n_boot: int, seed: int, keep: np.ndarray | None = None,
                     tally: dict[str, int] | None = None) -> Iterator[np.ndarray]:
    """``n_boot`` bootstrap replicates of ``n`` units as (B, n) weight chunks (B <= _BOOT_CHUNK): each chunk is
    ``default_rng(seed).integers(0, n, (B, n))``, drawn chunk by chunk; resampling with replacement == weighting each
    unit by how often it was drawn.

    ``keep`` (N, K) (:func:`class_set`): a replicate that leaves any of its columns without weight (a class lost) is
    discarded and another is drawn in its place, at most ``MAX_DRAWS * n_boot`` draws in all (then fewer than
    ``n_boot`` are returned). Where no replicate loses a class the weights are those of the plain draw.
    ``tally`` (a dict, filled in): ``kept`` and ``redrawn`` replicates."""
    rng = np.random.default_rng(seed)
    kept = drawn = 0
    while kept < n_boot and drawn < MAX_DRAWS * n_boot:
        b = min(_BOOT_CHUNK, n_boot - kept)
        idx = rng.integers(0, n, size=(b, n))
        drawn += b
        w = np.bincount((idx + np.arange(b)[:, None] * n).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        if keep is not None:
            w = w[((w @ keep) > 0).all(axis=1)]
        kept += len(w)
        if len(w):
            yield w
    if tally is not None:
        tally.update(kept=kept, redrawn=drawn - kept)


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
    the same test rows in the same order as ``y_true``. One pair gives the per-seed difference: its interval carries
    the test split's sampling variance, conditional on that training run. Several pairs give the **pooled**
    difference, the mean over seeds of the per-seed differences, with the two-level interval of
    :func:`paired_interval` (seeds and rows resampled), and beside it the seed-level t-interval of the per-seed
    differences (:func:`medlib.metrics.verdicts.seed_interval`).

    The point estimate uses :func:`evaluate`'s scikit-learn definitions; replicates use the same vectorised
    formulas and the same resampling rule (:func:`resample_weights` with ``seed``, the test split's class set kept)
    as :func:`evaluate`'s intervals. A replicate where the metric is undefined for any run is skipped.
    ``thresholds_*``: per-seed thresholds as stored in the predictions files (multi-label, or binary runs with a
    tuned threshold); None = argmax / 0.5. Identical predictions give a difference of exactly 0 with a 0-width
    interval. Returns :func:`paired_interval`'s keys plus ``{"diff", "n", "n_boot", "boot_seed", "n_seeds",
    "per_seed", "seed_ci_low", "seed_ci_high", "seed_p_value"}``.
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
    out = paired_interval(stats, len(y), n_boot, seed, keep=class_set(y, task))
    return {"diff": float(np.mean(per_seed)), **out, "n": int(len(y)), "n_boot": int(n_boot), "boot_seed": int(seed),
            **seed_summary(per_seed)}


def seed_summary(per_seed: Sequence[float]) -> dict[str, Any]:
    """``n_seeds``, ``per_seed`` and the seed-level t-interval (``seed_ci_low``, ``seed_ci_high``, ``seed_p_value``;
    None for one seed) of per-seed differences."""
    lo, hi, p = seed_interval(per_seed)
    return {"n_seeds": len(per_seed), "per_seed": [float(d) for d in per_seed], "seed_ci_low": lo,
            "seed_ci_high": hi, "seed_p_value": p}


def paired_interval(pairs: Sequence[tuple[Statistic, Statistic]], n: int, n_boot: int, seed: int,
                    keep: np.ndarray | None = None) -> dict[str, Any]:
    """95% percentile interval of the mean over pairs of ``stat_a(w) - stat_b(w)``, over ``n_boot`` replicates of
    the ``n`` shared units (:func:`resample_weights`, with ``keep``): each replicate draws one set of units applied to
    both methods and every pair. With several pairs (seeds) the bootstrap is two-level: each replicate also draws
    the pairs with replacement (``default_rng([seed, SEED_STREAM])``, multinomial counts) and averages the drawn
    pairs' differences, so the interval carries the spread between seeds as well as the test sampling. A
    replicate where a statistic is undefined (NaN) for any pair is skipped.

    Returns ``{"ci_low", "ci_high", "p_value", "replicates", "redrawn"}``: the interval ((None, None) when no
    replicate is left), the two-sided p-value of a zero difference from the bootstrap standard error
    (:func:`medlib.metrics.verdicts.bootstrap_p_value`), replicates used and replicates redrawn."""
    rng_pairs = np.random.default_rng([seed, SEED_STREAM])
    k = len(pairs)
    ones = np.ones((1, n))
    point = float(np.mean([fa(ones)[0] - fb(ones)[0] for fa, fb in pairs]))  # the statistics on the units as drawn
    diffs, tally = [], {}
    for w in resample_weights(n, n_boot, seed, keep=keep, tally=tally):
        d = np.stack([fa(w) - fb(w) for fa, fb in pairs])  # (pairs, B)
        undefined = ~np.isfinite(d).all(axis=0)  # NaN for any pair: the replicate is skipped
        if k > 1:
            counts = rng_pairs.multinomial(k, np.full(k, 1.0 / k), size=d.shape[1])  # (B, pairs)
            mean = (counts.T * np.nan_to_num(d)).sum(axis=0) / k
        else:
            mean = d[0]
        diffs.append(np.where(undefined, np.nan, mean))
    boot = np.concatenate(diffs) if diffs else np.array([])
    boot = boot[np.isfinite(boot)]
    out: dict[str, Any] = {"ci_low": None, "ci_high": None, "p_value": None, "replicates": int(len(boot)),
                           "redrawn": int(tally.get("redrawn", 0))}
    if len(boot):
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out.update(ci_low=float(lo), ci_high=float(hi), p_value=bootstrap_p_value(point, boot))
    return out


def mean_statistic(values: np.ndarray, unit: np.ndarray | None = None) -> Statistic:
    """The weighted mean of per-query values (a hit vector: Recall@K) as a statistic of unit weights. ``unit``
    (one index per query) resamples queries in clusters: a query's weight is its unit's (a caption's is its
    image's, ``text_to_image``), so all of an image's captions are drawn together."""
    v = np.asarray(values, dtype=np.float64)
    if unit is None:
        return lambda w: (w @ v) / w.sum(axis=1)
    u = np.asarray(unit, dtype=np.int64)
    return lambda w: (w[:, u] @ v) / w[:, u].sum(axis=1)


_MISSING = object()
