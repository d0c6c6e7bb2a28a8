"""medlib.data.chestxray14 and medlib.data.mimic_cxr: fixtures, patient-wise val, fallback, skip, broken files."""

from __future__ import annotations

import gzip
import warnings

import numpy as np
import pandas as pd
import pytest

from medlib.config import DatasetSpec, Profile
from medlib.data import DatasetSkipped, load_dataset
from medlib.data.sources.mimic_cxr import apply_policy, report_sections
from medlib.errors import MedlibError


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


NIH = dict(name="chestxray14", source="chestxray14", path="chestxray14", size=28, synthetic="auto", fixture_n=150)
MIMIC = dict(name="mimic_cxr", source="mimic_cxr", path="", size=28, synthetic="always", fixture_n=80)


def quiet_load(p, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(p, name)


# ---- ChestX-ray14 ---------------------------------------------------------------------------------------


def test_nih_fixture_layout_labels_and_patient_split(tmp_path, capsys):
    b = load_dataset(profile(tmp_path, NIH), "chestxray14")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    root = tmp_path / "fixtures" / "chestxray14"
    assert (root / "Data_Entry_2017.csv").is_file() and (root / "images_001" / "images").is_dir()
    assert b.task == "multilabel" and b.synthetic and b.domain == "chest_xray"
    assert b.class_names[:3] == ["atelectasis", "cardiomegaly", "effusion"] and b.class_names[-2:] == ["pleural", "hernia"]
    assert sum(len(s) for s in b.splits.values()) == 150
    for s in b.splits.values():
        assert s.images.shape[1:] == (28, 28) and s.images.dtype == np.uint8
        assert s.labels.shape[1] == 14 and s.labels.dtype == np.int64 and s.captions is None
    # No patient in two splits (ids are NIH file names: <patient>_<follow-up>.png).
    pats = {k: {i.split("_")[0] for i in s.ids} for k, s in b.splits.items()}
    assert not (pats["train"] & pats["val"]) and not (pats["train"] & pats["test"]) and not (pats["val"] & pats["test"])
    # Realistic imbalance: many all-negative ("No Finding") images, hernia the rarest label.
    allneg = sum(b.manifest["all_negative"].values())
    assert 0.2 * 150 < allneg < 0.7 * 150
    tot = {c: sum(b.manifest["counts"][k][c] for k in b.splits) for c in b.class_names}
    assert tot["hernia"] <= min(tot.values()) + 2 and tot["infiltration"] > tot["hernia"]
    assert set(b.manifest["sha256"]) == {"Data_Entry_2017.csv", "train_val_list.txt", "test_list.txt"}


def test_nih_csv_label_mapping_and_determinism(tmp_path):
    a = quiet_load(profile(tmp_path, NIH), "chestxray14")
    b = quiet_load(profile(tmp_path, NIH), "chestxray14")
    np.testing.assert_array_equal(a.splits["val"].labels, b.splits["val"].labels)
    assert a.splits["val"].ids == b.splits["val"].ids
    df = pd.read_csv(tmp_path / "fixtures" / "chestxray14" / "Data_Entry_2017.csv")
    row = df[df["Finding Labels"].str.contains("Pleural_Thickening")].iloc[0]
    for k, s in a.splits.items():
        if row["Image Index"] in s.ids:
            y = s.labels[s.ids.index(row["Image Index"])]
            assert y[a.class_names.index("pleural")] == 1
    nf = df[df["Finding Labels"] == "No Finding"].iloc[0]["Image Index"]
    for s in a.splits.values():
        if nf in s.ids:
            assert s.labels[s.ids.index(nf)].sum() == 0


def _broken_nih(tmp_path, mutate):
    quiet_load(profile(tmp_path / "src", NIH), "chestxray14")
    import shutil

    shutil.copytree(tmp_path / "src" / "fixtures" / "chestxray14", tmp_path / "real" / "chestxray14")
    csv = tmp_path / "real" / "chestxray14" / "Data_Entry_2017.csv"
    mutate(csv)
    return profile(tmp_path / "real", dict(NIH, synthetic="never"))


def test_nih_label_outside_class_list(tmp_path):
    def mutate(csv):
        df = pd.read_csv(csv)
        df.loc[3, "Finding Labels"] = "Effusion|Covid"
        df.to_csv(csv, index=False)

    with pytest.raises(MedlibError, match=r"Data_Entry_2017\.csv: line 5: label 'Covid'"):
        load_dataset(_broken_nih(tmp_path, mutate), "chestxray14")


def test_nih_missing_column(tmp_path):
    def mutate(csv):
        pd.read_csv(csv).drop(columns=["Patient ID"]).to_csv(csv, index=False)

    with pytest.raises(MedlibError, match=r"Data_Entry_2017\.csv: missing column\(s\) \['Patient ID'\]"):
        load_dataset(_broken_nih(tmp_path, mutate), "chestxray14")


def test_nih_unreadable_image(tmp_path):
    def mutate(csv):
        first = pd.read_csv(csv)["Image Index"].iloc[0]
        (csv.parent / "images_001" / "images" / first).write_bytes(b"\x89PNG broken")

    with pytest.raises(MedlibError, match=r"\.png: unreadable image listed in Data_Entry_2017\.csv"):
        load_dataset(_broken_nih(tmp_path, mutate), "chestxray14")


def test_nih_fallback_to_chestmnist(tmp_path):
    chestmnist = dict(name="chestmnist", source="medmnist", flag="chestmnist", size=28, synthetic="auto", fixture_n=60)
    p = profile(tmp_path, dict(NIH, synthetic="never", fallback="chestmnist"), chestmnist)
    with pytest.warns(UserWarning, match="using chestmnist"):
        b = load_dataset(p, "chestxray14")
    assert b.name == "chestxray14" and b.manifest["fallback"]["dataset"] == "chestmnist"
    assert "Data_Entry_2017.csv" in b.manifest["fallback"]["reason"]
    assert b.task == "multilabel" and len(b.class_names) == 14 and b.splits["train"].labels.shape == (42, 14)


def test_nih_absent_without_fallback_or_synthetic(tmp_path):
    with pytest.raises(MedlibError, match=r"Data_Entry_2017\.csv: NIH ChestX-ray14 files not found.*fallback"):
        load_dataset(profile(tmp_path, dict(NIH, synthetic="never")), "chestxray14")


# ---- MIMIC-CXR ------------------------------------------------------------------------------------------


def test_mimic_skipped_when_path_empty(tmp_path):
    with pytest.raises(DatasetSkipped, match=r"mimic_cxr: no local copy configured\. Fix: set datasets\[mimic_cxr\]\.path"):
        load_dataset(profile(tmp_path, dict(MIMIC, synthetic="never")), "mimic_cxr")
    assert issubclass(DatasetSkipped, MedlibError)


def test_mimic_fixture_pairs_frontal_images_with_report_sections(tmp_path, capsys):
    b = load_dataset(profile(tmp_path, MIMIC), "mimic_cxr")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    root = tmp_path / "fixtures" / "mimic_cxr"
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    frontal = set(meta.loc[meta["ViewPosition"].isin(["PA", "AP"]), "dicom_id"])
    assert (meta["ViewPosition"] == "LATERAL").any()
    n = sum(len(s) for s in b.splits.values())
    skipped = sum(b.manifest["skipped_no_sections"].values())
    assert n + skipped == len(frontal) and skipped > 0
    assert b.task == "multilabel" and len(b.class_names) == 14 and "no finding" in b.class_names
    for s in b.splits.values():
        assert set(s.ids) <= frontal
        assert all(c.strip() for c in s.captions) and len(s.captions) == len(s)
        assert not any("INDICATION" in c or "FINDINGS:" in c for c in s.captions)
    assert b.manifest["uncertain_policy"] == "zero" and sum(b.manifest["uncertain"].values()) > 0
    assert set(b.manifest["sha256"]) == {f"mimic-cxr-2.0.0-{k}.csv.gz" for k in ("split", "chexpert", "metadata")}


def test_mimic_uncertain_policies_change_labels(tmp_path):
    z = quiet_load(profile(tmp_path, MIMIC), "mimic_cxr")
    o = quiet_load(profile(tmp_path, dict(MIMIC, uncertain="one")), "mimic_cxr")
    assert o.splits["train"].labels.sum() > z.splits["train"].labels.sum()
    raw = np.array([[1, 0, -1, np.nan]], float)
    assert apply_policy(raw, "zero")[0].tolist() == [[1, 0, 0, 0]]
    assert apply_policy(raw, "one")[0].tolist() == [[1, 0, 1, 0]]
    y, unc = apply_policy(raw, "ignore")
    assert y.tolist() == [[1, 0, 0, 0]] and unc.tolist() == [0, 0, 1, 0]


def test_report_sections_regex():
    text = ("FINAL REPORT\n INDICATION: cough.\n\n FINDINGS:\n  Small left   effusion.\n\n"
            " IMPRESSION: \n  Effusion.\n NOTIFICATION: called.\n")
    assert report_sections(text) == "Small left effusion. Effusion."
    assert report_sections(" IMPRESSION: No acute process.\n") == "No acute process."
    assert report_sections(" WET READ: something\n") == ""


def test_mimic_broken_csv_names_file(tmp_path):
    quiet_load(profile(tmp_path / "src", MIMIC), "mimic_cxr")
    import shutil

    shutil.copytree(tmp_path / "src" / "fixtures" / "mimic_cxr", tmp_path / "copy")
    with gzip.open(tmp_path / "copy" / "mimic-cxr-2.0.0-metadata.csv.gz", "wt") as fh:
        fh.write("dicom_id,Rows\nabc,1\n")
    p = profile(tmp_path, dict(MIMIC, synthetic="never", path=str(tmp_path / "copy")))
    with pytest.raises(MedlibError, match=r"metadata\.csv\.gz: missing column\(s\) \['ViewPosition'\]"):
        load_dataset(p, "mimic_cxr")


def test_mimic_empty_split_keeps_multilabel_shape(tmp_path):
    """A copy without 'validate' rows gives an empty val split of shape (0, 14), not a reshape crash."""
    quiet_load(profile(tmp_path / "src", MIMIC), "mimic_cxr")
    import shutil

    shutil.copytree(tmp_path / "src" / "fixtures" / "mimic_cxr", tmp_path / "copy")
    f = tmp_path / "copy" / "mimic-cxr-2.0.0-split.csv.gz"
    df = pd.read_csv(f)
    df.loc[df["split"] == "validate", "split"] = "train"
    with gzip.open(f, "wt") as fh:
        df.to_csv(fh, index=False)
    b = load_dataset(profile(tmp_path, dict(MIMIC, synthetic="never", path=str(tmp_path / "copy"))), "mimic_cxr")
    v = b.splits["val"]
    assert len(v) == 0 and v.labels.shape == (0, 14) and v.labels.dtype == np.int64 and v.captions == []
    assert b.manifest["counts"]["val"] == {c: 0 for c in b.class_names} and len(b.splits["train"]) > 0


def test_mimic_unknown_uncertain_policy_names_the_key(tmp_path):
    with pytest.raises(MedlibError, match=r"datasets\[mimic_cxr\]\.uncertain = 'maybe' is unknown\. Fix:"):
        load_dataset(profile(tmp_path, dict(MIMIC, uncertain="maybe")), "mimic_cxr")
    assert not (tmp_path / "fixtures").exists()  # checked before anything is generated or read


def test_mimic_fixture_files_are_byte_identical_across_runs(tmp_path):
    """Same seed -> same files: the manifest's sha256 must not depend on when the fixture was written."""
    a = quiet_load(profile(tmp_path / "a", MIMIC), "mimic_cxr")
    b = quiet_load(profile(tmp_path / "b", MIMIC), "mimic_cxr")
    assert a.manifest["sha256"] == b.manifest["sha256"]
    for f in (tmp_path / "a" / "fixtures" / "mimic_cxr").glob("*.csv.gz"):
        assert f.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header MTIME unset (not the write time)
