"""The output contract: save_run / save_retrieval_run / load_runs / save_table."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score, top_k_accuracy_score

from medlib.outputs import records
from medlib.config import load_profile
from medlib.errors import MedlibError

DESIGN_KEYS = {"run", "notebook", "profile", "dataset", "split", "task", "model", "method", "n", "seed", "metrics",
               "ci95", "per_class", "predictions"}


@pytest.fixture
def profile(tmp_path):
    return load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs")})


def _probs(n, c, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    s = rng.dirichlet(np.ones(c), n)
    s[np.arange(n), y] += 0.4
    return y, s / s.sum(axis=1, keepdims=True)


def _save(profile, y, s, names, method="zero-shot", **kw):
    return records.save_run(profile, notebook="02_zero_shot_baseline", dataset="pneumoniamnist", model="tiny",
                            method=method, task="multiclass", split="test", y_true=y, y_score=s, class_names=names,
                            n_boot=50, **kw)


def test_save_run_writes_contract_and_metrics_recompute_with_sklearn(profile):
    y, s = _probs(120, 4)
    names = ["a", "b", "c", "d"]
    rec = _save(profile, y, s, names, extra={"epochs": 3})
    run = "02_zero_shot_baseline__pneumoniamnist__tiny__zero-shot"
    mpath = profile.reports_path / "metrics" / f"{run}.json"
    ppath = profile.reports_path / "predictions" / f"{run}.npz"
    on_disk = json.loads(mpath.read_text())
    assert on_disk == rec
    assert DESIGN_KEYS <= set(on_disk) and {"confusion", "extra"} <= set(on_disk)
    assert on_disk["run"] == run and on_disk["n"] == 120 and on_disk["seed"] == profile.seed
    assert on_disk["predictions"] == f"predictions/{run}.npz" and on_disk["extra"] == {"epochs": 3}
    # no temporary files left behind
    assert sorted(p.name for p in mpath.parent.iterdir()) == [mpath.name]
    assert sorted(p.name for p in ppath.parent.iterdir()) == [ppath.name]
    # recompute every headline metric from the predictions file with scikit-learn alone
    z = np.load(profile.reports_path / on_disk["predictions"])
    yt, ys = z["y_true"], z["y_score"]
    assert list(z["class_names"]) == names
    pred = ys.argmax(axis=1)
    m = on_disk["metrics"]
    assert m["acc"] == pytest.approx(accuracy_score(yt, pred))
    assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(yt, pred))
    assert m["macro_f1"] == pytest.approx(f1_score(yt, pred, average="macro"))
    assert m["auroc"] == pytest.approx(roc_auc_score(yt, ys, multi_class="ovr"))
    assert m["top3"] == pytest.approx(top_k_accuracy_score(yt, ys, k=3))
    assert records.load_predictions(profile, run)["y_score"].shape == (120, 4)
    assert records.load_run(profile, run) == rec


def test_multilabel_run_stores_threshold(profile):
    rng = np.random.default_rng(0)
    y = (rng.random((80, 3)) < 0.4).astype(int)
    s = rng.random((80, 3))
    rec = records.save_run(profile, notebook="04_label_finetune", dataset="chestxray14", model="tiny",
                           method="multilabel", task="multilabel", split="test", y_true=y, y_score=s,
                           class_names=["x", "y", "z"], threshold=[0.3, 0.5, 0.7], n_boot=20)
    z = records.load_predictions(profile, rec["run"])
    assert list(z["threshold"]) == [0.3, 0.5, 0.7] == rec["threshold"]
    pred = z["y_score"] > z["threshold"]
    assert rec["metrics"]["acc"] == pytest.approx((pred == z["y_true"]).mean())


def test_failed_evaluation_leaves_existing_files_untouched(profile):
    y, s = _probs(60, 2)
    _save(profile, y, s, ["normal", "pneumonia"])
    folder = profile.reports_path
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    with pytest.raises(MedlibError):  # scores that are not probabilities
        _save(profile, y, s * 3, ["normal", "pneumonia"])
    with pytest.raises(MedlibError):  # extra that JSON cannot hold: fails before anything is written
        _save(profile, y, s, ["normal", "pneumonia"], extra={"bad": object()})
    after = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert after == before


def test_same_seed_same_files(profile, tmp_path):
    y, s = _probs(100, 3)
    a = _save(profile, y, s, ["a", "b", "c"])
    b = _save(profile, y, s, ["a", "b", "c"])
    assert a == b


def test_undefined_metric_written_as_null(profile):
    y = np.zeros(30, dtype=int)
    s = np.tile([0.9, 0.1], (30, 1))
    rec = _save(profile, y, s, ["normal", "pneumonia"])
    text = (profile.reports_path / "metrics" / f"{rec['run']}.json").read_text()
    assert "NaN" not in text and rec["metrics"]["auroc"] is None


def test_retrieval_run(profile):
    rng = np.random.default_rng(0)
    img = rng.normal(size=(20, 8))
    rec = records.save_retrieval_run(profile, notebook="06_sota_comparison", dataset="flickr30k", model="tiny",
                                     method="zero-shot", image_emb=img, text_emb=img + 0.01 * rng.normal(size=(20, 8)))
    assert rec["task"] == "retrieval" and rec["metrics"]["i2t_R@1"] == 1.0
    z = records.load_predictions(profile, rec["run"])
    assert z["image_emb"].shape == (20, 8) and list(z["text_to_image"]) == list(range(20))


def test_predictions_file_holds_the_arrays_as_evaluated(profile):
    # MedMNIST-style (N, 1) float labels: stored as the (N,) int64 labels the metrics were computed from
    y, s = _probs(50, 3)
    rec = _save(profile, y[:, None].astype(np.float32), s.astype(np.float32), ["a", "b", "c"])
    z = records.load_predictions(profile, rec["run"])
    assert z["y_true"].shape == (50,) and z["y_true"].dtype == np.int64 and z["y_score"].dtype == np.float64
    assert rec["metrics"]["acc"] == accuracy_score(z["y_true"], z["y_score"].argmax(axis=1))


def test_retrieval_metrics_recompute_exactly_from_stored_float32(profile):
    rng = np.random.default_rng(1)
    img = rng.normal(size=(30, 8))
    txt = img + 0.5 * rng.normal(size=(30, 8))
    rec = records.save_retrieval_run(profile, notebook="03_caption_finetune", dataset="pubmedvision", model="tiny",
                                     method="zero-shot-retrieval", image_emb=img, text_emb=txt, ks=(1, 5))
    z = records.load_predictions(profile, rec["run"])
    assert z["image_emb"].dtype == np.float32
    sim = z["image_emb"].astype(np.float64) @ z["text_emb"].astype(np.float64).T
    sim /= np.linalg.norm(z["image_emb"].astype(np.float64), axis=1)[:, None]
    sim /= np.linalg.norm(z["text_emb"].astype(np.float64), axis=1)[None, :]
    for k in (1, 5):
        assert rec["metrics"][f"t2i_R@{k}"] == top_k_accuracy_score(z["text_to_image"], sim.T, k=k, labels=range(30))


def test_load_runs_and_tables(profile, tmp_path):
    y, s = _probs(90, 2)
    _save(profile, y, s, ["normal", "pneumonia"], method="zero-shot")
    _save(profile, y, s[:, ::-1], ["normal", "pneumonia"], method="full")
    df = records.load_runs(profile)
    assert len(df) == 2 and {"run", "notebook", "dataset", "model", "method", "task", "n", "acc", "acc_lo",
                             "acc_hi", "auroc"} <= set(df.columns)
    assert (df["acc_lo"] <= df["acc"]).all() and (df["acc"] <= df["acc_hi"]).all()
    assert records.load_runs(profile.reports_path).equals(df)
    empty = records.load_runs(tmp_path / "nothing")
    assert len(empty) == 0 and "run" in empty.columns
    path = records.save_table(profile, "zs_summary", df[["run", "acc"]])
    assert path == profile.reports_path / "tables" / "zs_summary.csv"
    assert pd.read_csv(path)["acc"].tolist() == pytest.approx(df["acc"].tolist())
    with pytest.raises(MedlibError):
        records.save_table(profile, "Bad Name", df)


def test_broken_files_raise_one_line_error(profile):
    y, s = _probs(30, 2)
    rec = _save(profile, y, s, ["normal", "pneumonia"])
    (profile.reports_path / "metrics" / "broken.json").write_text("{not json")
    with pytest.raises(MedlibError, match="broken.json"):
        records.load_runs(profile)
    (profile.reports_path / "predictions" / f"{rec['run']}.npz").write_bytes(b"truncated")
    with pytest.raises(MedlibError, match="npz"):
        records.load_predictions(profile, rec["run"])
    with pytest.raises(MedlibError, match="no such run"):
        records.load_run(profile, "nope")
