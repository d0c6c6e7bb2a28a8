"""metrics.py against scikit-learn on random data; bootstrap intervals; retrieval on a hand-made similarity."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    recall_score,
    coverage_error,
    roc_auc_score,
    top_k_accuracy_score,
)

from medlib.errors import MedlibError
from medlib.metrics import evaluate, expected_calibration_error, retrieval_recall, topk_accuracy
from medlib.metrics.replicates import _boot_multiclass, _boot_multilabel


def _multiclass(n, c, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    s = rng.dirichlet(np.ones(c), n)
    s[np.arange(n), y] += rng.random(n)  # some signal
    return y, s / s.sum(axis=1, keepdims=True)


def _multilabel(n, c, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < 0.3).astype(int)
    y[:, 2] = 0  # a label with no positives
    s = np.clip(rng.random((n, c)) * 0.6 + 0.35 * y, 0, 1)
    return y, s


def _ece_reference(y, s, bins=15):
    conf, pred = s.max(axis=1), s.argmax(axis=1)
    idx = np.digitize(conf, np.linspace(0, 1, bins + 1)[1:-1])
    return sum(abs((pred[idx == b] == y[idx == b]).mean() - conf[idx == b].mean()) * (idx == b).mean()
               for b in range(bins) if (idx == b).any())


@pytest.mark.parametrize("c", [2, 5])
def test_multiclass_matches_sklearn(c):
    y, s = _multiclass(300, c, seed=c)
    names = [f"class{i}" for i in range(c)]
    out = evaluate(y, s, "multiclass", names, n_boot=0)
    m, pred, labels = out["metrics"], s.argmax(axis=1), list(range(c))
    assert m["acc"] == pytest.approx(accuracy_score(y, pred))
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))
    auc = roc_auc_score(y, s[:, 1]) if c == 2 else roc_auc_score(y, s, multi_class="ovr", labels=labels)
    assert m["auroc"] == pytest.approx(auc)
    assert m["worst_class_recall"] == pytest.approx(recall_score(y, pred, average=None).min())
    assert m["ece"] == pytest.approx(_ece_reference(y, s))
    if c >= 3:
        assert m["top3"] == pytest.approx(top_k_accuracy_score(y, s, k=3)) == topk_accuracy(y, s, 3)
    else:
        assert "top3" not in m
    p, r, f, sup = precision_recall_fscore_support(y, pred, labels=labels)
    for i, name in enumerate(names):
        assert out["per_class"][name] == pytest.approx({"precision": p[i], "recall": r[i], "f1": f[i],
                                                        "support": sup[i], "predicted": (pred == i).sum()})
    assert out["confusion"] == confusion_matrix(y, pred).tolist()


def test_multilabel_matches_sklearn_and_skips_label_without_positives():
    y, s = _multilabel(400, 6)
    names = [f"l{i}" for i in range(6)]
    thr = np.array([0.5, 0.4, 0.5, 0.6, 0.5, 0.55])
    out = evaluate(y, s, "multilabel", names, n_boot=0, threshold=thr)
    m, pred = out["metrics"], (s >= thr).astype(int)
    ok = [j for j in range(6) if j != 2]
    assert out["auroc_skipped"] == ["l2"]
    assert m["auroc"] == pytest.approx(np.mean([roc_auc_score(y[:, j], s[:, j]) for j in ok]))
    assert m["acc"] == pytest.approx(np.mean([accuracy_score(y[:, j], pred[:, j]) for j in range(6)]))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro", zero_division=0))
    assert m["balanced_acc"] == pytest.approx(np.mean([balanced_accuracy_score(y[:, j], pred[:, j]) for j in ok]))
    assert m["worst_class_recall"] == pytest.approx(recall_score(y, pred, average=None, zero_division=0)[ok].min())
    assert out["per_class"]["l2"]["auroc"] is None and out["per_class"]["l2"]["support"] == 0
    assert out["confusion"] == multilabel_confusion_matrix(y, pred).tolist()
    # default threshold 0.5 with medlib's one rule, score >= threshold (a score of exactly 0.5 is positive)
    s2 = s.copy()
    s2[0, 0] = 0.5
    out2 = evaluate(y, s2, "multilabel", names, n_boot=0)
    assert out2["threshold"] == [0.5] * 6
    assert out2["metrics"]["acc"] == pytest.approx(np.mean(y == (s2 >= 0.5)))


def test_vectorised_bootstrap_formulas_equal_sklearn_on_unit_weights():
    for c in (2, 5):
        y, s = _multiclass(250, c, seed=10 + c)
        point = evaluate(y, s, "multiclass", list("abcde")[:c], n_boot=0)["metrics"]
        boot = _boot_multiclass(np.ones((1, len(y))), y, s)
        for k, v in point.items():
            assert boot[k][0] == pytest.approx(v, abs=1e-12), k
    y, s = _multilabel(250, 5, seed=3)
    point = evaluate(y, s, "multilabel", list("abcde"), n_boot=0)["metrics"]
    boot = _boot_multilabel(np.ones((1, len(y))), y, s, np.full(5, 0.5))
    for k, v in point.items():
        assert boot[k][0] == pytest.approx(v, abs=1e-12), k


def test_weighted_auc_with_ties_matches_sklearn_sample_weight():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = rng.integers(0, 5, 200) / 4.0  # many ties
    w = rng.integers(0, 4, 200).astype(float)
    boot = _boot_multiclass(w[None, :], y, np.stack([1 - s, s], axis=1))
    assert boot["auroc"][0] == pytest.approx(roc_auc_score(y, s, sample_weight=w))


@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_bootstrap_ci_contains_point_and_is_deterministic(task):
    y, s = _multiclass(300, 3) if task == "multiclass" else _multilabel(300, 4)
    names = ["a", "b", "c", "d"][: s.shape[1]]
    a = evaluate(y, s, task, names, n_boot=300, seed=7)
    b = evaluate(y, s, task, names, n_boot=300, seed=7)
    c = evaluate(y, s, task, names, n_boot=300, seed=8)
    assert a == b
    assert a["ci95"] != c["ci95"]
    assert set(a["ci95"]) == set(a["metrics"])
    for k, (lo, hi) in a["ci95"].items():
        assert lo <= a["metrics"][k] <= hi, k
        assert hi - lo < 0.3


def test_undefined_metric_is_none_and_bootstrap_skips_it():
    y = np.zeros(50, dtype=int)
    s = np.tile([0.7, 0.3], (50, 1))
    out = evaluate(y, s, "multiclass", ["normal", "pneumonia"], n_boot=50)
    assert out["metrics"]["auroc"] is None and out["ci95"]["auroc"] is None
    assert out["metrics"]["acc"] == 1.0
    # binary data where half the resamples of a rare class have no positives: AUROC interval still finite
    y = np.zeros(40, dtype=int)
    y[0] = 1
    s = np.tile([0.6, 0.4], (40, 1))
    s[0] = [0.2, 0.8]
    out = evaluate(y, s, "multiclass", ["a", "b"], n_boot=200)
    assert out["ci95"]["auroc"] == [1.0, 1.0]


@pytest.mark.parametrize("bad", [
    dict(y_true=np.array([0, 1, 2]), y_score=np.full((3, 2), 0.5)),  # label outside classes
    dict(y_true=np.array([0, 1]), y_score=np.array([[2.0, 1.0], [0.0, 1.0]])),  # not probabilities
    dict(y_true=np.array([0, 1]), y_score=np.full((3, 2), 0.5)),  # length mismatch
])
def test_bad_multiclass_input_raises(bad):
    with pytest.raises(MedlibError):
        evaluate(bad["y_true"], bad["y_score"], "multiclass", ["a", "b"], n_boot=0)


def test_bad_multilabel_and_task_raise():
    with pytest.raises(MedlibError):
        evaluate(np.array([[0, 2]]), np.array([[0.1, 0.2]]), "multilabel", ["a", "b"], n_boot=0)
    with pytest.raises(MedlibError):
        evaluate(np.array([[0, 1]]), np.array([[0.1, 0.2]]), "multilabel", ["a", "b"], threshold=[0.5], n_boot=0)
    with pytest.raises(MedlibError):
        evaluate(np.array([0]), np.array([[1.0, 0.0]]), "regression", ["a", "b"])


def test_ece_perfect_and_known_value():
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, np.eye(2)[y]) == 0.0
    s = np.array([[0.8, 0.2]] * 4)  # confidence 0.8, accuracy 0.5
    assert expected_calibration_error(y, s) == pytest.approx(0.3)


def test_retrieval_recall_hand_made():
    r = retrieval_recall(np.eye(3), np.eye(3)[[0, 1, 2]], ks=(1,))
    assert r == {"i2t_R@1": 1.0, "t2i_R@1": 1.0, "mean_recall": 1.0}
    # a case worked out by hand with unit vectors in 2-D
    img = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    txt = np.array([[1.0, 0.1], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    t2i = np.array([0, 1, 2, 1])  # image 1 has two captions (1 and 3)
    r = retrieval_recall(img, txt, ks=(1, 2), text_to_image=t2i)
    # i2t: img0 best caption is 1 (cos 1.0) -> own caption 0 (0.995) is 2nd: miss@1, hit@2.
    #      img1 own caption 3 (cos 1.0) is best: hit@1. img2 own caption 2 (cos 1.0) is best: hit@1.
    # t2i: cap0 -> img0 (0.995) vs img2 (0.774): hit@1; cap1 -> img0 first, own img1 (0.0) 3rd: miss@2;
    #      cap2 -> img2 first: hit@1; cap3 -> img1 first: hit@1.
    assert r["i2t_R@1"] == pytest.approx(2 / 3) and r["i2t_R@2"] == 1.0
    assert r["t2i_R@1"] == pytest.approx(3 / 4) and r["t2i_R@2"] == pytest.approx(3 / 4)
    assert r["mean_recall"] == pytest.approx(np.mean([2 / 3, 1, 3 / 4, 3 / 4]))


def test_retrieval_t2i_matches_sklearn_top_k():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    r = retrieval_recall(img, txt, ks=(1, 5))
    sim = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T
    for k in (1, 5):
        assert r[f"t2i_R@{k}"] == pytest.approx(top_k_accuracy_score(np.arange(40), sim.T, k=k, labels=range(40)))
        assert r[f"i2t_R@{k}"] == pytest.approx(top_k_accuracy_score(np.arange(40), sim, k=k, labels=range(40)))


def test_retrieval_ties_count_against_the_query_as_sklearn_coverage_error():
    # duplicate captions (identical text embeddings) tie: they must not lift i2t recall
    rng = np.random.default_rng(2)
    img = rng.normal(size=(30, 6))
    txt = rng.normal(size=(30, 6))
    txt[10:20] = txt[10]  # ten images share one caption
    img[25] = img[24]  # two identical images tie for t2i
    r = retrieval_recall(img, txt, ks=(1, 5, 10))
    sim = (img / np.linalg.norm(img, axis=1, keepdims=True)) @ (txt / np.linalg.norm(txt, axis=1, keepdims=True)).T
    own = np.eye(30, dtype=int)
    # coverage_error of one positive = its rank with ties given the maximal rank
    i2t_rank = np.array([coverage_error(own[i:i + 1], sim[i:i + 1]) for i in range(30)])
    t2i_rank = np.array([coverage_error(own[:, j][None], sim[:, j][None]) for j in range(30)])
    for k in (1, 5, 10):
        assert r[f"i2t_R@{k}"] == pytest.approx(np.mean(i2t_rank <= k))
        assert r[f"t2i_R@{k}"] == pytest.approx(np.mean(t2i_rank <= k))
    assert r["i2t_R@5"] <= 20 / 30  # the ten images sharing a caption all rank >= 10th
    # several captions per image: an image's tie with another image's identical caption counts against it
    r = retrieval_recall(np.eye(2), np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), ks=(1, 2),
                         text_to_image=np.array([0, 1, 1]))
    assert r["i2t_R@1"] == 0.5 and r["i2t_R@2"] == 1.0  # image 0 ties its caption with image 1's caption 1
    assert r["t2i_R@1"] == pytest.approx(2 / 3)  # caption 1 (image 1) scores image 0 higher: miss@1


def test_retrieval_bad_input():
    with pytest.raises(MedlibError):
        retrieval_recall(np.ones((3, 4)), np.ones((4, 4)))
    with pytest.raises(MedlibError):
        retrieval_recall(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(MedlibError):
        retrieval_recall(np.ones((3, 4)), np.ones((4, 4)), text_to_image=np.array([0, 1, 2, 3]))
