"""MIMIC-CXR image-report pairs from the user's own credentialed MIMIC-CXR-JPG copy (never downloaded here).

Layout at ``spec.path``: ``mimic-cxr-2.0.0-{split,chexpert,metadata}.csv.gz``,
``files/pNN/pXXXXXXXX/sXXXXXXXX/<dicom_id>.jpg`` and the reports ``files/pNN/pXXXXXXXX/sXXXXXXXX.txt``.

* Frontal images only (``ViewPosition`` PA or AP), each paired with its study's FINDINGS + IMPRESSION
  sections (regex on the section headers). Images whose report has neither section are skipped and
  counted per split in ``manifest["skipped_no_sections"]``.
* Labels: the 14 CheXpert columns (multi-label). Blank = 0. Uncertain (-1) follows ``spec.uncertain``:
  ``zero`` -> 0 (U-Zeros), ``one`` -> 1 (U-Ones), ``ignore`` -> 0 but counted per class in
  ``manifest["uncertain"]`` so the amount of ignored uncertainty is visible (the metrics code can use it).
* Official split (``validate`` -> val). ``max_per_split`` is applied before images and reports are read.
* Nothing from MIMIC is ever written into ``reports/`` by this module; the prepared-split cache lives
  under the data dir (the user's side of the data use agreement).

``spec.path == ""`` (and synthetic not ``always``) raises :class:`~medlib.data.DatasetSkipped`;
``synthetic: always`` generates a small fixture in this layout under ``<data_dir>/fixtures/mimic_cxr/``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ...config import DatasetSpec, Profile
from ...errors import MedlibError, fail
from ..registry import DatasetSkipped
from .. import fixtures
from ..labels import CHEXPERT
from ..base import DatasetBundle, Split
from ..bundle import finish
from ..decode import image_files
from ..locate import check_kind, fixture_dir, read_table_file, resolve_path
from ..splits import cap_indices, rng_for, strata_of

CSVS = {k: f"mimic-cxr-2.0.0-{k}.csv.gz" for k in ("split", "chexpert", "metadata")}
CLASS_NAMES = [c.lower() for c in CHEXPERT]
FRONTAL = ("PA", "AP")
SPLIT_MAP = {"train": "train", "validate": "val", "test": "test"}
POLICIES = ("zero", "one", "ignore")
DEFAULT_FIXTURE_N = 300
LICENSE = "PhysioNet Credentialed Health Data License 1.5.0 (do not redistribute; never copy into reports/)"
#: The licence forbids sharing report text and images: every bundle from this source (the generated fixture too)
#: is marked ``credentialed`` and notebooks/reports show statistics of it only.
CREDENTIALED = True
_HEADER = re.compile(r"^\s*([A-Z][A-Z &/()-]{2,}):", re.MULTILINE)


def _root(profile: Profile, spec: DatasetSpec) -> tuple[Path, bool]:
    if spec.synthetic == "always":
        return fixture_dir(profile, "mimic_cxr"), True
    if not spec.path:
        raise DatasetSkipped(f"{spec.name}: no local copy configured. Fix: set datasets[{spec.name}].path to "
                             "your MIMIC-CXR-JPG folder (with the reports) in the profile")
    root = resolve_path(profile, spec)
    fix = "point it at your MIMIC-CXR-JPG folder (with the reports), or set path: \"\" to skip MIMIC-CXR"
    check_kind(root, "dir", f"datasets[{spec.name}].path (the MIMIC-CXR-JPG folder)", fix, stop=profile.data_path)
    if not root.is_dir():
        raise fail(root, "MIMIC-CXR-JPG folder not found", fix)
    return root, False


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    root, _ = _root(profile, spec)
    return [root / f for f in CSVS.values()]


def report_sections(text: str) -> str:
    """FINDINGS + IMPRESSION of a free-text report, whitespace collapsed ('' when it has neither)."""
    heads = list(_HEADER.finditer(text))
    parts = []
    for want in ("FINDINGS", "IMPRESSION"):
        for i, m in enumerate(heads):
            if m.group(1).strip() == want:
                end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
                body = " ".join(text[m.end():end].split())
                if body:
                    parts.append(body)
                break
    return " ".join(parts)


def apply_policy(raw: np.ndarray, policy: str) -> tuple[np.ndarray, np.ndarray]:
    """CheXpert values (1, 0, -1, NaN) -> (0/1 int64 labels, per-class count of uncertain entries)."""
    if policy not in POLICIES:
        raise MedlibError(f"uncertain = {policy!r}. Fix: use one of {list(POLICIES)}")
    unc = raw == -1
    y = (raw == 1) | (unc if policy == "one" else False)
    return y.astype(np.int64), unc.sum(axis=0).astype(np.int64)


def _read_csv(path: Path, need: list[str]):
    return read_table_file(path, need, missing="download it from PhysioNet into the folder set as the path",
                           unreadable_fix="download it again from PhysioNet",
                           columns_fix="use the file from the MIMIC-CXR-JPG 2.0.0 release")


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    if spec.uncertain not in POLICIES:  # before any file is read
        raise MedlibError(f"datasets[{spec.name}].uncertain = {spec.uncertain!r} is unknown. "
                          f"Fix: use one of {list(POLICIES)}")
    root, is_syn = _root(profile, spec)
    if is_syn:
        fixtures.ensure_mimic_cxr(root, spec.fixture_n or DEFAULT_FIXTURE_N)
    files = {k: root / f for k, f in CSVS.items()}
    split = _read_csv(files["split"], ["dicom_id", "study_id", "subject_id", "split"])
    chex = _read_csv(files["chexpert"], ["subject_id", "study_id", *CHEXPERT])
    meta = _read_csv(files["metadata"], ["dicom_id", "ViewPosition"])
    split["_line"] = np.arange(len(split)) + 2  # the row's line in the split CSV, for error messages
    df = split.merge(meta[["dicom_id", "ViewPosition"]], on="dicom_id", how="inner")
    df = df[df["ViewPosition"].isin(FRONTAL)]
    df = df.merge(chex, on=["subject_id", "study_id"], how="inner").reset_index(drop=True)
    bad = sorted(set(df["split"]) - set(SPLIT_MAP))
    if bad:
        raise fail(files["split"], f"unknown split value(s) {bad}", f"use {list(SPLIT_MAP)}")
    raw = df[CHEXPERT].to_numpy(dtype=float)
    labels, _ = apply_policy(raw, spec.uncertain)
    subjects, studies = df["subject_id"].to_numpy(np.int64), df["study_id"].to_numpy(np.int64)
    dicoms, split_col = df["dicom_id"].astype(str).tolist(), df["split"].to_numpy()
    lines = df["_line"].to_numpy()
    sections: dict[Path, str] = {}  # report -> FINDINGS + IMPRESSION (a study's images share one report)
    rng = rng_for(profile, spec, "cap-index")
    splits, skipped, uncertain = {}, {}, np.zeros(len(CLASS_NAMES), np.int64)
    for raw_name, name in SPLIT_MAP.items():
        rows = np.flatnonzero(split_col == raw_name)
        rows = rows[cap_indices(strata_of(labels[rows]), spec.max_per_split, rng)]
        keep, captions, paths, wheres = [], [], [], []
        for r in rows:
            sdir = root / "files" / f"p{str(subjects[r])[:2]}" / f"p{subjects[r]}"
            rep = sdir / f"s{studies[r]}.txt"
            if rep not in sections:
                if not rep.is_file():
                    raise fail(rep, "report missing", "unzip mimic-cxr-reports.zip (PhysioNet MIMIC-CXR) into the copy")
                sections[rep] = report_sections(rep.read_text(errors="replace"))
            if sections[rep]:
                keep.append(r)
                captions.append(sections[rep])
                paths.append(sdir / f"s{studies[r]}" / f"{dicoms[r]}.jpg")
                wheres.append(f"line {lines[r]}")
        skipped[name] = len(rows) - len(keep)
        keep_a = np.array(keep, np.int64)
        imgs = image_files(paths, spec.size, rgb=False, index_file=files["split"], desc=f"{spec.name}/{name}",
                           wheres=wheres, workers=profile.data_workers)
        uncertain += (raw[keep_a] == -1).sum(axis=0)
        # labels[keep_a] keeps its (0, 14) shape when a split is empty (reshape(0, -1) would raise).
        splits[name] = Split(images=imgs, labels=labels[keep_a], captions=captions, ids=[dicoms[r] for r in keep])
    return finish(
        profile, spec, task="multilabel", class_names=CLASS_NAMES, splits=splits, source=str(root),
        synthetic=is_syn, license=LICENSE, domain="chest_xray", files=list(files.values()), credentialed=CREDENTIALED,
        image_folder=root,
        extra={"skipped_no_sections": skipped,
               "uncertain_policy": spec.uncertain,
               "uncertain": {c: int(v) for c, v in zip(CLASS_NAMES, uncertain)},
               "label_policy": f"blank -> 0; -1 -> {'1' if spec.uncertain == 'one' else '0'}"
                               + (" (counted in 'uncertain')" if spec.uncertain == "ignore" else "")},
    )
