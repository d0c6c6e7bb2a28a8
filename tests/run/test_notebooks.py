"""Papermill runs of the numbered notebooks on the smoke profile, as ./run_all.sh does them (slow: ~1 min)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import PNEUMONIA_NPZ, REPO

pytestmark = pytest.mark.slow


def _profile(tmp_path: Path, data_dir: Path) -> Path:
    raw = yaml.safe_load((REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text())
    raw.update(name="smoketest", data_dir=str(data_dir), reports_dir=str(tmp_path / "reports"),
               runs_dir=str(tmp_path / "runs"))
    path = tmp_path / "smoketest.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _run(profile: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MEDLIB_DATA_DIR", "MEDLIB_ROOT")}
    return subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(profile), *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)


def test_notebooks_01_02_write_the_output_contract(tmp_path):
    data = tmp_path / "data"
    if PNEUMONIA_NPZ.is_file():
        (data / "medmnist").mkdir(parents=True)
        (data / "medmnist" / "pneumoniamnist.npz").symlink_to(PNEUMONIA_NPZ)
    proc = _run(_profile(tmp_path, data), "--only", "01", "--only", "02", "--no-report")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "reports" / "smoketest"
    assert (out / "executed" / "01_data_prep.ipynb").is_file()
    assert (out / "executed" / "02_zero_shot_baseline.ipynb").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"git", "packages", "profile_hash", "seed", "device", "notebooks"} <= set(manifest)
    assert manifest["notebooks"]["02_zero_shot_baseline"]["status"] == "ok"
    rec = json.loads((out / "metrics" / "02_zero_shot_baseline__pneumoniamnist__tiny__zero-shot.json").read_text())
    assert rec["profile"] == "smoketest" and rec["method"] == "zero-shot"
    if PNEUMONIA_NPZ.is_file():
        assert rec["n"] == 624  # the full official test split
    assert any(p.name.startswith("02_confusion__pneumoniamnist") for p in (out / "figures").iterdir())
    assert (out / "tables" / "data_summary.csv").is_file()


def test_a_broken_data_file_stops_the_run_with_one_line(tmp_path):
    data = tmp_path / "data"
    (data / "medmnist").mkdir(parents=True)
    (data / "medmnist" / "pneumoniamnist.npz").write_bytes(b"PK\x03\x04 truncated")
    proc = _run(_profile(tmp_path, data), "--only", "01", "--no-report")
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ERROR in 01_data_prep")]
    assert len(errors) == 1 and "pneumoniamnist.npz" in errors[0] and "Fix:" in errors[0]
    assert "Traceback" not in proc.stderr
    assert "executed copy:" in proc.stderr
