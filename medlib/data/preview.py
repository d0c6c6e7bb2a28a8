"""What notebook 01 shows of a dataset: a few samples with their text, or, for credentialed sources, statistics only.

MIMIC-CXR's licence (PhysioNet credentialed access) forbids sharing its report text and images, so for a bundle
with ``credentialed`` set nothing here returns text or pixels: :func:`text_statistics` gives counts, caption
lengths and label prevalence per split, and :func:`withheld_note` says why the samples are not shown.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .base import DatasetBundle, Split


def sample_split(bundle: DatasetBundle) -> Split:
    """The split samples are drawn from: train, or test where train is empty (retrieval sets)."""
    return bundle.splits["train"] if len(bundle.splits["train"]) else bundle.splits["test"]


def samples(bundle: DatasetBundle, k: int = 8) -> tuple[np.ndarray, list[str]]:
    """Up to ``k`` images and their captions (or class names where the source has no text).

    Refuses credentialed bundles: their images and text must never reach a figure.
    """
    if bundle.credentialed:
        raise ValueError(f"{bundle.name} is credentialed data: show text_statistics(), not samples")
    split = sample_split(bundle)
    k = min(k, len(split))
    if split.captions is not None:
        texts = list(split.captions[:k])
    elif bundle.task == "multilabel":
        texts = [", ".join(c for c, y in zip(bundle.class_names, row) if y) or "no finding" for row in split.labels[:k]]
    else:
        texts = [bundle.class_names[int(y)] for y in split.labels[:k]]
    return np.asarray(split.images[:k]), texts


def withheld_note(bundle: DatasetBundle) -> str:
    terms = bundle.manifest.get("credentialed_license", bundle.license)
    stand_in = " (this is a generated stand-in, handled exactly like the real data)" if bundle.synthetic else ""
    return (f"{bundle.name}: no images or report text shown{stand_in}. The source's licence ({terms}) forbids "
            "sharing them, so this notebook, its figures and the report show counts, caption lengths and label "
            "statistics only.")


def caption_lengths(bundle: DatasetBundle) -> dict[str, np.ndarray]:
    """Words per caption, per split with captions."""
    return {name: np.array([len(c.split()) for c in s.captions], np.int64)
            for name, s in bundle.splits.items() if s.captions is not None and len(s)}


def label_prevalence(bundle: DatasetBundle) -> pd.DataFrame:
    """Share of images with each label (multi-label) or in each class, per split (index = class)."""
    cols = {}
    for name, s in bundle.splits.items():
        if not len(s) or bundle.task == "retrieval":
            continue
        if s.labels.ndim == 2:
            cols[name] = s.labels.mean(axis=0)
        else:
            cols[name] = np.bincount(s.labels, minlength=bundle.num_classes) / len(s)
    return pd.DataFrame(cols, index=bundle.class_names)


def text_statistics(bundle: DatasetBundle) -> pd.DataFrame:
    """One row per split: images, caption length in words (mean, median, min, max) and labels per image."""
    lengths = caption_lengths(bundle)
    rows = []
    for name, s in bundle.splits.items():
        ln = lengths.get(name, np.zeros(0, np.int64))
        rows.append({"split": name, "images": len(s),
                     "words_mean": round(float(ln.mean()), 1) if len(ln) else None,
                     "words_median": float(np.median(ln)) if len(ln) else None,
                     "words_min": int(ln.min()) if len(ln) else None, "words_max": int(ln.max()) if len(ln) else None,
                     "labels_per_image": round(float(s.labels.sum(axis=1).mean()), 2)
                     if s.labels.ndim == 2 and len(s) else None})
    return pd.DataFrame(rows)
