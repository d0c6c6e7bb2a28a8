"""What the runner prints when something goes wrong: a bad command-line argument, a failing cell (which cell,
where its executed copy is), and no closing "real data" line after a failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from medlib.run import runner
from test_runner_faults import REPO, _env, _smoke_like, _tmp


@pytest.mark.parametrize("argv, needle", [
    (["--gpus", "abc"], "argument --gpus: 'abc' is not a process count. Fix: pass an integer >= 1"),
    (["--gpus", "0"], "argument --gpus: '0' is not a process count"),
    (["--profile", "smoke", "--bogus"], "unrecognized arguments: --bogus. Fix: ./run_all.sh --help"),
    (["--profile"], "argument --profile: expected one argument. Fix:"),
    (["--rehearse", "--device", "gpu"], "argument --device: invalid choice: 'gpu'"),
])
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, needle):
    assert runner.main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert out == "" and len(lines) == 1 and lines[0].startswith("ERROR: ") and needle in lines[0], err


def test_medlib_command_line_errors_are_one_line(capsys):
    from medlib.__main__ import main as medlib_main

    assert medlib_main(["frob"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown command 'frob'" in err[0] and "Fix:" in err[0]
    assert medlib_main(["run", "--gpus", "two"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--gpus" in err[0]


def test_bad_gpus_on_the_command_line_is_one_line():
    res = subprocess.run([sys.executable, "-m", "medlib.run", "--gpus", "abc"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert res.returncode == 2 and res.stdout == ""
    assert len(res.stderr.strip().splitlines()) == 1 and "usage:" not in res.stderr and "--gpus" in res.stderr


# ---- a failing cell -----------------------------------------------------------------------------------------

FAILING = """\
# look up each model's score
scores = {"a": 1}
for spec in ["a", "b"]:
    print(scores[spec])
"""
DYING = """\
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""


def _checkout(tmp_path: Path, body: str) -> Path:
    """A repository with notebooks/01_fail.ipynb: parameters, a good cell, then ``body``."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "run_all.sh").write_text("#!/bin/sh\n")
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndata_dir = None')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a notebook"), params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, root / "notebooks" / "01_fail.ipynb")
    (root / "p.yaml").write_text("kind: smoke\ndevice: cpu\nmodels: []\ndatasets: []\n")
    _tmp(root).mkdir(exist_ok=True)
    return root


def _run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(root / "p.yaml"), "--no-report"],
                          cwd=root, env=_env(root), capture_output=True, text=True, timeout=300)


def test_failing_cell_is_named_by_number_and_first_line_with_its_copy(tmp_path):
    root = _checkout(tmp_path, FAILING)
    res = _run(root)
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    copy = root / "reports" / "p" / "executed" / "01_fail.failed.ipynb"
    # In [4] of the executed copy: papermill's injected parameters cell runs as In [2]
    assert err == ["ERROR in 01_fail, cell 4 (`# look up each model's score`): KeyError: 'b'",
                   f"  executed copy: {copy}"], res.stderr
    cells = nbformat.read(copy, as_version=4).cells
    assert any(c.get("execution_count") == 4 and c.source == FAILING for c in cells)


def test_cell_running_when_the_kernel_died_is_named_from_the_executed_copy(tmp_path):
    root = _checkout(tmp_path, DYING)
    res = _run(root)
    assert res.returncode == 1
    err = res.stderr.strip().splitlines()
    assert err[0].startswith("ERROR in 01_fail, cell 4 (`import os, signal`): DeadKernelError"), res.stderr
    assert len(err) == 2 and "Kernel died while waiting" not in res.stderr and "Task exception" not in res.stderr


def test_failed_cell_from_papermills_error():
    class PapermillLike(Exception):
        exec_count, source = 7, "\n\n  for spec in P.models:\n    clip = load(spec)\n"

    assert runner.failed_cell(PapermillLike()) == "cell 7 (`for spec in P.models:`)"
    long = type("E", (Exception,), {"exec_count": 2, "source": "x = " + "1 + " * 40})
    assert runner.failed_cell(long()).endswith("...`)") and len(runner.failed_cell(long())) < 80
    assert runner.failed_cell(ValueError("no cell")) == ""


# ---- the closing line ---------------------------------------------------------------------------------------


@pytest.fixture
def in_process(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "run_all.sh").write_text("#!/bin/sh\n")
    nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / "01_x.ipynb")
    for key in ("MEDLIB_ROOT", "MEDLIB_DATA_DIR", "MEDLIB_PROGRESS"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test; the runner sets them
    monkeypatch.setenv("MEDLIB_ROOT", str(root))
    monkeypatch.delenv("MEDLIB_CALLER_CWD", raising=False)
    monkeypatch.setattr(runner, "ensure_kernel", lambda: "medclip")
    return root


def test_a_failed_run_ends_with_its_error_not_with_the_data_line(in_process, monkeypatch, capsys):
    prof = _smoke_like(in_process, in_process / "data")

    def failing(*args, **kwargs):
        print("ERROR in 01_x, cell 3 (`x = 1`): ValueError: broken", file=sys.stderr)
        return 1

    monkeypatch.setattr(runner, "_notebooks", failing)
    assert runner.main(["--profile", str(prof), "--no-report"]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("GENERATED data:")  # the first line still says it
    assert err.strip().splitlines() == ["ERROR in 01_x, cell 3 (`x = 1`): ValueError: broken"]
    assert not any(line.startswith(("GENERATED data", "real data")) for line in out.splitlines()[1:])
