"""The student's loop end to end (slow: papermill, ~4 min on two busy cores).

Your own data: the example CSV profile (medlib/config/profiles/examples/csv_pairs.yaml) on a generated two-class set
of image_path,caption,label pairs, run through every notebook that applies and the report, with the studies it leaves
out skipped in one line; the profile's class phrases in the prompts; its description of the data in the data summary
and the manifest. The console shows each training run's epochs; the executed notebooks carry no progress bars.
Then one setting changed with --set and one notebook re-run: the notebooks that read it are named STALE with the
command that refreshes them -- never a silent mix.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import REPO

pytestmark = pytest.mark.slow

QUICK = ["--set", "kind=smoke", "--set", "seeds=[0]", "--set", "models=[{name: tiny, arch: medclip-tiny, role: clip}]",
         "--set", "zero_shot.n_boot=20", "--set", "caption_finetune.train.batch_size=16",
         "--set", "caption_finetune.train.epochs=1", "--set", "label_finetune.train.batch_size=16",
         "--set", "label_finetune.train.epochs=1", "--set", "label_finetune.probe_epochs=1",
         "--set", "sota.cnn_epochs=1", "--set", "sota.cnn_batch_size=16", "--set", "sota.cnn_weights=none",
         "--set", "caption_finetune.variants=[plain]", "--set", "label_finetune.variants=[full, wise_ft]"]
TRAINED = ["caption-ft-plain", "label-ft", "resnet18 · supervised"]


def write_pairs(folder: Path, n: int = 40, seed: int = 0) -> Path:
    """A two-class set: PNG images (a bright disc: malignant) and pairs.csv (image_path,caption,label)."""
    from PIL import Image

    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    rows = ["image_path,caption,label"]
    for i in range(n):
        label = "malignant" if i % 2 else "benign"
        img = rng.normal(90, 25, (32, 32, 3))
        if label == "malignant":
            cy, cx = rng.integers(10, 22, 2)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < 30] += [120, 40, 20]
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(folder / "images" / f"{i:03d}.png")
        text = "a dark irregular lesion with a bright core" if i % 2 else "an even light skin lesion"
        rows.append(f"images/{i:03d}.png,{text} (case {i}),{label}")
    (folder / "pairs.csv").write_text("\n".join(rows) + "\n")
    return folder / "pairs.csv"


def _run(profile: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("MEDLIB_DATA_DIR", "MEDLIB_ROOT", "MEDLIB_PROGRESS")}
    return subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(profile), *QUICK, *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    """An empty folder, the CSV written into it, the example profile copied beside it, and one run of it."""
    root = tmp_path_factory.mktemp("own")
    write_pairs(root / "data" / "my_pairs")
    raw = yaml.safe_load((REPO / "medlib" / "config" / "profiles" / "examples" / "csv_pairs.yaml").read_text())
    raw["datasets"][0]["size"] = 28  # the tiny model's input; the rest as the example has it
    raw.update(data_dir=str(root / "data"), reports_dir=str(root / "reports"), runs_dir=str(root / "runs"))
    profile = root / "my.yaml"
    profile.write_text(yaml.safe_dump(raw, sort_keys=False))
    proc = _run(profile)
    return root, profile, proc, root / "reports" / "my_pairs"


def test_the_example_csv_profile_runs_every_notebook_that_applies_and_the_report(own):
    root, _, proc, out = own
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for nb, key in (("05_class_imbalance", "imbalance.datasets"), ("07_general_retrieval", "retrieval_study.datasets")):
        skips = [line for line in lines if f"{nb} skipped" in line]
        assert len(skips) == 1 and key in skips[0]
        assert not (out / "executed" / f"{nb}.ipynb").exists()
    for nb in ("01_data_prep", "02_zero_shot_baseline", "03_caption_finetune", "04_label_finetune",
               "06_sota_comparison"):
        assert (out / "executed" / f"{nb}.ipynb").is_file(), nb
    # the user's class phrases and templates in the prompts, not the chest X-ray ensemble
    rec = json.loads((out / "metrics" / "02_zero_shot_baseline__my_pairs__tiny__zero-shot.json").read_text())
    assert rec["extra"]["class_texts"] == ["a benign nevus", "a melanoma"]
    assert "a dermoscopy photo of {}." in rec["extra"]["templates"]
    assert not any("X-ray" in t or "medical" in t for t in rec["extra"]["templates"])
    # the user's data described where the report reads it
    summary = (out / "tables" / "data_summary.csv").read_text()
    assert "Dermoscopy photographs of skin lesions" in summary and "my_pairs" in summary
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["data"]["my_pairs"]["source"] == "csv_pairs"
    assert "Dermoscopy" in manifest["data"]["my_pairs"]["description"]
    assert manifest["notebooks"]["07_general_retrieval"]["status"] == "skipped"
    report = (out / "report.md").read_text()
    assert "my_pairs" in report and (out / "report.pdf").is_file()
    # make report PROFILE=path/to/my.yaml: the report of that profile's run (its name and folders, not the path's)
    env = {**{k: v for k, v in os.environ.items() if k not in ("MEDLIB_DATA_DIR", "MEDLIB_ROOT")},
           "MEDLIB_PYTHON": sys.executable}
    again = subprocess.run(["make", "-s", "report", f"PROFILE={own[1]}"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "report.md" in again.stdout, again.stderr[-2000:]


def test_the_console_shows_each_training_run_and_the_notebooks_stay_clean(own):
    _, _, proc, out = own
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run in TRAINED:
        progress = [line for line in proc.stdout.splitlines() if f"my_pairs · " in line and run in line]
        assert progress, f"no progress line for {run}"
    assert any("epoch 1/1" in line and "ETA" in line for line in proc.stdout.splitlines())
    for nb in (out / "executed").glob("*.ipynb"):
        text = nb.read_text()
        assert "it/s]" not in text and "%|" not in text and "\\r" not in text, nb.name


def test_a_notebook_whose_study_is_left_out_runs_in_lab_to_one_line(own, monkeypatch):
    import papermill as pm

    root, profile, _, _ = own
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MEDLIB_ROOT", str(REPO))
    out = root / "07.ipynb"
    pm.execute_notebook(str(REPO / "notebooks" / "07_general_retrieval.ipynb"), str(out), cwd=str(REPO),
                        parameters={"profile": str(profile)}, kernel_name="python3", progress_bar=False)
    cells = json.loads(out.read_text())["cells"]
    text = "".join("".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
    assert text.count("SKIPPED 07_general_retrieval") == 1


def test_one_setting_changed_and_one_notebook_rerun_names_what_is_stale(own):
    root, profile, first, out = own
    assert first.returncode == 0, first.stderr[-3000:]
    proc = _run(profile, "--set", "caption_finetune.train.epochs=2", "--only", "03")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "caption-ft-plain: settings changed (cfg.epochs 1 -> 2)" in proc.stdout  # retrained, no fresh=True
    stale_line = next(line for line in proc.stdout.splitlines() if line.startswith("STALE"))
    assert "04_label_finetune" in stale_line and "06_sota_comparison" in stale_line
    assert "02_zero_shot_baseline" not in stale_line
    refresh = next(line for line in proc.stdout.splitlines() if line.startswith("refresh them: "))
    assert "--set caption_finetune.train.epochs=2 " in refresh and refresh.endswith(" --only 04,06")
    from medlib.run.manifest import refresh_command, stale

    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(stale(manifest)) == ["04_label_finetune", "06_sota_comparison"]
    assert refresh_command(manifest) == refresh.removeprefix("refresh them: ")
    assert manifest["notebooks"]["03_caption_finetune"]["overrides"]["caption_finetune.train.epochs"] == 2
    assert manifest["notebooks"]["04_label_finetune"]["overrides"]["caption_finetune.train.epochs"] == 1
