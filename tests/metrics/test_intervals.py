"""Intervals that hold up: seed variance in pooled verdicts, replicates that keep the test split's class set,
image-level (cluster) resampling of captions, and multi-label decisions at validation-chosen thresholds."""

import types

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import balanced_accuracy_score, precision_recall_fscore_support, roc_auc_score

from medlib.metrics import (bootstrap_p_value, evaluate, holm, mean_statistic, paired_bootstrap, paired_interval, seed_interval,
                            tune_thresholds, verdict)
from medlib.studies import comparisons


def _one_hot(pred, c):
    s = np.full((len(pred), c), 0.1 / (c - 1))
    s[np.arange(len(pred)), pred] = 0.9
    return s


# ---- 1. seed variance ------------------------------------------------------------------------------------------


def _seeded_methods(effects, n=600, seed=0):
    """B right on 70% of the rows; seed s of A fixes (effect > 0) or breaks (effect < 0) round(|effect| n) other rows,
    a different set per seed: per-seed accuracy differences ``effects``, each measured precisely on n rows."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    b_ok = rng.random(n) < 0.7
    b = _one_hot(np.where(b_ok, y, 1 - y), 2)
    a_runs = []
    for e in effects:
        ok = b_ok.copy()
        rows = rng.choice(np.flatnonzero(~b_ok if e > 0 else b_ok), int(round(abs(e) * n)), replace=False)
        ok[rows] = e > 0
        a_runs.append(_one_hot(np.where(ok, y, 1 - y), 2))
    return y, a_runs, b


def test_seed_variance_flips_a_row_level_verdict_to_not_resolved():
    """Per-seed differences +0.053, -0.008, +0.069: resampling rows alone (one draw applied to every seed) gives an
    interval above zero; the pooled interval must carry the spread between seeds as well."""
    y, a_runs, b = _seeded_methods([0.053, -0.008, 0.069])
    out = paired_bootstrap(y, a_runs, [b] * 3, "multiclass", ["n", "p"], "acc", n_boot=1000, seed=0)
    assert out["per_seed"] == pytest.approx([32 / 600, -5 / 600, 41 / 600])
    assert out["ci_low"] < 0 < out["ci_high"]  # the two-level bootstrap reaches the seed that lost
    lo, hi, p = seed_interval(out["per_seed"])  # the t-interval over seeds, as scipy gives it
    t_lo, t_hi = stats.t.interval(0.95, 2, loc=np.mean(out["per_seed"]), scale=stats.sem(out["per_seed"]))
    assert (out["seed_ci_low"], out["seed_ci_high"]) == pytest.approx((lo, hi))
    assert (lo, hi) == pytest.approx((t_lo, t_hi))
    assert lo < 0 < hi and p == pytest.approx(stats.ttest_1samp(out["per_seed"], 0).pvalue)
    assert verdict(out["ci_low"], out["ci_high"], out["seed_ci_low"], out["seed_ci_high"]) == "not resolved"
    # three seeds that agree: resolved, and the sign is the method's
    y, a_runs, b = _seeded_methods([0.05, 0.045, 0.055])
    ok = paired_bootstrap(y, a_runs, [b] * 3, "multiclass", ["n", "p"], "acc", n_boot=1000, seed=0)
    assert verdict(ok["ci_low"], ok["ci_high"], ok["seed_ci_low"], ok["seed_ci_high"]) == "A higher"
    assert verdict(-ok["ci_high"], -ok["ci_low"], -ok["seed_ci_high"], -ok["seed_ci_low"]) == "B higher"


def test_a_single_seed_interval_carries_the_test_rows_only():
    y, a_runs, b = _seeded_methods([0.05])
    out = paired_bootstrap(y, a_runs, [b], "multiclass", ["n", "p"], "acc", n_boot=300, seed=0)
    assert out["n_seeds"] == 1 and out["seed_ci_low"] is None and out["seed_p_value"] is None
    assert verdict(out["ci_low"], out["ci_high"]) == "A higher"


def test_holm_adjusts_within_the_family_and_a_verdict_needs_it():
    # brute force from the definition: p_(i) -> max_{j<=i} min(1, (m - j + 1) p_(j)), None left out of the family
    p = [0.01, 0.04, None, 0.03, 0.005]
    assert holm(p) == pytest.approx([0.03, 0.06, None, 0.06, 0.02])
    assert holm([]) == [] and holm([0.5]) == [0.5]
    assert verdict(0.01, 0.05) == "A higher" and verdict(0.01, 0.05, p_holm=0.06) == "not resolved"
    assert verdict(None, 0.1) == "n/a" and verdict(-0.01, 0.05) == "not resolved"
    boot = np.random.default_rng(0).normal(0.03, 0.01, 500)  # the p-value has no 2/B floor: normal approximation
    assert bootstrap_p_value(0.03, boot) == pytest.approx(2 * stats.norm.sf(0.03 / boot.std()))
    assert bootstrap_p_value(0.0, np.zeros(9)) == 1.0 and bootstrap_p_value(0.1, np.full(9, 0.1)) == 0.0


# ---- 2. class set ----------------------------------------------------------------------------------------------


def test_rare_class_interval_keeps_the_class_set():
    """Classes 0 and 1 always right, the one row of class 2 wrong: balanced accuracy 2/3 on the test split. A
    replicate without that row would average over two classes and score 1.0."""
    y = np.array([0] * 30 + [1] * 30 + [2])
    s = _one_hot(np.r_[y[:60], 0], 3)
    out = evaluate(y, s, "multiclass", ["a", "b", "c"], n_boot=200, seed=0)
    assert out["metrics"]["balanced_acc"] == pytest.approx(2 / 3)
    assert out["ci95"]["balanced_acc"] == pytest.approx([2 / 3, 2 / 3])
    assert out["ci95"]["worst_class_recall"] == pytest.approx([0.0, 0.0])
    assert out["bootstrap"]["replicates"] == 200 and out["bootstrap"]["redrawn"] > 50  # ~37% lose the row


def test_paired_rare_class_interval_equals_a_brute_force_with_the_same_class_set():
    rng = np.random.default_rng(1)
    y = np.r_[rng.integers(0, 2, 60), 2]
    a = _one_hot(np.r_[np.where(rng.random(60) < 0.9, y[:60], 1 - y[:60]), 0], 3)  # misses the rare row
    b = _one_hot(np.r_[np.where(rng.random(60) < 0.7, y[:60], 1 - y[:60]), 2], 3)
    out = paired_bootstrap(y, [a], [b], "multiclass", list("abc"), "balanced_acc", n_boot=150, seed=3)
    draws, diffs = np.random.default_rng(3), []
    while len(diffs) < 150:
        for r in draws.integers(0, len(y), size=(min(100, 150 - len(diffs)), len(y))):
            if len(np.unique(y[r])) == 3:  # the documented rule: a replicate that loses a class is redrawn
                diffs.append(balanced_accuracy_score(y[r], a[r].argmax(1)) - balanced_accuracy_score(y[r], b[r].argmax(1)))
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)
    assert out["redrawn"] > 0


def test_multilabel_macro_auroc_interval_averages_over_the_same_labels():
    rng = np.random.default_rng(2)
    y = (rng.random((80, 3)) < [0.4, 0.3, 0.0]).astype(int)
    y[5, 2] = 1  # a label with one positive
    s = np.clip(rng.random((80, 3)) * 0.7 + 0.25 * y, 0, 1)
    s[5, 2] = 0.3  # ranked low: its AUROC is small, and dropping it would lift the mean
    out = evaluate(y, s, "multilabel", list("xyz"), n_boot=120, seed=4)
    draws, reps = np.random.default_rng(4), []
    while len(reps) < 120:
        for r in draws.integers(0, 80, size=(min(100, 120 - len(reps)), 80)):
            if all(0 < y[r, j].sum() < len(r) for j in range(3)):
                reps.append(np.mean([roc_auc_score(y[r, j], s[r, j]) for j in range(3)]))
    assert out["ci95"]["auroc"] == pytest.approx(list(np.percentile(reps, [2.5, 97.5])), abs=1e-12)


# ---- 3. images with five captions ------------------------------------------------------------------------------


def _retrieval_preds(n_img=300, per=5, seed=0):
    """Two methods' per-query ranks; A's gain is the image's: on a third of the images all five captions turn from
    misses into hits."""
    rng = np.random.default_rng(seed)
    t2i = np.repeat(np.arange(n_img), per)
    base_hit = rng.random(n_img * per) < 0.2
    gain = rng.random(n_img) < 1 / 3
    hit_a = base_hit | gain[t2i]
    rank = lambda hit: np.where(hit, 0, 50)  # noqa: E731
    i2t = rng.integers(0, 20, n_img)
    a = {"i2t_rank": i2t, "t2i_rank": rank(hit_a), "text_to_image": t2i}
    b = {"i2t_rank": i2t, "t2i_rank": rank(base_hit), "text_to_image": t2i}
    return a, b, hit_a.astype(float), base_hit.astype(float), t2i


def test_text_to_image_interval_resamples_images_with_all_their_captions():
    a, b, ha, hb, t2i = _retrieval_preds()
    n_img, n_boot = len(a["i2t_rank"]), 2000
    out = comparisons._paired_recall([a], [b], "t2i_R@1", n_boot=n_boot, seed=5)
    # brute force cluster bootstrap: draw images, take every caption of each drawn image
    draws, diffs = np.random.default_rng(5), []
    for start in range(0, n_boot, 100):
        for imgs in draws.integers(0, n_img, size=(min(100, n_boot - start), n_img)):
            caps = np.concatenate([np.flatnonzero(t2i == i) for i in imgs])
            diffs.append(ha[caps].mean() - hb[caps].mean())
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-12)
    assert out["unit"] == "images" and out["diff"] == pytest.approx(ha.mean() - hb.mean())
    # caption by caption (as if the 1,500 captions were independent) the interval is too narrow, by the ratio the
    # variances predict: cluster means (5 captions each) against single captions
    d = ha - hb
    caption_level = paired_interval([(mean_statistic(ha), mean_statistic(hb))], len(d), n_boot, 5)
    expected = np.sqrt(pd.Series(d).groupby(t2i).mean().var(ddof=0) / n_img / (d.var(ddof=0) / len(d)))
    ratio = (out["ci_high"] - out["ci_low"]) / (caption_level["ci_high"] - caption_level["ci_low"])
    assert expected > 1.8 and ratio == pytest.approx(expected, rel=0.12)
    # image->text queries are images already: the same draw, unweighted
    i2t = comparisons._paired_recall([a], [b], "i2t_R@5", n_boot=200, seed=5)
    assert i2t["ci_low"] == i2t["ci_high"] == 0.0


# ---- 5. multi-label decisions ----------------------------------------------------------------------------------


def _multilabel_split(n, rng):
    y = (rng.random((n, 3)) < [0.3, 0.15, 0.08]).astype(np.int64)
    s = np.clip(0.05 + 0.25 * y + 0.12 * rng.random((n, 3)), 0, 1)  # every score < 0.5, positives ranked higher
    return y, s


def test_multilabel_finetune_reports_per_label_prf_at_validation_thresholds(tmp_path, monkeypatch):
    from medlib.config import load_profile
    from medlib.data.base import DatasetBundle, Split
    from medlib.studies import runs
    from medlib.train.result import TrainResult

    rng = np.random.default_rng(0)
    (yv, sv), (yt, st) = _multilabel_split(200, rng), _multilabel_split(300, rng)
    img = lambda n: np.zeros((n, 4, 4), np.uint8)  # noqa: E731
    data = DatasetBundle(name="toy", task="multilabel", class_names=["a", "b", "c"], source="test", synthetic=True,
                         splits={"train": Split(img(10), yv[:10]), "val": Split(img(200), yv), "test": Split(img(300), yt)})
    P = load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs")})

    def trainer(clip, data, *, mode, cfg, run_dir, seed, **kw):  # what train() returns; the model is not used
        return TrainResult(model=object(), history=pd.DataFrame({"epoch": [0, 1], "seconds": [0.1, 0.1]}),
                           best_epoch=1, run_dir=run_dir, resumed_from=None, mode=mode, metric_name="auroc",
                           best_metric=0.8)

    monkeypatch.setattr(runs, "train", trainer)
    monkeypatch.setattr(runs, "predict", lambda result, images, mode: sv if len(images) == 200 else st)
    clip = types.SimpleNamespace(name="tiny")
    _, rec = runs.finetune(P, clip, data, notebook="04_label_finetune", method="multilabel-ft", mode="multilabel",
                           cfg=P.label_finetune.multilabel_train, class_texts=[["x"]] * 3)
    thr = tune_thresholds(yv, sv, metric="f1")  # chosen on validation, F1-optimal per label
    assert rec["threshold"] == pytest.approx(thr.tolist()) and "F1" in rec["extra"]["threshold_rule"]
    p, r, f, _ = precision_recall_fscore_support(yt, (st >= thr).astype(int), zero_division=0)
    for j, name in enumerate("abc"):
        assert [rec["per_class"][name][k] for k in ("precision", "recall", "f1")] == pytest.approx([p[j], r[j], f[j]])
        assert rec["per_class"][name]["recall"] > 0 and rec["at_0.5"]["per_class"][name]["recall"] == 0
    assert rec["degenerate"] is None
    assert rec["at_0.5"]["degenerate"] == "no positive predictions on any label"  # the 0.5 view, labelled
    assert rec["at_0.5"]["metrics"]["auroc"] == rec["metrics"]["auroc"]  # threshold-free metrics are unchanged
    # notebook 05's remedies stay at 0.5 (their tuned-threshold remedy is separate)
    _, none = runs.finetune(P, clip, data, notebook="05_class_imbalance", method="remedy-none", mode="multilabel",
                            cfg=P.imbalance.train, class_texts=[["x"]] * 3)
    assert none["threshold"] == [0.5] * 3 and "at_0.5" not in none
    assert none["degenerate"] == "no positive predictions on any label"


def test_degenerate_single_label_model_is_flagged():
    y = np.array([0, 1, 2, 1, 0])
    out = evaluate(y, _one_hot(np.zeros(5, int), 3), "multiclass", ["normal", "x", "z"], n_boot=0)
    assert out["degenerate"] == "predicts one class only (normal)"
    assert evaluate(y, _one_hot(y, 3), "multiclass", ["normal", "x", "z"], n_boot=0)["degenerate"] is None
