"""Reading a paired difference ``A - B``: the seed-level interval, p-values, Holm's correction and the verdict.

A pooled difference over several training seeds is read with two intervals
(:func:`medlib.metrics.bootstrap.paired_interval`'s two-level bootstrap over seeds and test rows, and the t-interval
of the per-seed differences, :func:`seed_interval`) and resolved only when both exclude zero on the same side
(:func:`verdict`): with two or three seeds the bootstrap's draw of seeds understates their spread, the t-interval
does not. Its p-value is the larger of the two (:func:`combined_p`, an intersection-union test). Within a family of
comparisons reported together (the pooled rows of one paired-differences table), :func:`holm` adjusts those
p-values and a verdict also needs the adjusted p-value below :data:`ALPHA`.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

ALPHA = 0.05
VERDICTS = ("A higher", "B higher", "not resolved", "n/a")


def seed_interval(per_seed: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """95% t-interval of the mean of per-seed differences and the two-sided one-sample t-test p-value of a zero
    mean (scipy's t distribution, ``n - 1`` degrees of freedom): ``(lo, hi, p)``; ``(None, None, None)`` for one
    seed. Equal differences give a zero-width interval (p 0, or 1 when they are all 0)."""
    d = np.asarray(per_seed, dtype=np.float64)
    if len(d) < 2:
        return None, None, None
    m, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d)))
    if se == 0.0:
        return m, m, 1.0 if m == 0.0 else 0.0
    half = float(stats.t.ppf(1 - ALPHA / 2, len(d) - 1)) * se
    return m - half, m + half, float(2 * stats.t.sf(abs(m) / se, len(d) - 1))


def bootstrap_p_value(diff: float, boot: np.ndarray) -> float:
    """Two-sided p-value of a zero difference from the bootstrap standard error (normal approximation,
    Efron & Tibshirani 1993, ch. 16): ``2 * Phi(-|diff| / sd(boot))``. Unlike a count of replicates beyond zero it
    has no floor at ``2 / B``, so Holm's correction over a family stays meaningful. A zero-spread bootstrap gives 1
    for a zero difference and 0 otherwise."""
    se = float(np.std(np.asarray(boot, dtype=np.float64)))
    if se == 0.0:
        return 1.0 if diff == 0 else 0.0
    return float(2 * stats.norm.sf(abs(diff) / se))


def combined_p(p_value: float | None, seed_p_value: float | None) -> float | None:
    """The p-value of a difference read with both intervals: the larger of the bootstrap's and the seed-level
    t-test's (one seed: the bootstrap's)."""
    ps = [p for p in (p_value, seed_p_value) if _finite(p)]
    return float(max(ps)) if ps else None


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down adjusted p-values (Holm 1979), in the input order; None stays None and is not counted in
    the family. ``p_(i)`` sorted ascending becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    Own code: statsmodels' ``multipletests(method="holm")`` gives the same; a dependency for six lines is not
    worth it."""
    idx = [i for i, p in enumerate(p_values) if _finite(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: float(p_values[i]))):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


def verdict(ci_low: Any, ci_high: Any, seed_ci_low: Any = None, seed_ci_high: Any = None,
            p_holm: Any = None) -> str:
    """``A higher`` / ``B higher`` when the interval of ``A - B`` excludes zero on that side, and so does the
    seed-level interval where there is one (several seeds), and the Holm-adjusted p-value is below :data:`ALPHA`
    where the row belongs to a family; ``not resolved`` otherwise; ``n/a`` without an interval."""
    if not (_finite(ci_low) and _finite(ci_high)):
        return "n/a"
    side = _side(ci_low, ci_high)
    if _finite(seed_ci_low) and _finite(seed_ci_high) and _side(seed_ci_low, seed_ci_high) != side:
        side = 0
    if _finite(p_holm) and float(p_holm) >= ALPHA:
        side = 0
    return {1: "A higher", -1: "B higher"}.get(side, "not resolved")


def _side(lo: Any, hi: Any) -> int:
    return 1 if float(lo) > 0 else -1 if float(hi) < 0 else 0


def _finite(x: Any) -> bool:
    try:
        return x is not None and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False
