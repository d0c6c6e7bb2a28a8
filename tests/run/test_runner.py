import json
import sys
from pathlib import Path

import pytest

from medlib.run import preflight, runner
from medlib.config import load_profile
from medlib.errors import MedlibError


def _nbs(tmp_path, names):
    d = tmp_path / "notebooks"
    d.mkdir()
    for n in names:
        (d / n).write_text("{}")
    return runner.discover_notebooks(tmp_path)


def test_select_only_and_from(tmp_path):
    nbs = _nbs(tmp_path, ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb", "notes.ipynb"])
    assert [p.name for p in nbs] == ["01_a.ipynb", "02_b.ipynb", "03_c.ipynb"]
    assert [p.name for p in runner.select(nbs, ["2"], None)] == ["02_b.ipynb"]
    assert [p.name for p in runner.select(nbs, None, "02")] == ["02_b.ipynb", "03_c.ipynb"]
    with pytest.raises(MedlibError, match="no notebook numbered"):
        runner.select(nbs, ["07"], None)


def test_error_line_is_one_line_without_ansi():
    class PapermillLike(Exception):
        ename = "MedlibError"
        evalue = "\x1b[31mdata/x.npz: truncated. Fix: delete it\x1b[0m\nmore"

    assert runner.error_line(PapermillLike()) == "MedlibError: data/x.npz: truncated. Fix: delete it"


def test_unknown_profile_exits_2_with_one_line(capsys):
    assert runner.main(["--profile", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ERROR:") and "nope" in err[0]


def test_preflight_offline_names_every_missing_download(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "online", lambda *a, **k: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    P = load_profile("full", data_dir=tmp_path)
    with pytest.raises(MedlibError) as exc:
        preflight.preflight(P)
    msg = str(exc.value)
    assert "\n" not in msg
    for needle in ("ViT-B-32", "BiomedCLIP", "pneumoniamnist_224.npz", "PubMedVision", "Fix:"):
        assert needle in msg
    preflight.preflight(load_profile("smoke", data_dir=tmp_path))  # smoke never needs the network


def test_preflight_passes_when_local_copies_exist(tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "online", lambda *a, **k: False)
    P = load_profile("smoke", data_dir=tmp_path)
    P.kind = "real"  # a non-smoke profile whose data and models are all local
    ckpt = tmp_path / "w.pt"
    ckpt.write_bytes(b"x")
    for m in P.models:
        m.pretrained = str(ckpt)
    preflight.preflight(P)


def test_relative_paths_are_relative_to_the_callers_folder(tmp_path, monkeypatch):
    import argparse

    monkeypatch.setenv("MEDLIB_CALLER_CWD", str(tmp_path))
    args = argparse.Namespace(data_dir="mydata", profile="cfg/my.yaml")
    runner._resolve_caller_paths(args)
    assert args.data_dir == str(tmp_path / "mydata") and args.profile == str(tmp_path / "cfg" / "my.yaml")
    named = argparse.Namespace(data_dir="/abs", profile="smoke")
    runner._resolve_caller_paths(named)
    assert named.data_dir == "/abs" and named.profile == "smoke"
