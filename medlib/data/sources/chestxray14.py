"""NIH ChestX-ray14 from its own files: ``Data_Entry_2017.csv`` + images + the official split lists.

Layout under ``<data_dir>/<spec.path>/``: ``Data_Entry_2017.csv`` (``Image Index``, ``Finding Labels``
with ``|`` between labels, ``Patient ID``, ...), images in ``images/`` or ``images_NNN/images/``,
``train_val_list.txt`` and ``test_list.txt``. 14 pathologies in the ChestMNIST order, multi-label,
``No Finding`` = all zero. The validation split is carved from train_val by PATIENT (sklearn's
GroupShuffleSplit, seeded), so no patient appears in two splits. ``max_per_split`` is applied to the
index before any image is read.

When the NIH files are absent: ``fallback`` (e.g. chestmnist) is loaded instead and recorded in
``manifest["fallback"]``; else ``synthetic: auto|always`` generates an NIH-layout fixture; else error.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ...config import DatasetSpec, Profile
from ...errors import MedlibError, fail
from .. import fixtures
from ..registry import source_module
from ..labels import CHEST14, NIH_NAMES
from ..base import DatasetBundle, Split
from ..bundle import finish
from ..decode import image_files
from ..locate import check_kind, choose_source, fixture_dir, read_table_file, resolve_path
from ..splits import cap_indices, rng_for, strata_of

CLASS_NAMES = list(CHEST14)  # ChestMNIST order (REFERENCES.md)
CSV_NAME = "Data_Entry_2017.csv"
LISTS = ("train_val_list.txt", "test_list.txt")
VAL_FRACTION = 0.1  # of train_val patients
DEFAULT_FIXTURE_N = 600
LICENSE = "NIH Clinical Center: unrestricted use, cite Wang et al., CVPR 2017 (ChestX-ray8)"
# CSV spelling -> class name (lowercase; 'Pleural_Thickening' is ChestMNIST's 'pleural').
_CSV_TO_CLASS = {n.lower(): c for n, c in zip(NIH_NAMES, CLASS_NAMES)}
_CSV_TO_CLASS.update({"pleural thickening": "pleural", "pleural_thickening": "pleural"})


def real_root(profile: Profile, spec: DatasetSpec) -> Path:
    return resolve_path(profile, spec, default="chestxray14")


def _files(root: Path) -> list[Path]:
    """The NIH index files: the CSV and the two official split lists."""
    return [root / CSV_NAME, *(root / f for f in LISTS)]


def _choose(profile: Profile, spec: DatasetSpec) -> tuple[str, Path]:
    """('real' | 'generated' | 'fallback', NIH root) in the order of the module docstring; nothing generated.

    A root that is a file, or a folder without ``Data_Entry_2017.csv``, is an error, never a silent fallback."""
    root = real_root(profile, spec)
    fix = (f"put Data_Entry_2017.csv, train_val_list.txt, test_list.txt and images/ under {root}, "
           f"or set datasets[{spec.name}].fallback: chestmnist")
    if spec.synthetic != "always":
        check_kind(root, "dir", f"datasets[{spec.name}].path (the NIH ChestX-ray14 folder)", fix,
                   stop=profile.data_path)
        check_kind(root / CSV_NAME, "file", f"datasets[{spec.name}] (NIH ChestX-ray14)", fix)
        if root.is_dir() and not (root / CSV_NAME).is_file():
            raise fail(root / CSV_NAME, "not found in the NIH ChestX-ray14 folder", fix)
    kind = choose_source(spec, present=(root / CSV_NAME).is_file(), fallback=bool(spec.fallback),
                         missing=fail(root / CSV_NAME, "NIH ChestX-ray14 files not found", fix))
    return kind, fixture_dir(profile, "chestxray14") if kind == "generated" else root


def _fallback_spec(profile: Profile, spec: DatasetSpec) -> DatasetSpec:
    """The spec ``spec.fallback`` names; a chain that comes back to a dataset is a profile error (not a recursion)."""
    chain, cur = [spec.name], spec
    while cur.fallback and cur.source == "chestxray14":  # the only source that follows ``fallback``
        if cur.fallback in chain:
            what = "names itself" if len(chain) == 1 else f"loops ({' -> '.join(chain + [cur.fallback])})"
            raise MedlibError(f"datasets[{spec.name}].fallback {what}. Fix: name another dataset without a "
                              "fallback of its own (e.g. chestmnist)")
        cur = profile.dataset(cur.fallback)
        chain.append(cur.name)
    return profile.dataset(spec.fallback)


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    kind, root = _choose(profile, spec)
    if kind == "fallback":
        fb = _fallback_spec(profile, spec)
        return source_module(fb).inputs(profile, fb)
    return _files(root)


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    kind, root = _choose(profile, spec)
    if kind == "fallback":
        return _load_fallback(profile, spec, root)
    if kind == "generated":
        fixtures.ensure_chestxray14(root, spec.fixture_n or DEFAULT_FIXTURE_N)
    return _read(profile, spec, root, synthetic=kind == "generated")


def _load_fallback(profile: Profile, spec: DatasetSpec, root: Path) -> DatasetBundle:
    fb = _fallback_spec(profile, spec)
    warnings.warn(f"{spec.name}: NIH files not found under {root}; using {fb.name} (same 14 labels) instead",
                  UserWarning, stacklevel=2)
    bundle = source_module(fb).load(profile, fb)
    if bundle.task != "multilabel" or len(bundle.class_names) != len(CLASS_NAMES):
        raise MedlibError(f"datasets[{spec.name}].fallback = {fb.name!r} is not a 14-label chest set. "
                          "Fix: use chestmnist")
    bundle.name = spec.name
    bundle.manifest["fallback"] = {"dataset": fb.name, "reason": f"{root / CSV_NAME} not found"}
    bundle.source = f"{bundle.source} (fallback for {spec.name})"
    return bundle


def parse_labels(findings: "list[str]", csv_path: Path) -> np.ndarray:
    """``Finding Labels`` strings -> (N, 14) int64; an unknown name is an error naming the CSV line."""
    y = np.zeros((len(findings), len(CLASS_NAMES)), np.int64)
    col = {c: j for j, c in enumerate(CLASS_NAMES)}
    for i, f in enumerate(findings):
        if not isinstance(f, str) or not f.strip():
            raise fail(csv_path, f"line {i + 2}: empty 'Finding Labels'", "write 'No Finding' or the labels")
        for name in f.split("|"):
            key = name.strip().lower()
            if key == "no finding":
                continue
            if key not in _CSV_TO_CLASS:
                raise fail(csv_path, f"line {i + 2}: label {name.strip()!r} is not one of the 14 pathologies",
                           f"use the NIH names ({', '.join(NIH_NAMES)}) or 'No Finding'")
            y[i, col[_CSV_TO_CLASS[key]]] = 1
    return y


def _image_index(root: Path) -> dict[str, Path]:
    """file name -> path over ``images/`` and ``images_*/images/`` (and ``images_*/`` flat)."""
    found: dict[str, Path] = {}
    for folder in [root / "images", *sorted(root.glob("images_*/images")), *sorted(root.glob("images_*"))]:
        if folder.is_dir():
            for p in folder.iterdir():
                if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
                    found.setdefault(p.name, p)
    return found


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise fail(path, "official split list not found", "download it from the NIH box folder next to Data_Entry_2017.csv")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _read(profile: Profile, spec: DatasetSpec, root: Path, synthetic: bool) -> DatasetBundle:
    from sklearn.model_selection import GroupShuffleSplit

    csv = root / CSV_NAME
    need = ["Image Index", "Finding Labels", "Patient ID"]
    df = read_table_file(csv, need, missing="download Data_Entry_2017.csv from the NIH box folder",
                         unreadable_fix="download Data_Entry_2017.csv again",
                         columns_fix=f"use the NIH file with columns {need}")
    labels = parse_labels(df["Finding Labels"].tolist(), csv)
    names = df["Image Index"].astype(str).tolist()
    patients = df["Patient ID"].to_numpy()
    row_of = {n: i for i, n in enumerate(names)}
    split_rows: dict[str, np.ndarray] = {}
    for key, fname in zip(("train_val", "test"), LISTS):
        listed = _read_list(root / fname)
        unknown = [n for n in listed if n not in row_of]
        if unknown:
            raise fail(root / fname, f"{len(unknown)} image(s) not in {CSV_NAME} (first: {unknown[0]})",
                       "use the list and CSV from the same NIH release")
        split_rows[key] = np.array([row_of[n] for n in listed], np.int64)
    tv = split_rows["train_val"]
    gss = GroupShuffleSplit(n_splits=1, test_size=VAL_FRACTION, random_state=int(profile.seed))
    tr_pos, va_pos = next(gss.split(tv, groups=patients[tv]))
    rows = {"train": np.sort(tv[tr_pos]), "val": np.sort(tv[va_pos]), "test": np.sort(split_rows["test"])}
    rng = rng_for(profile, spec, "cap-index")
    rows = {k: r[cap_indices(strata_of(labels[r]), spec.max_per_split, rng)] for k, r in rows.items()}
    index = _image_index(root)
    splits = {}
    for k, r in rows.items():
        missing = [names[i] for i in r if names[i] not in index]
        if missing:
            raise fail(root / "images", f"{len(missing)} image(s) of the {k} split are missing (first: {missing[0]})",
                       "extract every images_NNN.tar.gz under this folder")
        paths = [index[names[i]] for i in r]
        imgs = image_files(paths, spec.size, rgb=False, index_file=csv, desc=f"{spec.name}/{k}",
                           wheres=[f"line {i + 2}" for i in r], workers=profile.data_workers)
        splits[k] = Split(images=imgs, labels=labels[r], captions=None, ids=[names[i] for i in r])
    return finish(
        profile, spec, task="multilabel", class_names=CLASS_NAMES, splits=splits, source=str(root),
        synthetic=synthetic, license=LICENSE, domain="chest_xray", files=_files(root), image_folder=root,
        extra={"patients": {k: int(len(np.unique(patients[r]))) for k, r in rows.items()},
               "val_from": f"train_val by patient (GroupShuffleSplit, {VAL_FRACTION:.0%}, seed {profile.seed})"},
    )
