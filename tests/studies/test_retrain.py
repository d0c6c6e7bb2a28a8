"""A run whose settings changed is trained again by itself (one line naming it and the change); untouched runs are
reused; ./run_all.sh --fresh starts a notebook's runs over, each once; per-epoch progress events for the console."""

import dataclasses
import json

import pytest

from helpers import CFG, make_data
from medlib.config import load_profile
from medlib.studies import runs


@pytest.fixture
def profile(tmp_path):
    return load_profile("smoke", {"runs_dir": str(tmp_path / "runs"), "reports_dir": str(tmp_path / "reports")})


def _ft(profile, bundle, data, cfg, method="label-ft", **kw):
    return runs.finetune(profile, bundle, data, notebook="04_label_finetune", method=method, mode="label",
                         cfg=cfg, evaluate=False, **kw)


def test_a_changed_setting_retrains_that_run_and_reuses_the_others(profile, bundle, capsys):
    data = make_data(n_train=64, n_val=32)
    cfg = dataclasses.replace(CFG, epochs=1, batch_size=32)
    a, _ = _ft(profile, bundle, data, cfg, "label-ft")
    b, _ = _ft(profile, bundle, data, cfg, "other-ft")
    assert a.resumed_from is None and b.resumed_from is None
    capsys.readouterr()
    longer = dataclasses.replace(cfg, epochs=2)
    a2, _ = _ft(profile, bundle, data, longer, "label-ft")  # its epochs changed: trained again, no fresh=True
    b2, _ = _ft(profile, bundle, data, cfg, "other-ft")  # untouched: the finished run, reused
    out = capsys.readouterr().out.splitlines()
    lines = [line for line in out if line.startswith("RETRAIN")]
    assert len(lines) == 1 and "label-ft" in lines[0] and "cfg.epochs 1 -> 2" in lines[0]
    assert a2.resumed_from is None and len(a2.history) == 3  # epoch 0 + 2 trained epochs
    assert b2.resumed_from == 1  # returned at once from its finished checkpoint
    again, _ = _ft(profile, bundle, data, longer, "label-ft")
    assert again.resumed_from == 2  # now reused with its new settings


def test_fresh_for_the_notebook_starts_each_run_over_once(profile, bundle, monkeypatch):
    data = make_data(n_train=64, n_val=32)
    cfg = dataclasses.replace(CFG, epochs=1, batch_size=32)
    _ft(profile, bundle, data, cfg)
    monkeypatch.setattr(runs, "_STARTED_OVER", set())
    monkeypatch.setenv(runs.FRESH_ENV, "04_label_finetune")
    first, _ = _ft(profile, bundle, data, cfg)
    second, _ = _ft(profile, bundle, data, cfg)  # the same run again in the same notebook: not trained twice
    assert first.resumed_from is None and second.resumed_from == 1
    monkeypatch.setenv(runs.FRESH_ENV, "06_sota_comparison")  # another notebook's --fresh leaves 04's runs alone
    monkeypatch.setattr(runs, "_STARTED_OVER", set())
    assert _ft(profile, bundle, data, cfg)[0].resumed_from == 1


def test_training_writes_one_progress_event_per_epoch(profile, bundle, tmp_path, monkeypatch):
    from medlib import progress

    events = tmp_path / "events.jsonl"
    monkeypatch.setenv(progress.FILE_ENV, str(events))
    data = make_data(n_train=64, n_val=32)
    _ft(profile, bundle, data, dataclasses.replace(CFG, epochs=2, batch_size=32, patience=0))
    _ft(profile, bundle, data, dataclasses.replace(CFG, epochs=2, batch_size=32, patience=0))  # reused
    evs = [json.loads(line) for line in events.read_text().splitlines()]
    assert [(e["kind"], e.get("epoch")) for e in evs] == [("epoch", 1), ("epoch", 2), ("done", None), ("done", None)]
    lines = [progress.describe(e) for e in evs]
    assert "epoch 1/2" in lines[0] and "ETA" in lines[0] and "toy" in lines[0]
    assert "done in" in lines[2] and "reused" in lines[3]
