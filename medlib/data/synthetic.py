"""Generated stand-ins for every source, in that source's own on-disk layout.

Each ``write_*`` function is deterministic given (seed, n, size) and writes atomically: a single
file through :mod:`medlib.io`, a folder layout into a temporary sibling folder that is renamed into
place once complete (with a ``fixture.json`` marker listing the generator's parameters). ``ensure_*``
reuses an existing fixture when its parameters match and regenerates it otherwise.

The images carry *learnable* class structure: each class/label adds its own spatial pattern (a blob at
a class-specific place, an oriented texture) to a varying anatomy-like background, with random
strength, jitter and noise, so a tiny CNN/ViT learns it at 28 px but a few examples are ambiguous.
Chest multi-label images (:func:`multilabel_images`) also carry a coarse, global sign that findings are
present (diffuse haze growing with the number of findings): the smoke profile's random-init tiny ViT
learns that within its 3-epoch budget (about 20 Adam steps) and reaches macro AUROC ~0.84 on the NIH
fixture, where label-specific blobs alone stay near chance (~0.6).
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import io as mio

FIXTURE_SEED = 1234  # the data of a fixture is fixed; the profile seed drives splits, sampling and training
MARKER = "fixture.json"

# ChestMNIST / ChestX-ray14 order (REFERENCES.md) and rough NIH prevalences (realistic imbalance; hernia rare).
CHEST14 = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia",
           "pneumothorax", "consolidation", "edema", "emphysema", "fibrosis", "pleural", "hernia"]
NIH_NAMES = ["Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
             "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"]
CHEST14_PREV = np.array([.10, .025, .12, .18, .05, .06, .013, .05, .04, .02, .02, .015, .03, .004])
CHEXPERT = ["Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Enlarged Cardiomediastinum", "Fracture",
            "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion", "Pleural Other", "Pneumonia",
            "Pneumothorax", "Support Devices"]


# ---- fixture bookkeeping ------------------------------------------------------------------------------


def _marker_ok(path: Path, params: dict[str, Any]) -> bool:
    marker = path / MARKER if path.is_dir() else path.with_name(path.name + ".json")
    try:
        return json.loads(marker.read_text()) == params
    except (OSError, ValueError):
        return False


def ensure_file(path: Path, params: dict[str, Any], build: Callable[[], dict[str, np.ndarray]]) -> Path:
    """A single-file (npz) fixture at ``path`` with a ``<path>.json`` sidecar of its parameters.

    The sidecar is removed before the npz is replaced and written after it, so a crash in between leaves
    no sidecar (regenerated next time), never an old sidecar vouching for a new file.
    """
    if path.is_file() and _marker_ok(path, params):
        return path
    sidecar = path.with_name(path.name + ".json")
    sidecar.unlink(missing_ok=True)
    mio.write_npz(path, **build())
    mio.write_json(sidecar, params)
    return path


def ensure_dir(path: Path, params: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """A folder fixture: ``build(tmp)`` fills a temporary sibling folder that is renamed onto ``path``."""
    if path.is_dir() and _marker_ok(path, params):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        build(tmp)
        (tmp / MARKER).write_text(json.dumps(params))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
        if path.exists():
            shutil.rmtree(path)
        try:
            os.replace(tmp, path)
        except OSError:  # another process finished the same fixture first
            if not _marker_ok(path, params):
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return path


# ---- image generators ----------------------------------------------------------------------------------


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    return x, y


def _blobs(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray) -> np.ndarray:
    """(n, S, S) Gaussian blobs centred at (cx, cy) with radius r (all shape (n,))."""
    d2 = (x[None] - cx[:, None, None]) ** 2 + (y[None] - cy[:, None, None]) ** 2
    return np.exp(-d2 / (2 * r[:, None, None] ** 2))


def _ellipse(x, y, cx, cy, rx, ry) -> np.ndarray:
    d = ((x[None] - cx[:, None, None]) / rx[:, None, None]) ** 2 + ((y[None] - cy[:, None, None]) / ry[:, None, None]) ** 2
    return 1.0 / (1.0 + np.exp(np.minimum((d - 1.0) * 8.0, 60.0)))  # soft edge


def chest_background(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """(n, S, S) float in [0, 1]: a bright thorax with two darker lung fields, jittered per image."""
    x, y = _grid(size)
    j = lambda s: rng.normal(0, s, n).astype(np.float32)  # noqa: E731
    body = _ellipse(x, y, 0.5 + j(.02), 0.55 + j(.02), 0.46 + j(.02), 0.5 + j(.02))
    lungs = (_ellipse(x, y, 0.32 + j(.02), 0.5 + j(.02), 0.13 + j(.01), 0.28 + j(.02))
             + _ellipse(x, y, 0.68 + j(.02), 0.5 + j(.02), 0.13 + j(.01), 0.28 + j(.02)))
    img = 0.15 + 0.55 * body - 0.35 * lungs
    img *= rng.uniform(0.8, 1.2, n)[:, None, None].astype(np.float32)
    return img


def _texture(rng: np.random.Generator, x, y, theta: np.ndarray, freq: float) -> np.ndarray:
    phase = rng.uniform(0, 2 * np.pi, len(theta)).astype(np.float32)[:, None, None]
    u = x[None] * np.cos(theta)[:, None, None] + y[None] * np.sin(theta)[:, None, None]
    return np.sin(2 * np.pi * freq * u + phase)


def _to_uint8(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def class_images(rng: np.random.Generator, labels: np.ndarray, n_classes: int, size: int,
                 chest: bool = True, noise: float = 0.07, strength: float = 0.25) -> np.ndarray:
    """(N, S, S) uint8: class k adds a blob at its own place and an oriented texture of its own angle.

    Strength varies per image (some examples are faint, so classes overlap a little).
    """
    n = len(labels)
    x, y = _grid(size)
    base = chest_background(rng, n, size) if chest else 0.35 + 0.25 * _blobs(
        x, y, rng.uniform(.3, .7, n), rng.uniform(.3, .7, n), rng.uniform(.25, .4, n))
    ang = 2 * np.pi * labels / max(n_classes, 1) + 0.4
    cx = 0.5 + 0.22 * np.cos(ang) + rng.normal(0, .07, n)
    cy = 0.5 + 0.22 * np.sin(ang) + rng.normal(0, .07, n)
    amp = rng.uniform(0.0, strength, n).astype(np.float32)[:, None, None]
    blob = _blobs(x, y, cx.astype(np.float32), cy.astype(np.float32), rng.uniform(.07, .14, n).astype(np.float32))
    theta = (np.pi * labels / max(n_classes, 1)).astype(np.float32)
    tex = _texture(rng, x, y, theta, freq=3.0)
    tamp = rng.uniform(0.0, 0.06, n).astype(np.float32)[:, None, None]
    return _to_uint8(base + amp * blob + tamp * tex, rng, noise)


# One place (x, y) per label, as fractions of the image: each on its own cell of the 4x4 grid of 7-px patches
# that a ViT with patch 7 sees at 28 px (cell centres .125/.375/.625/.875), in or around the lung fields.
_LABEL_POS = np.array([
    [.375, .375], [.625, .625], [.125, .875], [.875, .375], [.125, .375], [.625, .125], [.375, .625],
    [.875, .125], [.125, .625], [.875, .625], [.375, .125], [.375, .875], [.875, .875], [.625, .875]])


def multilabel_images(rng: np.random.Generator, labels: np.ndarray, size: int, noise: float = 0.07,
                      strength: float = 0.25, haze: float = 0.08, max_haze_labels: int = 3,
                      haze_weight: np.ndarray | None = None) -> np.ndarray:
    """(N, S, S) uint8 chest-like images: each positive label j adds two signs of disease.

    * a large soft blob (about one 7-px patch wide at 28 px) at its own place, textured with the label's
      own stripe orientation, with random strength and a little position jitter;
    * diffuse haze over the thorax ("opacity"), summed over the positive labels (at most
      ``max_haze_labels``; per-label weights ``haze_weight``, default 1): a coarse, global sign that
      findings are present. A randomly initialised tiny ViT picks this up within a few dozen steps, the
      label-specific blobs then tell the labels apart.

    Background brightness varies per image and Gaussian noise is added, so some examples stay ambiguous.
    """
    n, c = labels.shape
    x, y = _grid(size)
    img = chest_background(rng, n, size)
    w = np.ones(c, np.float32) if haze_weight is None else np.asarray(haze_weight, np.float32)
    load = np.zeros(n, np.float32)
    for j in range(c):
        on = np.flatnonzero(labels[:, j])
        if len(on) == 0:
            continue
        pos = _LABEL_POS[j % len(_LABEL_POS)]
        cx = (pos[0] + rng.normal(0, .04, len(on))).astype(np.float32)
        cy = (pos[1] + rng.normal(0, .04, len(on))).astype(np.float32)
        r = rng.uniform(.08, .12, len(on)).astype(np.float32)
        amp = (strength * rng.uniform(0.4, 1.0, len(on))).astype(np.float32)[:, None, None]
        theta = np.full(len(on), np.pi * j / c, np.float32)
        tex = 1.0 + 0.4 * _texture(rng, x, y, theta, freq=4.0)
        img[on] += amp * _blobs(x, y, cx, cy, r) * tex
        load[on] += w[j] * rng.uniform(0.5, 1.0, len(on)).astype(np.float32)
    img += haze * np.minimum(load, max_haze_labels)[:, None, None]
    return _to_uint8(img, rng, noise)


def colorize(gray: np.ndarray, tint: np.ndarray) -> np.ndarray:
    """(N,S,S) uint8 + (N,3) tint in [0,1] -> (N,S,S,3) uint8."""
    g = gray.astype(np.float32)[..., None] / 255.0
    out = g * tint[:, None, None, :] + (1 - g) * 0.05
    return (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def _png_bytes(arr: np.ndarray, fmt: str = "PNG") -> bytes:
    from PIL import Image

    buf = _io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt, **({"quality": 92} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _save(path: Path, arr: np.ndarray, fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_png_bytes(arr, fmt))


# ---- MedMNIST ------------------------------------------------------------------------------------------


def medmnist_arrays(seed: int, n: int, size: int, n_classes: int, multilabel: bool, channels: int,
                    prior: list[float] | None = None) -> dict[str, np.ndarray]:
    """MedMNIST-format arrays (train/val/test 70/10/20): images uint8 (N,S,S[,3]), labels uint8 (N,1)|(N,C)."""
    rng = np.random.default_rng(seed)
    if multilabel:
        y = (rng.random((n, n_classes)) < CHEST14_PREV[:n_classes] * 1.5).astype(np.uint8)
        img = multilabel_images(rng, y, size)
    else:
        p = np.array(prior if prior else [0.8 ** k for k in range(n_classes)], float)
        y1 = rng.choice(n_classes, size=n, p=p / p.sum())
        img = class_images(rng, y1, n_classes, size, chest=channels == 1)
        y = y1.astype(np.uint8)[:, None]
    if channels == 3:
        tint = np.clip(rng.normal([.85, .55, .75], .08, (n, 3)), 0.2, 1.0)
        img = colorize(img, tint)
    n_tr, n_va = int(round(0.7 * n)), int(round(0.1 * n))
    cuts = {"train": slice(0, n_tr), "val": slice(n_tr, n_tr + n_va), "test": slice(n_tr + n_va, n)}
    out: dict[str, np.ndarray] = {}
    for s, sl in cuts.items():
        out[f"{s}_images"] = img[sl]
        out[f"{s}_labels"] = y[sl]
    return out


def ensure_medmnist(path: Path, flag: str, size: int, n: int, n_classes: int, multilabel: bool, channels: int,
                    prior: list[float] | None = None, seed: int = FIXTURE_SEED) -> Path:
    params = {"kind": "medmnist", "flag": flag, "size": size, "n": n, "seed": seed, "version": 3}
    return ensure_file(path, params, lambda: medmnist_arrays(seed, n, size, n_classes, multilabel, channels, prior))


# ---- NIH ChestX-ray14 ----------------------------------------------------------------------------------


NIH_NO_FINDING = 0.54  # share of "No Finding" images in NIH ChestX-ray14


def chest14_labels(rng: np.random.Generator, n: int, no_finding: float = NIH_NO_FINDING) -> np.ndarray:
    """(n, 14) uint8 NIH-like labels: findings co-occur, as in NIH (about half the images 'No Finding').

    An image is abnormal with probability ``1 - no_finding``; an abnormal image then gets each label with
    probability ``prevalence / (1 - no_finding)`` (at least one, drawn by prevalence), so the marginal
    prevalences stay NIH-like (hernia rare) while abnormal images often carry two or more findings.
    """
    abnormal = rng.random(n) >= no_finding
    p = np.minimum(CHEST14_PREV / (1.0 - no_finding), 0.95)
    y = (rng.random((n, 14)) < p) & abnormal[:, None]
    empty = np.flatnonzero(abnormal & ~y.any(1))
    y[empty, rng.choice(14, size=len(empty), p=CHEST14_PREV / CHEST14_PREV.sum())] = True
    return y.astype(np.uint8)


def write_chestxray14(root: Path, n: int, seed: int = FIXTURE_SEED, image_size: int = 64) -> None:
    """NIH layout: Data_Entry_2017.csv, images_001/images/*.png + images_002/images/*.png, official lists.

    Labels: :func:`chest14_labels` (about half the images 'No Finding', hernia rare, findings co-occur),
    with a few forced positives per label on both sides of the patient-wise train_val/test split.
    """
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_pat = max(4, n // 3)
    patient = np.sort(rng.integers(1, n_pat + 1, n))
    test_pat = rng.random(n_pat + 1) < 0.2
    is_test = test_pat[patient]
    y = chest14_labels(rng, n)
    for j in range(14):  # a few positives of every label in train_val and in test (abnormal images first)
        for side, k in ((~is_test, 6), (is_test, 2)):
            cand = np.flatnonzero(side & (y.sum(1) > 0))
            if len(cand) < k:
                cand = np.flatnonzero(side)
            if len(cand):
                y[rng.choice(cand, size=min(k, len(cand)), replace=False), j] = 1
    img = multilabel_images(rng, y, image_size)
    follow: dict[int, int] = {}
    rows = []
    for i in range(n):
        p = int(patient[i])
        f = follow.get(p, 0)
        follow[p] = f + 1
        name = f"{p:08d}_{f:03d}.png"
        finding = "|".join(NIH_NAMES[j] for j in np.flatnonzero(y[i])) or "No Finding"
        folder = "images_001" if i < n // 2 else "images_002"
        _save(root / folder / "images" / name, img[i])
        rows.append({"Image Index": name, "Finding Labels": finding, "Follow-up #": f, "Patient ID": p,
                     "Patient Age": int(rng.integers(20, 90)), "Patient Gender": "MF"[int(rng.integers(0, 2))],
                     "View Position": "PA" if rng.random() < .6 else "AP"})
    df = pd.DataFrame(rows)
    df.to_csv(root / "Data_Entry_2017.csv", index=False)
    (root / "train_val_list.txt").write_text("\n".join(df["Image Index"][~is_test]) + "\n")
    (root / "test_list.txt").write_text("\n".join(df["Image Index"][is_test]) + "\n")


def ensure_chestxray14(root: Path, n: int, seed: int = FIXTURE_SEED) -> Path:
    params = {"kind": "chestxray14", "n": n, "seed": seed, "version": 3}
    return ensure_dir(root, params, lambda tmp: write_chestxray14(tmp, n, seed))


# ---- MIMIC-CXR-JPG -------------------------------------------------------------------------------------

_FINDING_TEXT = {
    "Atelectasis": "Streaky opacity at the left base is compatible with atelectasis.",
    "Cardiomegaly": "The heart is enlarged.",
    "Consolidation": "There is a focal consolidation in the right lower lobe.",
    "Edema": "There is mild pulmonary vascular congestion and interstitial edema.",
    "Enlarged Cardiomediastinum": "The cardiomediastinal silhouette is widened.",
    "Fracture": "An old healed rib fracture is noted on the right.",
    "Lung Lesion": "A 1.5 cm nodular lesion is seen in the right upper lobe.",
    "Lung Opacity": "Patchy opacities are seen in both lower lungs.",
    "Pleural Effusion": "There is a small left pleural effusion.",
    "Pleural Other": "Pleural thickening is seen at the apices.",
    "Pneumonia": "Findings are concerning for pneumonia.",
    "Pneumothorax": "A small right apical pneumothorax is present.",
    "Support Devices": "A right internal jugular line ends in the low SVC.",
}
_MIMIC_PREV = {"Atelectasis": .2, "Cardiomegaly": .18, "Consolidation": .05, "Edema": .12,
               "Enlarged Cardiomediastinum": .03, "Fracture": .02, "Lung Lesion": .03, "Lung Opacity": .2,
               "Pleural Effusion": .22, "Pleural Other": .01, "Pneumonia": .07, "Pneumothorax": .04,
               "Support Devices": .25}
_MIMIC_HAZE = {"Fracture": .2, "Support Devices": .2}  # not lung opacities: little diffuse haze (default 1)


def _mimic_report(rng: np.random.Generator, pos: list[str], unc: list[str], kind: int) -> str:
    findings = " ".join(_FINDING_TEXT[c] for c in pos) or "The lungs are clear. No pleural effusion or pneumothorax."
    findings += "".join(f" {c} cannot be excluded." for c in unc)
    impression = ("; ".join(c.lower() for c in pos) or "No acute cardiopulmonary process") + "."
    head = ["                                 FINAL REPORT", " EXAMINATION:  CHEST (PA AND LAT)", "",
            " INDICATION:  ___ year old with cough.", "", " COMPARISON:  None.", ""]
    if kind == 0:  # both sections
        body = [" FINDINGS: ", "", f" {findings}", "", " IMPRESSION: ", "", f" {impression}"]
    elif kind == 1:
        body = [" IMPRESSION:", f" {impression}"]
    elif kind == 2:
        body = [" FINDINGS:", f" {findings}"]
    else:  # neither section (the loader skips and counts these)
        body = [" WET READ: ___ 3:12 PM", f"  {impression}"]
    return "\n".join(head + body) + "\n"


def write_mimic_cxr(root: Path, n: int, seed: int = FIXTURE_SEED, image_size: int = 64) -> None:
    """MIMIC-CXR-JPG layout with reports: ~n images (frontal + some lateral) in ~0.75 n studies."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_studies = max(6, int(n * 0.75))
    n_subj = max(3, n_studies // 2)
    subj_ids = 10000000 + np.sort(rng.choice(9_000_000, n_subj, replace=False))
    subj_split = rng.choice(["train", "validate", "test"], n_subj, p=[.7, .1, .2])
    split_rows, chex_rows, meta_rows = [], [], []
    frontal_labels, frontal_paths = [], []
    labels13 = [c for c in CHEXPERT if c != "No Finding"]
    for k in range(n_studies):
        si = int(rng.integers(0, n_subj)) if k >= n_subj else k
        subject, study = int(subj_ids[si]), 50000000 + k
        pos = [c for c in labels13 if rng.random() < _MIMIC_PREV[c]]
        unc = [c for c in labels13 if c not in pos and rng.random() < 0.04]
        row: dict[str, Any] = {"subject_id": subject, "study_id": study}
        for c in CHEXPERT:
            if c in pos:
                row[c] = 1.0
            elif c in unc:
                row[c] = -1.0
            elif c == "No Finding":
                row[c] = 1.0 if not pos else np.nan
            else:
                row[c] = 0.0 if rng.random() < 0.15 else np.nan
        chex_rows.append(row)
        sdir = root / "files" / f"p{str(subject)[:2]}" / f"p{subject}"
        kind = int(rng.choice(4, p=[.8, .08, .07, .05]))
        sdir.mkdir(parents=True, exist_ok=True)
        (sdir / f"s{study}.txt").write_text(_mimic_report(rng, pos, unc, kind))
        views = ["PA" if rng.random() < .6 else "AP"] + (["LATERAL"] if rng.random() < .35 else [])
        for v in views:
            dicom = "-".join(f"{int(rng.integers(0, 2**32)):08x}" for _ in range(5))
            split_rows.append({"dicom_id": dicom, "study_id": study, "subject_id": subject,
                               "split": subj_split[si]})
            meta_rows.append({"dicom_id": dicom, "subject_id": subject, "study_id": study,
                              "PerformedProcedureStepDescription": "CHEST (PA AND LAT)", "ViewPosition": v,
                              "Rows": image_size, "Columns": image_size})
            frontal_labels.append([1 if c in pos else 0 for c in CHEXPERT])
            frontal_paths.append(sdir / f"s{study}" / f"{dicom}.jpg")
    signs = np.array(frontal_labels, np.uint8)
    signs[:, CHEXPERT.index("No Finding")] = 0  # "No Finding" draws no sign of disease
    img = multilabel_images(rng, signs, image_size, haze_weight=[_MIMIC_HAZE.get(c, 1.0) for c in CHEXPERT])
    for p, a in zip(frontal_paths, img):
        _save(p, a, "JPEG")
    for name, rows in (("split", split_rows), ("chexpert", chex_rows), ("metadata", meta_rows)):
        # mtime=0: gzip otherwise stamps the write time into the header and the file's sha256 changes per run.
        pd.DataFrame(rows).to_csv(root / f"mimic-cxr-2.0.0-{name}.csv.gz", index=False,
                                  compression={"method": "gzip", "mtime": 0})


def ensure_mimic_cxr(root: Path, n: int, seed: int = FIXTURE_SEED) -> Path:
    params = {"kind": "mimic_cxr", "n": n, "seed": seed, "version": 3}
    return ensure_dir(root, params, lambda tmp: write_mimic_cxr(tmp, n, seed))


# ---- PubMedVision ---------------------------------------------------------------------------------------

PMV_PARTS = ["Abdomen", "Brain", "Cell", "Chest", "Lower limb", "Pelvic cavity"]
_PMV_MODALITIES = {  # per body part: modality -> weight (so modality varies within a class)
    "Abdomen": {"Computed Tomography": .5, "Ultrasound": .3, "Magnetic Resonance Imaging": .2},
    "Brain": {"Magnetic Resonance Imaging": .6, "Computed Tomography": .4},
    "Cell": {"Microscopy Images": .85, "Digital Photography": .15},
    "Chest": {"X-Ray": .5, "Computed Tomography": .5},
    "Lower limb": {"X-Ray": .5, "Magnetic Resonance Imaging": .3, "Digital Photography": .2},
    "Pelvic cavity": {"Computed Tomography": .4, "Magnetic Resonance Imaging": .3, "Ultrasound": .3},
}
_TINT = {"Computed Tomography": [.9, .9, .9], "Magnetic Resonance Imaging": [.8, .8, .85],
         "X-Ray": [1, 1, 1], "Ultrasound": [.7, .7, .6], "Microscopy Images": [.85, .45, .75],
         "Digital Photography": [.95, .7, .6]}
_PMV_FINDINGS = {
    "Abdomen": ["a hypodense lesion in the liver", "dilated small bowel loops", "a renal cyst"],
    "Brain": ["a ring-enhancing lesion in the left frontal lobe", "periventricular white matter changes",
              "a midline shift"],
    "Cell": ["clusters of atypical cells", "dense lymphocytic infiltrate", "mitotic figures"],
    "Chest": ["a right lower lobe opacity", "bilateral pleural effusions", "a spiculated nodule"],
    "Lower limb": ["a displaced tibial fracture", "soft tissue swelling around the knee", "a femoral lesion"],
    "Pelvic cavity": ["an adnexal mass", "free fluid in the pouch of Douglas", "an enlarged uterus"],
}
_PMV_TEMPLATES = [
    "The {modality} image of the {part} shows {finding}.",
    "This {modality} scan of the {part} demonstrates {finding}, as indicated by the arrow.",
    "{Modality} of the {part} reveals {finding}.",
    "An axial {modality} view of the {part}: {finding} is visible.",
    "In this {modality} image we can see the {part} with {finding}.",
    "Figure: {part} imaged with {modality}; note {finding}.",
]


def write_pubmedvision(root: Path, n: int, seed: int = FIXTURE_SEED, image_size: int = 64) -> None:
    """Local PubMedVision layout: records.jsonl ({id, image, caption, body_part, modality}) + images/*.png."""
    rng = np.random.default_rng(seed)
    prior = np.array([1.0, 0.9, 0.7, 1.3, 0.5, 0.4])
    y = rng.choice(len(PMV_PARTS), size=n, p=prior / prior.sum())
    gray = class_images(rng, y, len(PMV_PARTS), image_size, chest=False)
    mods = []
    for k in y:
        table = _PMV_MODALITIES[PMV_PARTS[k]]
        mods.append(str(rng.choice(list(table), p=np.array(list(table.values())) / sum(table.values()))))
    tint = np.clip(np.array([_TINT[m] for m in mods]) + rng.normal(0, .05, (n, 3)), 0.2, 1.0)
    rgb = colorize(gray, tint)
    lines = []
    for i in range(n):
        part, mod = PMV_PARTS[y[i]], mods[i]
        t = _PMV_TEMPLATES[int(rng.integers(len(_PMV_TEMPLATES)))]
        finding = _PMV_FINDINGS[part][int(rng.integers(3))]
        cap = t.format(modality=mod, Modality=mod, part=part.lower(), finding=finding)
        rel = f"images/pmv_{i:05d}.png"
        _save(root / rel, rgb[i])
        lines.append(json.dumps({"id": f"pmv-{i:05d}", "image": rel, "caption": cap, "body_part": part,
                                 "modality": mod}))
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")


def ensure_pubmedvision(root: Path, n: int, seed: int = FIXTURE_SEED) -> Path:
    params = {"kind": "pubmedvision", "n": n, "seed": seed, "version": 1}
    return ensure_dir(root, params, lambda tmp: write_pubmedvision(tmp, n, seed))


# ---- CSV pairs (open_clip's CSV convention) ----------------------------------------------------------------


def write_csv_pairs(root: Path, n: int, seed: int = FIXTURE_SEED, image_size: int = 32) -> Path:
    """``pairs.csv`` (image_path,caption,label) + images/: an example of the custom-pairs layout."""
    import pandas as pd

    write_pubmedvision(root, n, seed, image_size)
    recs = [json.loads(line) for line in (root / "records.jsonl").read_text().splitlines()]
    (root / "records.jsonl").unlink()
    df = pd.DataFrame({"image_path": [r["image"] for r in recs], "caption": [r["caption"] for r in recs],
                       "label": [r["body_part"] for r in recs]})
    df.to_csv(root / "pairs.csv", index=False)
    return root / "pairs.csv"


# ---- general-domain retrieval ---------------------------------------------------------------------------

_COLORS = {"red": [.9, .1, .1], "green": [.1, .75, .2], "blue": [.15, .25, .9], "yellow": [.95, .9, .1],
           "white": [.97, .97, .97], "black": [.05, .05, .05], "purple": [.55, .2, .7], "orange": [1., .55, .1]}
_SHAPES = ["circle", "square", "triangle", "cross", "ring"]
_PLACES = {"top left": (.3, .3), "top right": (.7, .3), "bottom left": (.3, .7), "bottom right": (.7, .7),
           "centre": (.5, .5)}
_RET_TEMPLATES = ["a {sz} {c} {s} on {a_bg} {bg} background", "{a_c} {c} {s} in the {pl} of {a_bg} {bg} picture",
                  "{sz} {c} {s}, {pl}, {bg} backdrop", "a photo of {a_c} {c} {s} against {bg}",
                  "there is {a_c} {c} {s} at the {pl}"]  # five captions per image, as Flickr30K and COCO
KARPATHY_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def _shape_mask(x, y, shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx ** 2 + dy ** 2 < r ** 2
    if shape == "square":
        return (np.abs(dx) < r * .85) & (np.abs(dy) < r * .85)
    if shape == "triangle":
        return (dy < r * .8) & (dy > -r) & (np.abs(dx) < (dy + r) * 0.6)
    if shape == "cross":
        return ((np.abs(dx) < r * .3) & (np.abs(dy) < r)) | ((np.abs(dy) < r * .3) & (np.abs(dx) < r))
    return (dx ** 2 + dy ** 2 < r ** 2) & (dx ** 2 + dy ** 2 > (r * .55) ** 2)  # ring


def write_retrieval(root: Path, n: int, flag: str = "flickr30k", seed: int = FIXTURE_SEED,
                   image_size: int = 64) -> None:
    """Karpathy's layout: ``dataset_<flag>.json`` ({"images": [{"filename", "filepath", "imgid", "split",
    "sentences": [{"raw", "tokens", ...}], ...}], "dataset": flag}) + ``images/<filepath>/<filename>``.

    Five captions per image; splits 60/20/20 % (train/val/test). The COCO-shaped fixture also uses
    ``filepath`` (train2014/val2014) and Karpathy's ``restval`` split (part of train), as the real file does.
    """
    rng = np.random.default_rng(seed)
    x, y = _grid(image_size)
    names, entries, sentid = list(_COLORS), [], 0
    n_train, n_val = int(round(n * KARPATHY_FRACTIONS["train"])), int(round(n * KARPATHY_FRACTIONS["val"]))
    for i in range(n):
        c, bg = rng.choice(len(names), 2, replace=False)
        s = _SHAPES[int(rng.integers(len(_SHAPES)))]
        pl = list(_PLACES)[int(rng.integers(len(_PLACES)))]
        big = bool(rng.random() < .5)
        cx, cy = (v + rng.normal(0, .03) for v in _PLACES[pl])
        m = _shape_mask(x, y, s, cx, cy, .22 if big else .13)
        img = np.empty((image_size, image_size, 3), np.float32)
        img[:] = _COLORS[names[bg]]
        img[m] = _COLORS[names[c]]
        img += rng.normal(0, .03, img.shape)
        arr = (np.clip(img, 0, 1) * 255 + .5).astype(np.uint8)
        split = "train" if i < n_train else "val" if i < n_train + n_val else "test"
        entry: dict[str, Any] = {"imgid": i, "split": split}
        if flag == "coco":
            if split == "train" and i % 3 == 2:
                entry["split"] = "restval"  # Karpathy's extra COCO training images (val2014 files)
            entry["filepath"] = "train2014" if split == "train" and entry["split"] == "train" else "val2014"
            entry["filename"] = f"COCO_{entry['filepath']}_{i:012d}.jpg"
            entry["cocoid"] = i
        else:
            entry["filename"] = f"{1000000 + i}.jpg"
        _save(root / "images" / entry.get("filepath", "") / entry["filename"], arr, "JPEG")
        art = lambda w: "an" if w[0] in "aeiou" else "a"  # noqa: E731
        fill = dict(sz="large" if big else "small", c=names[c], s=s, bg=names[bg], pl=pl, a_c=art(names[c]),
                    a_bg=art(names[bg]))
        caps = [t.format(**fill) for t in rng.permutation(_RET_TEMPLATES)]
        entry["sentids"] = list(range(sentid, sentid + len(caps)))
        entry["sentences"] = [{"raw": cap, "tokens": cap.split(), "imgid": i, "sentid": sentid + k}
                              for k, cap in enumerate(caps)]
        sentid += len(caps)
        entries.append(entry)
    (root / f"dataset_{flag}.json").write_text(json.dumps({"images": entries, "dataset": flag}))


def ensure_retrieval(root: Path, n: int, flag: str = "flickr30k", seed: int = FIXTURE_SEED) -> Path:
    """The Karpathy-layout fixture of ``flag`` (flickr30k | coco) under ``root`` (regenerated when stale)."""
    params = {"kind": "retrieval", "layout": "karpathy", "flag": flag, "n": n, "seed": seed, "version": 2}
    return ensure_dir(root, params, lambda tmp: write_retrieval(tmp, n, flag, seed))
