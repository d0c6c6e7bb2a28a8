import pandas as pd
import pytest

from medlib.outputs import tables

from medlib.studies import few_shot, remedies, sota
def rec(dataset, model, method, metrics, ci=None, extra=None, task="multiclass"):
    return {"dataset": dataset, "model": model, "method": method, "task": task, "n": 10, "metrics": metrics,
            "ci95": ci or {}, "extra": extra or {}}


def test_metric_rows_keep_intervals_and_skip_undefined():
    r = rec("d", "m", "zs", {"acc": 0.5, "top3": None}, {"acc": [0.4, 0.6]})
    r.update(seed=1, per_class={"a": {"support": 7}, "b": {"support": 3}})
    df = tables.metric_rows([r], ["acc", "top3"])
    assert df.to_dict("records") == [{"dataset": "d", "model": "m", "method": "zs", "seed": 1, "metric": "acc",
                                      "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "n": 10, "majority_rate": 0.7}]


def test_multilabel_accuracy_is_named_elementwise_and_has_its_own_majority_rate():
    r = rec("chest", "m", "ft", {"acc": 0.9, "auroc": 0.7}, task="multilabel")
    r["per_class"] = {"x": {"support": 2}, "y": {"support": 9}}  # 10 rows: majority values 8/10 and 9/10
    df = tables.metric_rows([r], ["acc", "auroc"])
    assert list(df.metric) == ["elementwise_acc", "auroc"]
    assert df.majority_rate.iloc[0] == pytest.approx((0.8 + 0.9) / 2)


def test_seed_summary_gives_mean_sd_and_range_over_seeds():
    runs = [dict(rec("d", "m", "ft", {"acc": a}), seed=s) for s, a in [(0, 0.6), (1, 0.7), (2, 0.8)]]
    runs.append(dict(rec("d", "m", "zs", {"acc": 0.5}), seed=0))
    out = tables.seed_summary(runs, ["acc"]).set_index("method")
    assert out.loc["ft", "mean"] == pytest.approx(0.7) and out.loc["ft", "sd"] == pytest.approx(0.1)
    assert (out.loc["ft", "min"], out.loc["ft", "max"], out.loc["ft", "n_seeds"]) == (0.6, 0.8, 3)
    assert out.loc["ft", "seeds"] == "0,1,2" and pd.isna(out.loc["zs", "sd"])
    shown = tables.seed_pivot(tables.seed_summary(runs, ["acc"])).set_index("method")
    assert shown.loc["ft", "acc"] == "0.700 ± 0.100 [0.600–0.800]" and shown.loc["zs", "acc"] == "0.500"


def test_best_by_validation_never_looks_at_test_scores():
    a = rec("d", "m", "a", {"acc": 0.99}, extra={"best_val_metric": 0.6})
    b = rec("d", "m", "b", {"acc": 0.50}, extra={"best_val_metric": 0.7})
    retrieval = rec("d", "m", "r", {"i2t_R@1": 1.0}, extra={"best_val_metric": 0.9}, task="retrieval")
    assert tables.best_by_validation([a, b, retrieval, None])["method"] == "b"
    assert tables.best_by_validation([rec("d", "m", "zs", {"acc": 1.0})]) is None


def test_remedy_table_chooses_on_validation_and_summarises_seeds():
    def r(method, f1, acc, val, seed=0):
        return dict(rec("d", "m", method, {"f1": f1, "acc": acc}, extra={"val_metrics": {"balanced_acc": val}}),
                    seed=seed)

    recs = {"none": [r("none", 0.5, 0.9, 0.60), r("none", 0.7, 0.9, 0.62, 1)],
            "focal": [r("focal", 0.9, 0.8, 0.55), r("focal", 0.9, 0.8, 0.57, 1)],  # best on test, worse on val
            "logit_adjust": [r("logit_adjust", 0.6, 0.7, 0.70), r("logit_adjust", 0.8, 0.7, 0.72, 1)]}
    assert remedies.best_remedy(recs, "balanced_acc") == "logit_adjust"
    t = remedies.remedy_table(recs, ["f1", "acc"], select_metric="balanced_acc")
    assert list(t["remedy"]) == ["none", "focal", "logit_adjust"]
    assert list(t["chosen"]) == [False, False, True]
    assert t.loc[0, "f1"] == pytest.approx(0.6) and t.loc[0, "f1_min"] == 0.5 and t.loc[0, "f1_max"] == 0.7
    assert t.loc[2, "val_balanced_acc"] == pytest.approx(0.71) and t.loc[0, "n_seeds"] == 2
    shown = remedies.mark_best(t, ["f1", "acc"])
    assert shown.loc[1, "f1"].startswith("★ 0.900") and shown.loc[2, "remedy"] == "logit_adjust (chosen on validation)"
    lines = remedies.remedy_conclusions("d", t, ["f1", "acc"])
    assert lines[0].startswith("- **d**: chosen on validation balanced_acc (0.710): `logit_adjust`")
    assert "`focal` (0.900" in lines[1] and "descriptive" in lines[1]


def test_best_remedy_never_reads_test_scores():
    a = rec("d", "m", "remedy-a", {"balanced_acc": 0.99}, extra={"val_metrics": {"balanced_acc": 0.5}})
    b = rec("d", "m", "remedy-b", {"balanced_acc": 0.10}, extra={"val_metrics": {"balanced_acc": 0.6}})
    assert remedies.best_remedy({"none": [a], "a": [a], "b": [b]}, "balanced_acc") == "b"
    assert remedies.best_remedy({"a": [rec("d", "m", "a", {"balanced_acc": 1.0})]}, "balanced_acc") is None


def test_sota_table_separates_measured_and_published_and_flags_incomparable_rows():
    measured = [rec("pneumoniamnist", "tiny", "label-ft", {"acc": 0.8, "auroc": 0.9}),
                rec("pneumoniamnist", "resnet18", "supervised", {"acc": 0.7}, extra={"weights": "none"})]
    t = sota.sota_table(measured, tasks={"pneumoniamnist": "multiclass", "chestxray14": "multilabel"},
                          synthetic={"pneumoniamnist": False, "chestxray14": True}, display={"resnet18": "ResNet-18"},
                          neighbours={"chestxray14": ["chestmnist"]})
    assert list(t.columns) == sota.SOTA_COLUMNS
    ours = t[t.source == "measured"]
    assert len(ours) == 3 and set(ours.model) == {"tiny", "ResNet-18"}
    assert ours[ours.model == "ResNet-18"].note.item() == "weights: none"
    pub = t[t.source != "measured"]
    assert (pub.source.str.len() > 0).all() and pub.note.notna().all()
    r18 = pub[(pub.dataset == "pneumoniamnist") & (pub.model == "ResNet-18 (28)") & (pub.metric == "acc")]
    assert r18.value.item() == pytest.approx(0.854)
    chest = pub[pub.dataset == "chestxray14"]
    assert len(chest) > 0 and chest.note.str.startswith("NOT COMPARABLE").all()
    assert chest.note.str.contains("published on chestmnist").any()
    assert set(chest.metric) == {"auroc"}


def test_sota_table_has_resolution_split_and_majority_and_marks_other_resolutions():
    measured = [dict(rec("pneumoniamnist", "tiny", "label-ft", {"acc": a, "auroc": 0.9}, {"acc": [0.7, 0.9]}),
                     seed=s, per_class={"normal": {"support": 3}, "pneumonia": {"support": 7}})
                for s, a in [(0, 0.8), (1, 0.9)]]
    t = sota.sota_table(measured, tasks={"pneumoniamnist": "multiclass", "pubmedvision": "multiclass"},
                          synthetic={"pneumoniamnist": False, "pubmedvision": False},
                          sizes={"pneumoniamnist": 28, "pubmedvision": 28},
                          splits={"pneumoniamnist": "official MedMNIST test split"})
    ours = t[(t.source == "measured") & (t.metric == "acc")].iloc[0]
    assert ours.value == pytest.approx(0.85) and (ours["min"], ours["max"], ours.n_seeds) == (0.8, 0.9, 2)
    assert ours.resolution == "28 px" and ours.split == "official MedMNIST test split" and ours.majority_rate == 0.7
    pub = t[t.source != "measured"].set_index(["model", "metric"])
    assert pub.loc[("ResNet-18 (28)", "acc"), "comparable"] and pub.loc[("ResNet-18 (28)", "acc"), "resolution"] == "28 px"
    at224 = pub.loc[("ResNet-18 (224)", "acc")]
    assert not at224.comparable and at224.note.startswith("NOT COMPARABLE: published at 224 px")
    # The PubMedVision study's rows: its own 4,096 sample, never comparable, even at a matching resolution.
    pmv = t[(t.dataset == "pubmedvision") & (t.source != "measured")]
    assert len(pmv) == 6 and pmv.note.str.startswith("NOT COMPARABLE").all() and not pmv.comparable.any()
    assert t[t.source != "measured"].majority_rate.dropna().eq(0.7).all()


def test_label_efficiency_summary_over_draws():
    def few(method, k, draw, acc):
        return rec("d", "m", f"{method}-{k}shot-d{draw}", {"acc": acc},
                   extra={"shots_per_class": k, "draw": draw, "n_train": 2 * k})

    runs = [few("label-ft", 1, d, a) for d, a in enumerate([0.5, 0.6, 0.7])] + [few("label-ft", 4, 0, 0.8)]
    full = [dict(rec("d", "m", "label-ft", {"acc": 0.9}), seed=0)]
    eff = few_shot.label_efficiency(runs, full)
    assert set(eff.method) == {"label-ft"} and list(eff.shots_per_class) == ["1", "1", "1", "4", "all"]
    s = few_shot.label_efficiency_summary(eff).set_index("shots_per_class")
    assert s.loc["1", "mean"] == pytest.approx(0.6) and s.loc["1", "sd"] == pytest.approx(0.1)
    assert s.loc["1", "n_runs"] == 3 and list(s.index) == ["1", "4", "all"]
