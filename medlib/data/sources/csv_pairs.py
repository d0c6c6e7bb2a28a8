"""Custom image-caption pairs from a CSV ``image_path,caption,label`` (open_clip's CSV convention).

``spec.path`` is the CSV (relative to the data dir unless absolute); image paths are relative to the CSV's
folder. Optional ``split`` column (train/val/test) else a 70/10/20 split stratified by label with the seed.
Class list: ``classes.txt`` beside the CSV (one class per line, in label order) when present, and then
every label must be in it; otherwise the sorted distinct labels. Images keep their colour: all grayscale
files give (N,H,W), any colour file gives (N,H,W,3). ``synthetic: always|auto`` (no CSV) generates an
example folder under ``<data_dir>/fixtures/csv_pairs/``.
Several captions per image: repeat the image's row with another caption (same label and split); the image is
read once, ``Split.captions`` holds its first caption and ``Split.all_captions`` all of them, in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...config import DatasetSpec, Profile
from ...errors import MedlibError, fail
from .. import fixtures, image_errors
from ..base import SPLITS, DatasetBundle, Split
from ..bundle import finish
from ..decode import image_files
from ..locate import check_kind, choose_source, fixture_dir, read_table_file, resolve_path
from ..splits import rng_for, stratified_parts, take

COLUMNS = ["image_path", "caption", "label"]
FRACTIONS = (0.7, 0.1, 0.2)
CLASSES_FILE = "classes.txt"
DEFAULT_FIXTURE_N = 200
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _csv(profile: Profile, spec: DatasetSpec, make: bool) -> tuple[Path, bool]:
    fix = fixture_dir(profile, "csv_pairs")
    user = resolve_path(profile, spec) if spec.path else None
    if user is not None and spec.synthetic != "always":
        check_kind(user, "file", f"datasets[{spec.name}].path (the image_path,caption,label CSV)",
                   "point it at the CSV file itself", stop=profile.data_path)
    empty = MedlibError(f"datasets[{spec.name}].path is empty. Fix: point it at your image_path,caption,label CSV")
    # A CSV the user named is never replaced by generated pairs: present -> read, missing -> "CSV not found".
    kind = choose_source(spec, present=user is not None, missing=empty)
    if kind == "generated":
        if make:
            params = {"kind": "csv_pairs", "n": spec.fixture_n or DEFAULT_FIXTURE_N, "version": 1}
            fixtures.ensure_dir(fix, params, lambda tmp: fixtures.write_csv_pairs(tmp, params["n"]))
        return fix / "pairs.csv", True
    if user is not None and not user.is_file():
        raise fail(user, "CSV not found", "point datasets[...].path at an image_path,caption,label CSV")
    return user, False


def _files(csv: Path) -> list[Path]:
    """The CSV and, when present, the classes.txt beside it (hashed into the manifest)."""
    return [csv] + ([csv.parent / CLASSES_FILE] if (csv.parent / CLASSES_FILE).is_file() else [])


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    """The CSV, classes.txt and every image the CSV lists: the cache key holds each one's size and content digest,
    so a replaced image rebuilds the prepared splits even when the CSV is unchanged."""
    csv = _csv(profile, spec, make=False)[0]
    if not csv.is_file():
        return _files(csv)
    return _files(csv) + [csv.parent / p.strip() for p in read_table(csv)["image_path"]]


def _is_rgb(paths: list[Path]) -> bool:
    """Any colour file among ``paths`` (PIL reads headers only; stops at the first colour file)."""
    from PIL import Image

    for p in paths:
        try:
            with Image.open(p) as im:
                if im.mode not in _GRAY_MODES:
                    return True
        except image_errors.read_errors():
            continue  # decoding reports it with the row and the fix
    return False


def read_table(csv: Path):
    """The CSV as a DataFrame with the required columns, non-empty captions and labels (else MedlibError)."""
    if not csv.is_file():
        raise fail(csv, "CSV not found", "point datasets[...].path at an image_path,caption,label CSV")
    df = read_table_file(csv, COLUMNS, missing="", unreadable_fix="save it as comma-separated UTF-8 text",
                         columns_fix=f"add a header line with {','.join(COLUMNS)}", dtype=str, keep_default_na=False)
    if df.empty:
        raise fail(csv, "no rows", "add image_path,caption,label rows")
    for col in COLUMNS:
        empty = np.flatnonzero(df[col].str.strip() == "")
        if len(empty):
            raise fail(csv, f"line {empty[0] + 2}: empty {col}", f"fill in the {col} or remove the row")
    if "split" in df.columns:
        bad = sorted(set(df["split"].str.strip()) - set(SPLITS))
        if bad:
            raise fail(csv, f"split value(s) {bad} not in {list(SPLITS)}", "use train, val or test")
    return df


def class_list(csv: Path, labels: list[str]) -> list[str]:
    cf = csv.parent / CLASSES_FILE
    if not cf.is_file():
        return sorted(set(labels))
    names = [line.strip() for line in cf.read_text().splitlines() if line.strip()]
    for i, lab in enumerate(labels):
        if lab not in names:
            raise fail(csv, f"line {i + 2}: label {lab!r} is not in {cf.name} {names}",
                       f"correct the label or add it to {cf}")
    return names


def group_captions(csv: Path, df) -> tuple[np.ndarray, list[list[str]]]:
    """Rows of one image (repeated ``image_path``) -> (first row of each image, in file order; its captions).

    The repeated rows must agree on the label (and split); else a MedlibError naming both lines."""
    keys = df["image_path"].str.strip().tolist()
    texts = df["caption"].str.strip().tolist()
    same = {c: df[c].str.strip().tolist() for c in ["label"] + (["split"] if "split" in df.columns else [])}
    first: dict[str, int] = {}
    caps: dict[str, list[str]] = {}
    for i, k in enumerate(keys):
        j = first.setdefault(k, i)
        for col, v in same.items():
            if v[i] != v[j]:
                raise fail(csv, f"line {i + 2}: image {k!r} has {col} {v[i]!r}, but {v[j]!r} on line {j + 2}",
                           f"give every row of one image the same {col}")
        caps.setdefault(k, []).append(texts[i])
    return np.array(list(first.values()), np.int64), [caps[k] for k in first]


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    csv, is_syn = _csv(profile, spec, make=True)
    df = read_table(csv)
    labels_raw = df["label"].str.strip().tolist()
    names = class_list(csv, labels_raw)
    index = {c: k for k, c in enumerate(names)}
    labels = np.array([index[x] for x in labels_raw], np.int64)
    rel = [p.strip() for p in df["image_path"]]
    paths = [csv.parent / p for p in rel]
    for i, p in enumerate(paths):
        if not p.is_file():
            raise fail(csv, f"line {i + 2}: image {df['image_path'][i]!r} not found",
                       "fix the path (relative to the CSV's folder) or remove the row")
    first, all_caps = group_captions(csv, df)
    images = image_files([paths[i] for i in first], spec.size, rgb=_is_rgb(paths), index_file=csv, desc=spec.name,
                         wheres=[f"line {i + 2}" for i in first],
                         workers=profile.data_workers)
    labels = labels[first]
    if "split" in df.columns:
        sp = df["split"].str.strip().to_numpy()[first]
        parts = [np.flatnonzero(sp == s) for s in SPLITS]
    else:
        parts = stratified_parts(labels, FRACTIONS, rng_for(profile, spec, "split"))
    every = Split(images, labels, [c[0] for c in all_caps], df["image_path"].str.strip()[first].tolist(),
                  all_captions=all_caps if any(len(c) > 1 for c in all_caps) else None)
    return finish(
        profile, spec, task="multiclass", class_names=names,
        splits={k: take(every, ix) for k, ix in zip(SPLITS, parts)},
        source=str(csv), synthetic=is_syn, license="user-provided (see the data's own terms)", domain="medical",
        files=_files(csv), image_folder=csv.parent,
    )
