"""Paired bootstrap of a metric difference (medlib.metrics.paired_bootstrap) against a brute-force loop over the
same resamples with scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from medlib.errors import MedlibError
from medlib.metrics import paired_bootstrap


def _scores(y, signal, rng, c=2):
    s = rng.dirichlet(np.ones(c), len(y))
    s[np.arange(len(y)), y] += signal * rng.random(len(y))
    return s / s.sum(axis=1, keepdims=True)


SK = {"acc": lambda y, s: accuracy_score(y, s.argmax(1)),
      "balanced_acc": lambda y, s: balanced_accuracy_score(y, s.argmax(1)),
      "auroc": lambda y, s: roc_auc_score(y, s[:, 1])}


def _brute(y, pairs, metric, n_boot, seed):
    """The documented two-level draw, one replicate at a time: rows resampled (``default_rng(seed)``, chunks of
    at most 100; a resample that loses a class is redrawn), then, with several pairs, the seeds drawn with
    replacement (``default_rng([seed, 1])``); every run scored on the resample with scikit-learn."""
    rng, rng_seeds = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    diffs = []
    while len(diffs) < n_boot:
        for rows in rng.integers(0, len(y), size=(min(100, n_boot - len(diffs)), len(y))):
            if len(np.unique(y[rows])) < len(np.unique(y)):
                continue  # loses a class: redrawn
            d = [SK[metric](y[rows], a[rows]) - SK[metric](y[rows], b[rows]) for a, b in pairs]
            if len(pairs) > 1:
                counts = rng_seeds.multinomial(len(pairs), np.full(len(pairs), 1 / len(pairs)))
                d = np.repeat(d, counts)
            diffs.append(np.mean(d))
    point = np.mean([SK[metric](y, a) - SK[metric](y, b) for a, b in pairs])
    return point, np.percentile(diffs, [2.5, 97.5])


@pytest.mark.parametrize("metric", ["acc", "balanced_acc", "auroc"])
@pytest.mark.parametrize("n_seeds", [1, 3])
def test_equals_brute_force(metric, n_seeds):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 25)
    pairs = [(_scores(y, 1.0, rng), _scores(y, 0.3, rng)) for _ in range(n_seeds)]
    out = paired_bootstrap(y, [a for a, _ in pairs], [b for _, b in pairs], "multiclass", ["n", "p"], metric,
                           n_boot=80, seed=11)
    point, (lo, hi) = _brute(y, pairs, metric, 80, 11)
    assert out["diff"] == pytest.approx(point, abs=1e-12)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert out["n"] == 25 and out["n_seeds"] == n_seeds and len(out["per_seed"]) == n_seeds


def test_pooled_is_mean_of_per_seed_differences():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    a = [_scores(y, 1.0, rng) for _ in range(3)]
    b = [_scores(y, 0.2, rng) for _ in range(3)]
    pooled = paired_bootstrap(y, a, b, "multiclass", ["n", "p"], "acc", n_boot=50)
    singles = [paired_bootstrap(y, [x], [z], "multiclass", ["n", "p"], "acc", n_boot=50)["diff"] for x, z in zip(a, b)]
    assert pooled["diff"] == pytest.approx(np.mean(singles))
    assert pooled["per_seed"] == pytest.approx(singles)


def test_identical_predictions_give_exactly_zero():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    s = _scores(y, 0.5, rng, c=3)
    for metric in ("acc", "auroc", "macro_f1", "ece"):
        out = paired_bootstrap(y, [s, s], [s.copy(), s.copy()], "multiclass", ["a", "b", "c"], metric, n_boot=200)
        assert out["diff"] == 0.0 and out["ci_low"] == 0.0 and out["ci_high"] == 0.0


def test_detects_a_real_difference_and_its_sign():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    good, poor = _scores(y, 2.0, rng), _scores(y, 0.1, rng)
    out = paired_bootstrap(y, [good], [poor], "multiclass", ["n", "p"], "acc", n_boot=300)
    assert out["ci_low"] > 0.05 and out["ci_low"] <= out["diff"] <= out["ci_high"]
    flipped = paired_bootstrap(y, [poor], [good], "multiclass", ["n", "p"], "acc", n_boot=300)
    assert flipped["diff"] == pytest.approx(-out["diff"]) and flipped["ci_high"] < -0.05


def test_pairing_narrows_the_interval_of_correlated_methods():
    """Two methods that agree on most rows: the paired interval is much narrower than either method's own."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    a = _scores(y, 0.8, rng)
    b = a.copy()
    flip = rng.choice(300, 15, replace=False)
    b[flip] = b[flip][:, ::-1]
    out = paired_bootstrap(y, [a], [b], "multiclass", ["n", "p"], "acc", n_boot=400)
    own = paired_bootstrap(y, [a], [np.tile([1.0, 0.0], (300, 1))], "multiclass", ["n", "p"], "acc", n_boot=400)
    assert out["ci_high"] - out["ci_low"] < 0.5 * (own["ci_high"] - own["ci_low"])


def test_multilabel_with_thresholds_matches_brute_force():
    rng = np.random.default_rng(5)
    y = (rng.random((40, 3)) < 0.4).astype(int)
    a = np.clip(rng.random((40, 3)) * 0.6 + 0.35 * y, 0, 1)
    b = rng.random((40, 3))
    ta, tb = np.array([0.3, 0.5, 0.7]), np.array([0.5, 0.5, 0.5])
    out = paired_bootstrap(y, [a], [b], "multilabel", ["x", "y", "z"], "balanced_acc", n_boot=60, seed=2,
                           thresholds_a=[ta], thresholds_b=[tb])
    idx = np.random.default_rng(2).integers(0, 40, size=(60, 40))

    def bacc(yy, s, t):
        pred = (s >= t).astype(int)  # no score equals a threshold here, so > and >= agree
        return np.mean([balanced_accuracy_score(yy[:, j], pred[:, j]) for j in range(3)
                        if 0 < yy[:, j].sum() < len(yy)])

    # Compare against evaluate's own rule: the point estimate equals scikit-learn on the full rows.
    from medlib.metrics import evaluate
    expect = (evaluate(y, a, "multilabel", list("xyz"), n_boot=0, threshold=ta)["metrics"]["balanced_acc"]
              - evaluate(y, b, "multilabel", list("xyz"), n_boot=0, threshold=tb)["metrics"]["balanced_acc"])
    assert out["diff"] == pytest.approx(expect)
    assert out["diff"] == pytest.approx(bacc(y, a, ta) - bacc(y, b, tb))
    diffs = [bacc(y[r], a[r], ta) - bacc(y[r], b[r], tb) for r in idx]
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)


def test_bad_input_is_a_medlib_error():
    y = np.array([0, 1, 0, 1])
    s = np.tile([0.5, 0.5], (4, 1))
    with pytest.raises(MedlibError, match="one score array per seed"):
        paired_bootstrap(y, [s, s], [s], "multiclass", ["n", "p"], "acc")
    with pytest.raises(MedlibError, match="unknown metric"):
        paired_bootstrap(y, [s], [s], "multiclass", ["n", "p"], "recall@1")


def test_binary_threshold_runs_use_their_threshold():
    """A thresholded binary run (the threshold remedy) is compared at its threshold (score >= t), not the argmax."""
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 60)
    a, b = _scores(y, 0.5, rng), _scores(y, 0.5, rng)
    out = paired_bootstrap(y, [a], [b], "multiclass", ["n", "p"], "balanced_acc", n_boot=40, seed=4,
                           thresholds_a=[np.array([0.3])], thresholds_b=[None])
    idx = np.random.default_rng(4).integers(0, 60, size=(40, 60))
    pa, pb = (a[:, 1] >= 0.3).astype(int), b.argmax(1)
    diffs = [balanced_accuracy_score(y[r], pa[r]) - balanced_accuracy_score(y[r], pb[r]) for r in idx]
    assert out["diff"] == pytest.approx(balanced_accuracy_score(y, pa) - balanced_accuracy_score(y, pb))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)
