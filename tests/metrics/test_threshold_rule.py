"""One threshold rule (score >= threshold is positive) for tuning, applying, metrics and saved runs."""

import json

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score

from medlib import metrics

from medlib.metrics import thresholds
from medlib.config import load_profile
from medlib.outputs.records import save_run


def test_score_equal_to_threshold_is_positive_everywhere():
    y = np.array([0, 1, 1, 0])
    p1 = np.array([0.2, 0.5, 0.8, 0.4])
    scores = np.stack([1 - p1, p1], 1)
    thr = thresholds.tune_thresholds(y, scores, metric="balanced_acc")
    assert thr[0] == 0.5  # a score value: the boundary case
    pred = thresholds.apply_thresholds(scores, thr, "multiclass")
    assert pred.tolist() == [0, 1, 1, 0]
    res = metrics.evaluate(y, scores, "multiclass", ["a", "b"], n_boot=20, threshold=thr)
    assert res["metrics"]["balanced_acc"] == 1.0 == balanced_accuracy_score(y, pred)  # not 0.75 (strict >)
    assert "ece" not in res["metrics"] and res["threshold"] == [0.5]
    # multi-label: a score at its label's threshold is positive in the metrics as in apply_thresholds
    yl = np.array([[1, 0], [0, 1], [1, 1]])
    sl = np.array([[0.3, 0.1], [0.2, 0.7], [0.3, 0.7]])
    t = np.array([0.3, 0.7])
    assert thresholds.apply_thresholds(sl, t, "multilabel").tolist() == yl.tolist()
    ml = metrics.evaluate(yl, sl, "multilabel", ["a", "b"], n_boot=20, threshold=t)
    assert ml["metrics"]["macro_f1"] == 1.0 and ml["metrics"]["acc"] == 1.0


def test_binary_threshold_remedy_tunes_the_named_metric_not_class1_f1():
    # majority positive class: F1 of class 1 is best when everything is called positive; balanced accuracy is not
    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.75).astype(int)
    p1 = np.clip(0.6 + 0.25 * (y - 0.5) + rng.normal(0, 0.15, 400), 0, 1)
    s = np.stack([1 - p1, p1], 1)
    t_f1 = thresholds.tune_thresholds(y, s, metric="f1")[0]
    t_ba = thresholds.tune_thresholds(y, s)[0]  # default: balanced accuracy
    ba = lambda t: balanced_accuracy_score(y, (p1 >= t).astype(int))  # noqa: E731
    assert ba(t_ba) > ba(t_f1)
    assert ba(t_ba) == max(ba(t) for t in np.unique(p1))
    assert load_profile("smoke").imbalance.threshold_metric == "balanced_acc"


def test_thresholded_run_stores_raw_scores_and_threshold(tmp_path):
    P = load_profile("smoke", {"reports_dir": str(tmp_path)})
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.3, 0.9, 0.35, 0.6])
    s = np.stack([1 - p1, p1], 1)
    rec = save_run(P, notebook="05_class_imbalance", dataset="toy", model="m", method="remedy-threshold",
                   task="multiclass", split="test", y_true=y, y_score=s, class_names=["a", "b"], n_boot=10,
                   threshold=np.array([0.3]))
    files = tmp_path / P.name
    z = np.load(files / rec["predictions"])
    np.testing.assert_array_equal(z["y_score"], s)  # raw, not re-expressed
    assert z["threshold"].tolist() == [0.3]
    on_disk = json.loads((files / "metrics" / f"{rec['run']}.json").read_text())
    pred = (z["y_score"][:, 1] >= z["threshold"][0]).astype(int)  # recomputed from the predictions file
    assert on_disk["metrics"]["balanced_acc"] == pytest.approx(balanced_accuracy_score(z["y_true"], pred))
    assert "ece" not in on_disk["metrics"]
    with pytest.raises(Exception, match="binary"):
        metrics.evaluate(np.array([0, 1, 2]), np.eye(3), "multiclass", ["a", "b", "c"], threshold=0.5)
