"""Splitting and capping a dataset: seeded streams, stratified parts, stratified caps, per-class counts."""

from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from ..config import DatasetSpec, Profile
from .base import Split


def rng_for(profile: Profile, spec: DatasetSpec, purpose: str) -> np.random.Generator:
    """A Generator seeded from the profile seed, the dataset name and a purpose (independent streams)."""
    return np.random.default_rng([profile.seed, zlib.crc32(spec.name.encode()), zlib.crc32(purpose.encode())])


def strata_of(labels: np.ndarray) -> np.ndarray:
    """A 1-D stratum per example: the class (multiclass), first positive label or C (multi-label)."""
    if labels.ndim == 2:
        has = labels.any(axis=1)
        return np.where(has, labels.argmax(axis=1), labels.shape[1])
    return labels


def stratified_parts(strata: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Split ``arange(len(strata))`` into parts of the given fractions, class by class.

    Own code rather than sklearn's ``train_test_split(stratify=...)``, which refuses classes with fewer
    than 2 members and cannot do a 3-way split in one call; rare classes land in the first parts.
    """
    cum = np.cumsum(fractions) / float(np.sum(fractions))
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == c))
        bounds = np.round(cum * len(idx)).astype(int)[:-1]
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]


def cap_indices(strata: np.ndarray, max_n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified-ish random subset of at most ``max_n`` (all when max_n <= 0)."""
    n = len(strata)
    if max_n <= 0 or n <= max_n:
        return np.arange(n, dtype=np.int64)
    frac = max_n / n
    keep: list[int] = []
    rest: list[int] = []
    for c in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == c))
        k = max(1, int(np.floor(len(idx) * frac)))
        keep.extend(idx[:k])
        rest.extend(idx[k:])
    keep_a, rest_a = np.array(keep), rng.permutation(np.array(rest, dtype=np.int64))
    if len(keep_a) > max_n:
        keep_a = rng.choice(keep_a, size=max_n, replace=False)
    elif len(keep_a) < max_n:
        keep_a = np.concatenate([keep_a, rest_a[: max_n - len(keep_a)]])
    return np.sort(keep_a).astype(np.int64)


def take(split: Split, idx: np.ndarray) -> Split:
    """Subset of a split (``Split.subset``)."""
    return split.subset(idx)


def empty_split(size: int, rgb: bool) -> Split:
    """A split with no examples (retrieval sets have only ``test``)."""
    shape = (0, size, size, 3) if rgb else (0, size, size)
    return Split(np.zeros(shape, np.uint8), np.zeros(0, np.int64), [], [])


def counts(task: str, class_names: list[str], splits: dict[str, Split]) -> dict[str, dict[str, int]]:
    """{split: {class: n}}: examples per class (multiclass) or positives per label (multi-label)."""
    out: dict[str, dict[str, int]] = {}
    for name, s in splits.items():
        if task == "multilabel":
            sums = s.labels.sum(axis=0) if len(s) else np.zeros(len(class_names), np.int64)
            out[name] = {c: int(v) for c, v in zip(class_names, sums)}
        elif task == "multiclass":
            bc = np.bincount(s.labels, minlength=len(class_names)) if len(s) else np.zeros(len(class_names), int)
            out[name] = {c: int(v) for c, v in zip(class_names, bc)}
        else:
            out[name] = {}
    return out
