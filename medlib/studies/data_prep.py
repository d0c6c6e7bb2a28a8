"""Notebook 01's tables: examples per dataset, split and class, and images per split."""

from __future__ import annotations

import pandas as pd

from ..data.base import DatasetBundle


def data_summary(bundles: list[DatasetBundle]) -> pd.DataFrame:
    """One row per dataset x split x class: n, plus source, synthetic flag and licence."""
    rows = []
    for b in bundles:
        if b.task == "retrieval":  # image-text pairs, no classes: one row per split
            rows += [{"dataset": b.name, "task": b.task, "split": split, "class": "(pairs)", "n": len(s),
                      "source": b.source, "synthetic": b.synthetic, "license": b.license}
                     for split, s in b.splits.items() if len(s)]
            continue
        for split, per_class in b.manifest.get("counts", {}).items():
            for cls, n in per_class.items():
                rows.append({"dataset": b.name, "task": b.task, "split": split, "class": cls, "n": int(n),
                             "source": b.source, "synthetic": b.synthetic, "license": b.license})
    return pd.DataFrame(rows)


def split_sizes(bundles: list[DatasetBundle]) -> pd.DataFrame:
    """One row per dataset: images per split, task, number of classes, source, synthetic flag, licence."""
    rows = [{"dataset": b.name, "task": b.task, "classes": b.num_classes,
             **{split: len(b.splits[split]) if split in b.splits else 0 for split in ("train", "val", "test")},
             "source": b.source, "synthetic": b.synthetic, "license": b.license} for b in bundles]
    return pd.DataFrame(rows)
