"""The threshold remedy's validation score, read when a remedy is chosen on validation, is cross-fitted:
thresholds are scored on validation rows that did not tune them (in-sample scoring flatters the remedy)."""

import numpy as np

from medlib.metrics.thresholds import cross_fitted_threshold_metrics, tune_thresholds
from medlib.metrics import evaluate


def _noise(n=400, seed=0):
    """Binary labels and scores with NO signal: any threshold's true balanced accuracy is 0.5."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = rng.random(n)
    return y, np.stack([1 - p1, p1], axis=1)


def test_in_sample_tuning_flatters_noise_cross_fitting_does_not():
    y, s = _noise()
    thr = tune_thresholds(y, s, metric="balanced_acc")
    in_sample = evaluate(y, s, "multiclass", ["a", "b"], n_boot=0, threshold=thr)["metrics"]["balanced_acc"]
    cross = cross_fitted_threshold_metrics(y, s, "multiclass", ["a", "b"], metric="balanced_acc", seed=0)
    assert in_sample > 0.55  # tuned and scored on the same rows: looks better than chance
    assert abs(cross["balanced_acc"] - 0.5) < 0.05  # honest: chance on pure noise
    assert cross["balanced_acc"] < in_sample


def test_cross_fitting_equals_a_hand_computed_two_fold_score():
    y, s = _noise(n=101, seed=3)
    order = np.random.default_rng(7).permutation(len(y))
    a, b = np.array_split(order, 2)
    want = []
    for fit, held in ((b, a), (a, b)):
        t = tune_thresholds(y[fit], s[fit], metric="balanced_acc")
        want.append(evaluate(y[held], s[held], "multiclass", ["a", "b"], n_boot=0, threshold=t)["metrics"]["acc"])
    got = cross_fitted_threshold_metrics(y, s, "multiclass", ["a", "b"], metric="balanced_acc", seed=7)
    assert got["acc"] == np.mean(want)

