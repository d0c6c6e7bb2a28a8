import pandas as pd
import pytest

from medlib import tables


def rec(dataset, model, method, metrics, ci=None, extra=None, task="multiclass"):
    return {"dataset": dataset, "model": model, "method": method, "task": task, "n": 10, "metrics": metrics,
            "ci95": ci or {}, "extra": extra or {}}


def test_metric_rows_keep_intervals_and_skip_undefined():
    df = tables.metric_rows([rec("d", "m", "zs", {"acc": 0.5, "top3": None}, {"acc": [0.4, 0.6]})], ["acc", "top3"])
    assert df.to_dict("records") == [{"dataset": "d", "model": "m", "method": "zs", "metric": "acc", "value": 0.5,
                                      "ci_low": 0.4, "ci_high": 0.6, "n": 10}]


def test_best_by_validation_never_looks_at_test_scores():
    a = rec("d", "m", "a", {"acc": 0.99}, extra={"best_val_metric": 0.6})
    b = rec("d", "m", "b", {"acc": 0.50}, extra={"best_val_metric": 0.7})
    retrieval = rec("d", "m", "r", {"i2t_R@1": 1.0}, extra={"best_val_metric": 0.9}, task="retrieval")
    assert tables.best_by_validation([a, b, retrieval, None])["method"] == "b"
    assert tables.best_by_validation([rec("d", "m", "zs", {"acc": 1.0})]) is None


def test_remedy_table_marks_best_and_concludes_from_numbers():
    recs = {"none": rec("d", "m", "none", {"f1": 0.5, "acc": 0.9}, {"f1": [0.4, 0.6]}),
            "focal": rec("d", "m", "focal", {"f1": 0.7, "acc": 0.8}, {"f1": [0.6, 0.8]})}
    t = tables.remedy_table(recs, ["f1", "acc"])
    assert list(t["remedy"]) == ["none", "focal"] and t.loc[1, "f1_lo"] == 0.6
    shown = tables.mark_best(t, ["f1", "acc"])
    assert shown.loc[1, "f1"] == "★ 0.700 [0.600, 0.800]" and shown.loc[0, "acc"] == "★ 0.900"
    lines = tables.remedy_conclusions("d", t, ["f1", "acc"])
    assert lines == ["- **d**, f1: best is `focal` (0.700; `none` gives 0.500).",
                     "- **d**, acc: best is `none` (0.900; `none` gives 0.900)."]


def test_sota_table_separates_measured_and_published_and_flags_incomparable_rows():
    measured = [rec("pneumoniamnist", "tiny", "label-ft", {"acc": 0.8, "auroc": 0.9}),
                rec("pneumoniamnist", "resnet18", "supervised", {"acc": 0.7}, extra={"weights": "none"})]
    t = tables.sota_table(measured, tasks={"pneumoniamnist": "multiclass", "chestxray14": "multilabel"},
                          synthetic={"pneumoniamnist": False, "chestxray14": True}, display={"resnet18": "ResNet-18"},
                          neighbours={"chestxray14": ["chestmnist"]})
    assert list(t.columns) == tables.SOTA_COLUMNS
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
