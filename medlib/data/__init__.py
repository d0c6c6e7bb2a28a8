"""The data layer: one module per source, one public entry point.

```python
from medlib.data import get_dataset, load_dataset, DatasetSkipped
bundle = load_dataset(profile, "pneumoniamnist")                 # reads the source (no cache)
bundle = get_dataset(profile, "pneumoniamnist", refresh=False)   # cached prepared split
```

Every loader returns a :class:`~medlib.data.base.DatasetBundle` with splits ``train``/``val``/``test``,
uint8 images of ``spec.size`` pixels, int64 labels, captions where the source has text, and a
manifest (source, synthetic, counts per split and class, sha256 of the files read, the spec).

The helpers the source modules share live in :mod:`medlib.data.common`. Source modules are imported
lazily, so importing ``medlib.data`` stays cheap (``datasets``/``huggingface_hub`` load only when a hub
source is used).
"""

from __future__ import annotations

import importlib
from typing import Any

from ..config import DatasetSpec, Profile
from ..errors import MedlibError
from .base import DatasetBundle, Split

__all__ = ["DatasetSkipped", "DatasetBundle", "Split", "get_dataset", "load_dataset", "source_plan", "SOURCES"]

# spec.source -> module that implements ``load(profile, spec)`` and ``inputs(profile, spec)``.
SOURCES = {
    "medmnist": "medlib.data.medmnist",
    "pubmedvision": "medlib.data.pubmedvision",
    "chestxray14": "medlib.data.chestxray14",
    "mimic_cxr": "medlib.data.mimic_cxr",
    "csv_pairs": "medlib.data.csv_pairs",
    "retrieval": "medlib.data.retrieval",
}
SYNTHETIC_MODES = ("never", "auto", "always")


class DatasetSkipped(MedlibError):
    """The profile does not configure this dataset (e.g. MIMIC-CXR with ``path: ""``); callers skip it."""


# ---- public API ---------------------------------------------------------------------------------


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


def load_dataset(profile: Profile, name: str) -> DatasetBundle:
    """Read dataset ``name`` of ``profile`` from its source (real files, the hub, or a generated fixture).

    Raises :class:`DatasetSkipped` when the profile does not configure the data and
    :class:`~medlib.errors.MedlibError` (one line: file + fix) for any problem with the input.
    """
    spec = profile.dataset(name)
    return source_module(spec).load(profile, spec)


def get_dataset(profile: Profile, name: str, refresh: bool = False) -> DatasetBundle:
    """Like :func:`load_dataset`, but through the prepared-split cache under ``<data_dir>/cache/<profile>/``.

    The cache is reused while the DatasetSpec, the seed and the files the loader reads are unchanged;
    ``refresh=True`` rebuilds it.
    """
    from . import cache

    return cache.get(profile, name, refresh=refresh)


def source_plan(profile: Profile) -> dict[str, str]:
    """{dataset: 'real' | 'generated' | 'skipped'} for every dataset of the profile, decided by each source's
    ladder without reading, downloading or generating anything (a wrong-kind path raises its one-line error
    here, before any notebook runs). A dataset is 'generated' when the files it would read are fixtures."""
    from pathlib import Path

    fixtures = (profile.data_path / "fixtures").resolve()
    out: dict[str, str] = {}
    for spec in profile.datasets:
        try:
            files = [Path(f).resolve() for f in source_module(spec).inputs(profile, spec)]
        except DatasetSkipped:
            out[spec.name] = "skipped"
            continue
        gen = spec.synthetic == "always" or any(f.is_relative_to(fixtures) for f in files)
        out[spec.name] = "generated" if gen else "real"
    return out
