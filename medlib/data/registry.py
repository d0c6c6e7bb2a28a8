"""Which module reads which source: the one table every part of ``medlib.data`` looks sources up in.

Kept apart from ``medlib.data/__init__`` so the prepared-split cache (``cache.py``), the source modules and the
package's public API import it without importing each other.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import DatasetSpec, Profile
from ..errors import MedlibError
from .base import DatasetBundle

# spec.source -> module that implements ``load(profile, spec)`` and ``inputs(profile, spec)``.
SOURCES = {
    "medmnist": "medlib.data.sources.medmnist",
    "pubmedvision": "medlib.data.sources.pubmedvision",
    "chestxray14": "medlib.data.sources.chestxray14",
    "mimic_cxr": "medlib.data.sources.mimic_cxr",
    "csv_pairs": "medlib.data.sources.csv_pairs",
    "retrieval": "medlib.data.sources.karpathy",  # Flickr30K / COCO in the Karpathy-split layout (or a hub copy)
}
SYNTHETIC_MODES = ("never", "auto", "always")


class DatasetSkipped(MedlibError):
    """The profile does not configure this dataset (e.g. MIMIC-CXR with ``path: ""``); callers skip it."""


def source_module(spec: DatasetSpec) -> Any:
    """The module that loads ``spec.source``."""
    if spec.source not in SOURCES:
        raise MedlibError(
            f"datasets[{spec.name}].source = {spec.source!r} is unknown. Fix: use one of {sorted(SOURCES)}"
        )
    if spec.synthetic not in SYNTHETIC_MODES:
        raise MedlibError(
            f"datasets[{spec.name}].synthetic = {spec.synthetic!r} is unknown. Fix: use one of {list(SYNTHETIC_MODES)}"
        )
    return importlib.import_module(SOURCES[spec.source])


def load_index(profile: Profile, name: str) -> DatasetBundle:
    """The bundle as the source module builds it: image columns may still be undecoded ``ImageFiles``."""
    spec = profile.dataset(name)
    return source_module(spec).load(profile, spec)


def load_dataset(profile: Profile, name: str) -> DatasetBundle:
    """Read dataset ``name`` of ``profile`` from its source into memory (real files, the hub, or a fixture)."""
    from .decode import materialize

    bundle = load_index(profile, name)
    for split in bundle.splits.values():
        split.images = materialize(split.images)
    return bundle
