"""Several seeds end to end on the output contract: seeded run names, the paired-differences table built from saved
runs, every interval recomputable from the two runs' predictions files, the best remedy chosen on validation."""

import json
import zlib

import numpy as np
import pandas as pd
import pytest

from medlib.outputs import records

from medlib.studies import comparisons, runs, setup
from medlib.config import load_profile
from medlib.metrics import paired_bootstrap

NB = setup.NOTEBOOKS
N = 150


@pytest.fixture
def profile(tmp_path):
    return load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs"),
                                  "zero_shot.n_boot": 60})


def _scores(y, signal, seed):
    rng = np.random.default_rng(seed)
    s = rng.dirichlet([1, 1], len(y))
    s[np.arange(len(y)), y] += signal * rng.random(len(y))
    return s / s.sum(axis=1, keepdims=True)


def _save(P, notebook, method, signal, seed=None, val=None, y=None):
    y = np.random.default_rng(0).integers(0, 2, N) if y is None else y
    extra = {"val_metrics": {"balanced_acc": val}} if val is not None else {}
    return records.save_run(P, notebook=notebook, dataset="pneumoniamnist", model="tiny", method=method,
                            task="multiclass", split="test", y_true=y,
                            y_score=_scores(y, signal, zlib.crc32(f"{method}{seed}".encode())),
                            class_names=["normal", "pneumonia"], seed=seed, extra=extra)


def _study(P):
    _save(P, NB["02"], "zero-shot", 0.05)
    for s in P.seed_list:
        _save(P, NB["03"], "caption-ft-plain", 0.6, s)
        _save(P, NB["04"], "label-ft", 2.0, s)
    _save(P, NB["05"], "remedy-none", 1.0, 0, val=0.60)
    _save(P, NB["05"], "remedy-focal", 3.0, 0, val=0.55)  # the best on test, not on validation
    _save(P, NB["05"], "remedy-logit_adjust", 1.5, 0, val=0.70)


def test_seed_runs_are_named_and_recorded_per_seed(profile):
    rec0 = _save(profile, NB["04"], "label-ft", 2.0, 0)
    rec1 = _save(profile, NB["04"], "label-ft", 2.0, 1)
    assert rec0["run"] == "04_label_finetune__pneumoniamnist__tiny__label-ft" and rec0["seed"] == 0
    assert rec1["run"] == rec0["run"] + "__s1" and rec1["seed"] == 1
    on_disk = json.loads((profile.reports_path / "metrics" / f"{rec1['run']}.json").read_text())
    assert on_disk["seed"] == 1 and on_disk["predictions"] == f"predictions/{rec1['run']}.npz"
    assert [r["seed"] for r in runs.seed_runs(profile, NB["04"], "pneumoniamnist", "tiny", "label-ft")] == [0, 1]
    # each seed's interval is its own: recomputable from its own predictions with its seed
    z = records.load_predictions(profile, rec1["run"])
    from medlib.metrics import evaluate
    again = evaluate(z["y_true"], z["y_score"], "multiclass", ["normal", "pneumonia"], n_boot=60, seed=1)
    assert again["ci95"]["acc"] == pytest.approx(rec1["ci95"]["acc"])
    assert set(records.load_runs(profile)["seed"]) == {0, 1}


def test_paired_differences_table_is_complete_and_recomputable_from_predictions(profile):
    _study(profile)
    df = comparisons.paired_differences(profile, comparisons.headline_comparisons(profile),
                                        n_boot=profile.zero_shot.n_boot, seed=profile.seed)
    records.save_table(profile, "paired_differences", df)
    on_disk = pd.read_csv(profile.reports_path / "tables" / "paired_differences.csv")
    assert list(on_disk.columns[:9]) == ["method_a", "method_b", "dataset", "metric", "seed", "diff", "ci_low",
                                         "ci_high", "n"]
    pooled = df[df.seed == "pooled"]
    assert set(pooled.comparison) == {"label FT - zero-shot", "caption FT - zero-shot", "label FT - caption FT",
                                      "best remedy - none"}
    assert set(df.seed) == {"0", "1", "pooled"} and (df.n == N).all()
    # The remedy is chosen on validation (logit_adjust), although focal is better on test.
    best = pooled[pooled.comparison == "best remedy - none"]
    assert best.method_id_a.unique().tolist() == ["remedy-logit_adjust"]
    assert best.method_a.iloc[0] == "best remedy: logit_adjust (chosen on validation balanced_acc)" and best.method_b.iloc[0] == "no remedy"
    assert set(best.metric) == {"balanced_acc", "worst_class_recall"}
    lab = pooled[(pooled.comparison == "label FT - zero-shot") & (pooled.metric == "acc")].iloc[0]
    assert lab.method_a == "label fine-tune" and lab.method_b == "zero-shot" and lab.ci_low > 0  # a real gap
    # Every row: recompute from the predictions files alone (npz), with the row's bootstrap settings.
    for row in on_disk.itertuples():
        ra, rb = row.runs_a.split(";"), row.runs_b.split(";")
        za = [np.load(profile.reports_path / "predictions" / f"{r}.npz") for r in ra]
        zb = [np.load(profile.reports_path / "predictions" / f"{r}.npz") for r in rb]
        out = paired_bootstrap(za[0]["y_true"], [z["y_score"] for z in za], [z["y_score"] for z in zb], "multiclass",
                               list(za[0]["class_names"]), row.metric, n_boot=row.n_boot, seed=row.boot_seed)
        assert (out["diff"], out["ci_low"], out["ci_high"]) == pytest.approx((row.diff, row.ci_low, row.ci_high))
        assert len(ra) == (2 if row.seed == "pooled" and row.comparison != "best remedy - none" else 1)
    # pooled = mean of the per-seed differences
    per_seed = df[(df.comparison == "label FT - caption FT") & (df.metric == "acc")].set_index("seed")["diff"]
    assert per_seed["pooled"] == pytest.approx((per_seed["0"] + per_seed["1"]) / 2)


def test_paired_table_says_which_variance_each_interval_carries_and_reads_the_verdict(profile):
    from medlib.metrics import VERDICTS, combined_p, holm, verdict

    _study(profile)
    df = comparisons.paired_differences(profile, comparisons.headline_comparisons(profile),
                                        n_boot=profile.zero_shot.n_boot, seed=profile.seed)
    pooled, per_seed = df[df.seed == "pooled"], df[df.seed != "pooled"]
    two = pooled[pooled.n_seeds == 2]
    assert len(two) and (two.variance == "test rows and training seeds (2)").all()
    assert two.seed_ci_low.notna().all() and (two.seed_ci_low <= two["diff"]).all()
    one = pd.concat([per_seed, pooled[pooled.n_seeds == 1]])  # the remedies ran one seed here
    assert (one.variance == "test rows; conditional on the trained run").all() and one.seed_ci_low.isna().all()
    assert df.resampled.str.startswith("test rows").all()
    # Holm within the family of pooled rows; per-seed rows are outside it
    assert per_seed.p_holm.isna().all()
    assert pooled.p_holm.tolist() == pytest.approx(holm(pooled.p_value.tolist()))
    assert pooled.p_value.tolist() == pytest.approx(
        [combined_p(p, None) if k == 1 else p for p, k in zip(pooled.p_value, pooled.n_seeds)])
    assert set(df.verdict) <= set(VERDICTS)
    for r in df.itertuples():
        assert r.verdict == verdict(r.ci_low, r.ci_high, r.seed_ci_low, r.seed_ci_high, r.p_holm)
    lab = pooled[(pooled.comparison == "label FT - zero-shot") & (pooled.metric == "acc")].iloc[0]
    assert lab.verdict == "A higher"  # a gap clear in every seed and on the rows


def test_paired_difference_refuses_runs_on_different_rows(profile):
    from medlib.errors import MedlibError

    a = _save(profile, NB["02"], "zero-shot", 0.1)
    b = _save(profile, NB["04"], "label-ft", 1.0, 0, y=1 - np.random.default_rng(0).integers(0, 2, N))
    with pytest.raises(MedlibError, match="same test rows"):
        comparisons.paired_difference(profile, [a["run"]], [b["run"]], "acc", n_boot=10, seed=0)


def test_comparison_pairs_runs_by_seed_or_repeats_a_seed_free_baseline():
    a = [{"seed": 0, "run": "a0"}, {"seed": 1, "run": "a1"}]
    c = comparisons.Comparison("x", "d", "m", a, [{"seed": 1, "run": "b1"}], ["acc"])
    assert [(s, x["run"], y["run"]) for s, x, y in c.pairs()] == [(1, "a1", "b1")]
    z = comparisons.Comparison("x", "d", "m", a, [{"seed": 0, "run": "zs"}], ["acc"], fixed_b=True)
    assert [(s, y["run"]) for s, _, y in z.pairs()] == [(0, "zs"), (1, "zs")]
