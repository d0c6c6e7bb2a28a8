"""Profile key keep_weights: a sweep's run drops best.pt once evaluated; a re-run returns its saved metrics at once."""

import dataclasses

import pytest
import torch

from medlib.studies import runs
from medlib.config import load_profile
from medlib.errors import MedlibError
from medlib.train import checkpoint, engine
from medlib.train.fit import fit
from medlib.train.checkpoint import drop_weights
from helpers import CFG, CLASS_TEXTS, make_data

ONE = dataclasses.replace(CFG, epochs=1)


def _profile(tmp_path, keep):
    return load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs"),
                                  "keep_weights": keep})


@pytest.mark.parametrize("keep", ["reused", "all"])
def test_a_sweep_run_keeps_weights_only_where_the_profile_says(bundle, tmp_path, keep, monkeypatch):
    P = _profile(tmp_path, keep)
    data = make_data(n_train=128)
    res, rec = runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft-1shot-d0",
                                 mode="label", cfg=ONE, class_texts=CLASS_TEXTS, keep_weights=False)
    folder = res.run_dir
    assert (folder / "best.pt").exists() == (keep == "all")
    assert (folder / "log.csv").exists()
    # the re-run trains nothing (and without weights evaluates nothing: it returns the saved record)
    monkeypatch.setattr(engine.Engine, "train_epoch", lambda *a, **k: pytest.fail("trained again"))
    if keep == "reused":
        monkeypatch.setattr(runs, "save_scores", lambda *a, **k: pytest.fail("evaluated again"))
    again, rec2 = runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft-1shot-d0",
                                    mode="label", cfg=ONE, class_texts=CLASS_TEXTS, keep_weights=False)
    assert rec2["metrics"] == rec["metrics"] and rec2["run"] == rec["run"]
    assert (again.model is None) == (keep == "reused")
    assert again.history["val_metric"].tolist() == res.history["val_metric"].tolist()


def test_a_headline_run_keeps_its_weights(bundle, tmp_path):
    P = _profile(tmp_path, "reused")
    res, _ = runs.finetune(P, bundle, make_data(n_train=128), notebook="04_label_finetune", method="label-ft",
                               mode="label", cfg=ONE, class_texts=CLASS_TEXTS)
    assert (res.run_dir / "best.pt").exists()


def test_dropped_weights_without_metrics_is_a_one_line_error(bundle, tmp_path):
    P = _profile(tmp_path, "reused")
    data = make_data(n_train=128)
    res, rec = runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft-4shot-d1",
                                 mode="label", cfg=ONE, class_texts=CLASS_TEXTS, keep_weights=False)
    (P.reports_path / "metrics" / f"{rec['run']}.json").unlink()
    with pytest.raises(MedlibError, match="fresh=True") as e:
        runs.finetune(P, bundle, data, notebook="04_label_finetune", method="label-ft-4shot-d1", mode="label",
                          cfg=ONE, class_texts=CLASS_TEXTS, keep_weights=False)
    assert "\n" not in str(e.value)


def test_weights_of_an_unfinished_run_are_not_dropped(bundle, tmp_path):
    data = make_data(n_train=128)
    fit(bundle, data, mode="label", cfg=ONE, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                 progress=False)
    ck = checkpoint.load(tmp_path / "last.pt")
    ck["finished"] = False
    checkpoint.save(tmp_path / "last.pt", {k: v for k, v in ck.items() if k not in ("format", "version")})
    with pytest.raises(MedlibError, match="not finished"):
        drop_weights(tmp_path)
    assert (tmp_path / "best.pt").exists()
    assert torch.load(tmp_path / "last.pt", weights_only=True).get("weights_dropped") is None


def test_the_retrieval_study_keeps_only_the_wise_ft_base(tmp_path):
    from medlib.studies.general_retrieval import Arm, arms, reused

    P = _profile(tmp_path, "reused")  # smoke: sizes 16 and all, four augmentations, WiSE-FT on all/both
    kept = [a for a in arms(P) if reused(P, a)]
    assert kept == [Arm(0, "both"), Arm(0, "both", "wise_ft")]
    P = dataclasses.replace(P, retrieval_study=dataclasses.replace(P.retrieval_study, variants=[]))
    assert not any(reused(P, a) for a in arms(P))
