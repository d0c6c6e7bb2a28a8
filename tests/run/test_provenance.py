"""The manifest keeps one entry per notebook with the settings it ran with and the runs it read; stale() names every
notebook whose outputs no longer match the latest run, refresh_command() the one command that refreshes them."""

import json

import pytest

from medlib.config import load_profile
from medlib.run import manifest as mf
from medlib.config.notebooks import left_out
from medlib.run.plan import discover_notebooks, select
from conftest import REPO

STEMS = [p.stem for p in discover_notebooks(REPO)]


@pytest.fixture
def profile(tmp_path):
    return load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs")})


def _run(profile, numbers, overrides=None, command="./run_all.sh --profile smoke"):
    """What the runner records for one invocation that runs ``numbers`` in order."""
    p = load_profile("smoke", {"reports_dir": profile.reports_dir, "runs_dir": profile.runs_dir, **(overrides or {})})
    mf.start_manifest(p, command, [s for s in STEMS if s[:2] in numbers], profile_arg="smoke", overrides=overrides)
    for stem in [s for s in STEMS if s[:2] in numbers]:
        reads = mf.upstream_finished(mf.read_manifest(p), stem, STEMS)
        mf.record_notebook(p, stem, 1.0, "ok", f"executed/{stem}.ipynb", reads=reads, command=command)
    return mf.read_manifest(p)


def test_the_manifest_keeps_one_entry_per_notebook_with_its_settings_and_reads(profile):
    _run(profile, {"01", "02", "03", "04", "05", "06", "07"})
    m = _run(profile, {"03"}, {"caption_finetune.train.epochs": 4},
             "./run_all.sh --profile smoke --set caption_finetune.train.epochs=4 --only 03")
    assert sorted(m["notebooks"]) == STEMS  # every notebook, not only the last run's
    e3, e4 = m["notebooks"]["03_caption_finetune"], m["notebooks"]["04_label_finetune"]
    assert e3["overrides"] == {"caption_finetune.train.epochs": 4} and e4["overrides"] == {}
    assert e3["profile_hash"] == m["profile_hash"] != e4["profile_hash"]
    assert e3["command"].endswith("--only 03") and e3["finished"] > e4["finished"]
    assert set(e4["reads"]) == {"01_data_prep", "02_zero_shot_baseline", "03_caption_finetune"}
    assert set(m["notebooks"]["07_general_retrieval"]["reads"]) == {"01_data_prep"}
    assert set(m["profile_configs"]) == {e3["profile_hash"], e4["profile_hash"]}


def test_a_changed_setting_with_only_one_notebook_rerun_makes_its_readers_stale(profile):
    _run(profile, {"01", "02", "03", "04", "05", "06", "07"})
    m = _run(profile, {"03"}, {"caption_finetune.train.epochs": 4})
    old = mf.stale(m)
    assert sorted(old) == ["04_label_finetune", "05_class_imbalance", "06_sota_comparison"]
    assert "03_caption_finetune" in old["04_label_finetune"]
    cmd = mf.refresh_command(m)
    assert cmd == "./run_all.sh --profile smoke --set caption_finetune.train.epochs=4 --only 04,05,06"
    m = _run(profile, {"04", "05", "06"}, {"caption_finetune.train.epochs": 4})  # what that command records
    assert mf.stale(m) == {} and mf.refresh_command(m) == ""
    assert mf.reproduce_command(m) == "./run_all.sh --profile smoke --set caption_finetune.train.epochs=4"


def test_a_notebook_run_with_other_settings_is_stale_and_says_what_changed(profile):
    _run(profile, {"01", "02", "03", "04", "05", "06", "07"})
    m = _run(profile, {"04"}, {"caption_finetune.train.epochs": 4, "seeds": [0]})
    old = mf.stale(m)
    assert "caption_finetune.train.epochs 3 -> 4" in old["03_caption_finetune"]
    assert "seeds" in old["07_general_retrieval"]  # 07 reads the seeds, not the caption settings
    assert "01_data_prep" not in old and "02_zero_shot_baseline" not in old  # settings they do not read
    assert old["04_label_finetune"] == "reads 03_caption_finetune, which is stale"
    assert "--only 03,04,05,06,07" in mf.refresh_command(m)


def test_a_failed_notebook_is_stale_and_a_skipped_one_is_not(profile):
    m = _run(profile, {"01", "02"})
    mf.record_notebook(profile, "02_zero_shot_baseline", 1.0, "failed", "")
    mf.record_notebook(profile, "07_general_retrieval", 0.0, "skipped", "", {"reason": "empty"})
    old = mf.stale(mf.read_manifest(profile))
    assert list(old) == ["02_zero_shot_baseline"] and "failed" in old["02_zero_shot_baseline"]


def test_a_yaml_profile_is_named_by_its_path_in_the_commands(tmp_path):
    m = {"profile": "my_pairs", "profile_arg": "my data/my.yaml", "overrides": {"seeds": [0]}}
    assert mf.reproduce_command(m) == "./run_all.sh --profile 'my data/my.yaml' --set 'seeds=[0]'"
    assert mf.profile_arg_of(str(REPO / "docs" / "x.yaml"), REPO) == "docs/x.yaml"
    assert mf.profile_arg_of("smoke", REPO) == "smoke"


def test_the_manifest_describes_each_dataset_from_the_profile(profile):
    m = _run(profile, {"01"})
    assert m["data"]["pneumoniamnist"]["source"] == "medmnist"
    p = load_profile("examples/csv_pairs")
    d = mf.data_descriptions(p)["my_pairs"]
    assert d["source"] == "csv_pairs" and "Dermoscopy" in d["description"]
    json.dumps(m)


def test_only_takes_lists_and_downstream_adds_the_readers():
    nbs = discover_notebooks(REPO)
    assert [p.name[:2] for p in select(nbs, ["04,05"], None)] == ["04", "05"]
    assert [p.name[:2] for p in select(nbs, ["03"], None, downstream=True)] == ["03", "04", "05", "06"]
    assert [p.name[:2] for p in select(nbs, ["01"], None, downstream=True)] == ["01", "02", "03", "04", "05", "06",
                                                                                "07"]


def test_a_study_the_profile_leaves_out_is_named():
    p = load_profile("examples/csv_pairs")
    assert "retrieval_study.datasets" in left_out(p, "07_general_retrieval")
    assert "imbalance.datasets" in left_out(p, "05")
    assert left_out(p, "03") == "" and left_out(p, "06") == ""
