"""The common shape every data source returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

TASKS = ("multiclass", "multilabel", "retrieval")
SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of a dataset.

    images:   uint8, (N, H, W) for grayscale or (N, H, W, 3) for RGB; every image the same size.
    labels:   int64, (N,) class indices for multiclass; (N, C) of 0/1 for multilabel;
              (N,) (may be all -1) for retrieval-only sets.
    captions: one non-empty string per image, or None where the source has no text.
    ids:      optional stable identifiers (file names, record ids) for tracing predictions back.
    all_captions: every caption of each image, or None where the source has one caption per image
              (Flickr30K/COCO: five; a CSV with repeated ``image_path`` rows: one per row). Always
              ``all_captions[i][0] == captions[i]``, so code that reads ``captions`` sees one caption per
              image as before; :func:`caption_index` flattens them for retrieval (text -> image index).
    """

    images: np.ndarray
    labels: np.ndarray
    captions: list[str] | None = None
    ids: list[str] | None = None
    all_captions: list[list[str]] | None = None

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, idx: np.ndarray) -> "Split":
        """The rows ``idx`` of every field (images, labels, captions, ids, all_captions), in that order."""
        pick = (lambda xs: None if xs is None else [xs[i] for i in idx])
        return Split(self.images[idx], self.labels[idx], pick(self.captions), pick(self.ids),
                     pick(self.all_captions))

    def captions_per_image(self) -> list[list[str]] | None:
        """Every caption of each image (``all_captions``, else ``[[caption]]`` per image); None without text."""
        if self.all_captions is not None:
            return self.all_captions
        return None if self.captions is None else [[c] for c in self.captions]


def caption_index(split: Split) -> tuple[list[str], "np.ndarray"]:
    """(flat captions, text_to_image): every caption of ``split`` image by image, and the image index of each
    (int64), as :func:`medlib.metrics.retrieval_recall` takes them. One caption per image gives arange(N)."""
    per = split.captions_per_image()
    if per is None:
        raise ValueError("split has no captions")
    flat = [c for caps in per for c in caps]
    return flat, np.repeat(np.arange(len(per), dtype=np.int64), [len(c) for c in per])


@dataclass
class DatasetBundle:
    """What every loader in ``medlib.data`` returns."""

    name: str  # the DatasetSpec name, e.g. "pneumoniamnist"
    task: str  # one of TASKS
    class_names: list[str]  # raw class names in label order (text.py makes phrases/prompts)
    splits: dict[str, Split]  # keys from SPLITS (a source may lack "val"; loaders then carve one from train)
    source: str  # human-readable provenance: file path / hub id, "(generated fixture)" when synthetic
    synthetic: bool = False  # True when the data is a generated stand-in, not the real dataset
    license: str = ""  # e.g. "CC BY 4.0"
    domain: str = "medical"  # "medical" | "chest_xray" | "general" (picks prompt templates)
    manifest: dict[str, Any] = field(default_factory=dict)  # counts per split/class, source, sha256 of files read
    # True for sources whose licence forbids sharing the text and images (MIMIC-CXR: PhysioNet credentialed
    # access). A property of the source, so its generated fixture carries it too: figures, tables, executed
    # notebooks and the report show counts, lengths and label statistics of such data, never text or images.
    credentialed: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def has_captions(self) -> bool:
        return all(s.captions is not None for s in self.splits.values())
