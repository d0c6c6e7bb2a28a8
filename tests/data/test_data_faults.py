"""Faults in the data layer (issue 9): 16-bit images, wrong paths, stale CSV caches, paths outside the CSV's
folder, empty MedMNIST splits, one line per generated dataset, credentialed (MIMIC-CXR) data never shown."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlib.studies import setup
from medlib.config import DatasetSpec, Profile
from medlib.data import get_dataset, load_dataset, source_plan, fixtures
from medlib.data.decode import read_image
from medlib.errors import MedlibError

PNEU = dict(name="pneumoniamnist", source="medmnist", flag="pneumoniamnist", size=28, synthetic="auto", fixture_n=60)
NIH = dict(name="chestxray14", source="chestxray14", path="chestxray14", size=28, synthetic="auto", fixture_n=120)
PMV = dict(name="pubmedvision", source="pubmedvision", path="pubmedvision", size=28, synthetic="auto", fixture_n=60)


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


def one_line_error(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Fix:" in msg
    return msg


# ---- 16-bit and float images ------------------------------------------------------------------------------


def test_16bit_png_is_scaled_by_its_value_range_not_clipped(tmp_path):
    # A DICOM-derived 12-bit range in a 16-bit PNG: 1000..4000. convert("L") clipped every value to 255.
    a = np.linspace(1000, 4000, 16).reshape(4, 4).astype(np.uint16)
    path = tmp_path / "ct.png"
    Image.fromarray(a).save(path)
    with Image.open(path) as im:
        assert im.mode.startswith("I")  # really a 16-bit file
    want = np.rint((a.astype(float) - 1000) / 3000 * 255).astype(np.uint8)
    got = read_image(path, 4, rgb=False, index_file=tmp_path / "index.csv")
    np.testing.assert_array_equal(got, want)
    assert got.min() == 0 and got.max() == 255 and len(np.unique(got)) == 16


def test_float_tiff_is_scaled_by_its_value_range(tmp_path):
    a = np.array([[-1.0, 0.0], [0.5, 1.0]], np.float32)
    path = tmp_path / "x.tif"
    Image.fromarray(a, mode="F").save(path)
    got = read_image(path, 2, rgb=False, index_file=tmp_path / "index.csv")
    np.testing.assert_array_equal(got, np.rint((a + 1) / 2 * 255).astype(np.uint8))


# ---- wrong paths are errors, never generated data ---------------------------------------------------------


def test_medmnist_folder_that_is_a_file_is_an_error(tmp_path):
    (tmp_path / "medmnist").write_text("not a folder")
    with pytest.raises(MedlibError) as e:
        load_dataset(profile(tmp_path, PNEU), "pneumoniamnist")
    assert "medmnist: is a file" in one_line_error(e)
    assert not (tmp_path / "fixtures").exists()  # nothing generated


def test_medmnist_file_that_is_a_folder_is_an_error(tmp_path):
    (tmp_path / "medmnist" / "pneumoniamnist.npz").mkdir(parents=True)
    with pytest.raises(MedlibError) as e:
        get_dataset(profile(tmp_path, PNEU), "pneumoniamnist")
    assert "pneumoniamnist.npz: is a folder" in one_line_error(e)
    assert not (tmp_path / "fixtures").exists()


@pytest.mark.parametrize("spec,make", [
    (NIH, lambda root: (root / "chestxray14").write_text("x")),  # NIH folder is a file
    (NIH, lambda root: (root / "chestxray14").mkdir()),  # NIH folder without Data_Entry_2017.csv
    (PMV, lambda root: (root / "pubmedvision").write_text("x")),
    (PMV, lambda root: (root / "pubmedvision").mkdir()),  # no records file, download off
    (dict(name="pairs", source="csv_pairs", path="mine", synthetic="auto"), lambda root: (root / "mine").mkdir()),
    (dict(name="pairs", source="csv_pairs", path="mine.csv", synthetic="auto"), lambda root: None),  # named, absent
    (dict(name="mimic_cxr", source="mimic_cxr", path="mimic", synthetic="never"), lambda root: None),
])
def test_a_user_path_of_the_wrong_kind_is_an_error_not_generated_data(tmp_path, spec, make):
    make(tmp_path)
    p = profile(tmp_path, spec)
    with pytest.raises(MedlibError) as e:
        source_plan(p)  # the runner's preflight: before any notebook runs
    one_line_error(e)
    with pytest.raises(MedlibError):
        load_dataset(p, spec["name"])
    assert not (tmp_path / "fixtures").exists()


def test_data_dir_missing_or_a_file_is_a_one_line_error(tmp_path):
    from medlib.config import load_profile

    with pytest.raises(MedlibError) as e:
        load_profile("smoke", data_dir=tmp_path / "typo")
    assert "typo: data dir" in one_line_error(e) and "does not exist" in str(e.value)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MedlibError) as e:
        load_profile("smoke", data_dir=tmp_path / "file")
    assert "is a file" in one_line_error(e)
    assert load_profile("smoke", data_dir=tmp_path).data_dir == str(tmp_path)


def test_preflight_names_each_generated_dataset_on_the_console(tmp_path, capsys):
    from medlib.run.preflight import preflight

    p = profile(tmp_path, PNEU, NIH)
    p.kind = "smoke"
    preflight(p)
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in out if line.startswith("GENERATED")] == ["pneumoniamnist:", "chestxray14:"]


# ---- one line per generated dataset -----------------------------------------------------------------------


def test_one_line_per_generated_dataset_no_warning_echo(tmp_path, capsys):
    p = profile(tmp_path, PNEU)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        got = list(setup.datasets(p, ["pneumoniamnist"], "01_data_prep"))
        got += list(setup.datasets(p, ["pneumoniamnist"], "01_data_prep"))  # cache hit
    assert len(got) == 2 and got[0].synthetic
    assert not [w for w in rec if "GENERATED" in str(w.message) or "generated" in str(w.message)]
    cap = capsys.readouterr()
    lines = [line for line in (cap.out + cap.err).splitlines() if "pneumoniamnist" in line]
    assert len(lines) == 2 and all(line.startswith("GENERATED pneumoniamnist:") for line in lines)


# ---- CSV pairs: stale cache, paths outside the folder ------------------------------------------------------


def _pairs(tmp_path, n=20):
    root = tmp_path / "pairs"
    fixtures.write_csv_pairs(root, n)
    return root, dict(name="pairs", source="csv_pairs", path=str(root / "pairs.csv"), size=16)


def test_replacing_an_image_rebuilds_the_cached_csv_pairs(tmp_path):
    root, spec = _pairs(tmp_path)
    p = profile(tmp_path, spec)
    first = get_dataset(p, "pairs")
    row = first.splits["train"].ids[0]
    img = root / row
    old = first.splits["train"].images[0]
    new = 255 - np.asarray(Image.open(img).convert("RGB"))
    Image.fromarray(new).save(img)
    st = os.stat(img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # a later mtime, CSV untouched
    again = get_dataset(p, "pairs")
    i = again.splits["train"].ids.index(row)
    assert not np.array_equal(again.splits["train"].images[i], old)
    np.testing.assert_array_equal(again.splits["train"].images[i], load_dataset(p, "pairs").splits["train"].images[i])


def test_csv_image_paths_outside_the_csv_folder_are_allowed_recorded_and_warned_once(tmp_path):
    root, _ = _pairs(tmp_path)
    df = pd.read_csv(root / "pairs.csv")
    sub = tmp_path / "csvs"
    sub.mkdir()
    df["image_path"] = ["../pairs/" + p for p in df["image_path"][:10]] + [str(root / p) for p in df["image_path"][10:]]
    df.to_csv(sub / "pairs.csv", index=False)
    p = profile(tmp_path, dict(name="pairs", source="csv_pairs", path=str(sub / "pairs.csv"), size=16))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        b = load_dataset(p, "pairs")
    outside = [w for w in rec if "outside the dataset folder" in str(w.message)]
    assert len(outside) == 1 and "20 image path(s)" in str(outside[0].message)
    assert b.manifest["images_outside_folder"]["n"] == 20
    assert sum(len(s) for s in b.splits.values()) == 20  # still read
    inside = load_dataset(profile(tmp_path, dict(name="pairs", source="csv_pairs", path=str(root / "pairs.csv"),
                                                 size=16)), "pairs")
    assert inside.manifest["images_outside_folder"]["n"] == 0


# ---- MedMNIST: an empty split -----------------------------------------------------------------------------


def test_medmnist_split_with_zero_rows_is_an_error(tmp_path):
    arrays = fixtures.medmnist_arrays(0, 60, 28, 2, False, 1)
    arrays["val_images"], arrays["val_labels"] = arrays["val_images"][:0], arrays["val_labels"][:0]
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "pneumoniamnist.npz", **arrays)
    with pytest.raises(MedlibError) as e:
        load_dataset(profile(tmp_path, PNEU), "pneumoniamnist")
    assert "0 rows in its val split" in one_line_error(e)


# ---- credentialed data (MIMIC-CXR) ------------------------------------------------------------------------


MIMIC = dict(name="mimic_cxr", source="mimic_cxr", path="", size=28, synthetic="always", fixture_n=60)


def fixture_sentences(root) -> set[str]:
    """Every sentence of the MIMIC fixture's FINDINGS/IMPRESSION sections of four words or more (shorter ones are
    label names such as 'lung opacity', which statistics may show)."""
    from medlib.data.sources.mimic_cxr import report_sections

    out = set()
    for txt in (root / "files").rglob("*.txt"):
        for sent in report_sections(txt.read_text()).split(". "):
            sent = sent.strip().rstrip(".")
            if len(sent.split()) >= 4:
                out.add(sent)
    return out


def test_credentialed_is_a_property_of_the_source_and_survives_the_cache(tmp_path):
    p = profile(tmp_path, MIMIC, PNEU)
    b = get_dataset(p, "mimic_cxr")
    assert b.credentialed and b.manifest["credentialed"] is True
    assert get_dataset(p, "mimic_cxr").credentialed  # cache hit
    assert not get_dataset(p, "pneumoniamnist").credentialed
    b.name = "renamed"  # not a name check
    from medlib.data import preview

    with pytest.raises(ValueError):
        preview.samples(b)


def test_notebook01_figure_for_credentialed_data_has_no_text_and_no_images(tmp_path):
    from matplotlib.image import AxesImage
    from matplotlib.text import Text

    from medlib.data import preview
    from medlib.outputs import plots

    b = load_dataset(profile(tmp_path, MIMIC), "mimic_cxr")
    stats = preview.text_statistics(b)
    assert stats["images"].sum() == sum(len(s) for s in b.splits.values())
    assert stats.loc[stats.split == "train", "words_mean"].item() > 3
    fig = plots.text_statistics_plot(preview.caption_lengths(b), preview.label_prevalence(b), "t",
                                     preview.withheld_note(b))
    assert not fig.findobj(AxesImage)
    shown = " ".join(t.get_text() for t in fig.findobj(Text))
    assert "licence" in shown
    sentences = fixture_sentences(tmp_path / "fixtures" / "mimic_cxr")
    assert len(sentences) > 5 and not [s for s in sentences if s in shown]


@pytest.mark.slow
def test_notebook01_and_report_carry_no_mimic_report_text_or_images(tmp_path):
    """Runs notebook 01 (papermill, as ./run_all.sh does) for the MIMIC fixture, builds the report, and searches
    every file under reports/ for the fixture's report sentences."""
    import subprocess
    import sys

    import yaml

    from conftest import REPO

    data = tmp_path / "data"
    data.mkdir()
    raw = yaml.safe_load((REPO / "medlib" / "config" / "profiles" / "smoke.yaml").read_text())
    raw.update(name="mimictest", data_dir=str(data), reports_dir=str(tmp_path / "reports"),
               runs_dir=str(tmp_path / "runs"),
               datasets=[d for d in raw["datasets"] if d["name"] in ("mimic_cxr", "pneumoniamnist")])
    for sec in ("zero_shot", "caption_finetune", "label_finetune", "imbalance", "sota", "retrieval_study"):
        for key in ("datasets", "multilabel_datasets"):
            if key in raw.get(sec, {}):
                raw[sec][key] = [n for n in raw[sec][key] if n in ("mimic_cxr", "pneumoniamnist")]
    raw["sota"]["retrieval_dataset"] = ""
    prof = tmp_path / "mimictest.yaml"
    prof.write_text(yaml.safe_dump(raw))
    env = {k: v for k, v in os.environ.items() if k not in ("MEDLIB_DATA_DIR", "MEDLIB_ROOT")}
    proc = subprocess.run([sys.executable, "-m", "medlib.run", "--profile", str(prof), "--only", "01"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "reports" / "mimictest"
    assert (out / "figures" / "01_text_stats__mimic_cxr.png").is_file()
    assert (out / "figures" / "01_samples__pneumoniamnist.png").is_file()  # other sources still show samples
    assert not list(out.rglob("*samples__mimic*"))
    report_files = list(out.glob("report.*"))
    assert report_files, "the runner wrote no report"
    sentences = fixture_sentences(data / "fixtures" / "mimic_cxr")
    assert len(sentences) > 5
    texts = [p for p in out.rglob("*") if p.is_file() and p.suffix in (".md", ".html", ".ipynb", ".csv", ".json", ".txt")]
    assert any(p.name == "01_data_prep.ipynb" for p in texts)
    leaks = [(p.name, s) for p in texts for s in sentences if s in p.read_text(errors="replace")]
    assert not leaks, leaks[:3]
    executed = (out / "executed" / "01_data_prep.ipynb").read_text()
    assert "forbids sharing" in executed
