"""The data layer: one module per source, one public entry point.

```python
from medlib.data import get_dataset, load_dataset, DatasetSkipped
bundle = load_dataset(profile, "pneumoniamnist")                 # reads the source (no cache)
bundle = get_dataset(profile, "pneumoniamnist", refresh=False)   # prepared split, memory-mapped
```

Every loader returns a :class:`~medlib.data.base.DatasetBundle` with splits ``train``/``val``/``test``,
uint8 images of ``spec.size`` pixels, int64 labels, captions where the source has text, and a
manifest (source, synthetic, counts per split and class, sha256 of the files read, the spec).

=====================  ======================================================================
``sources/``           one module per source: ``load(profile, spec)`` and ``inputs(profile, spec)``
``fixtures/``          generated stand-ins, one module per source, in that source's own layout
``registry``           which module reads which ``spec.source``; :func:`load_dataset`
``locate``             where a source's files are: the ladder real copy -> hub -> fallback -> fixture
``splits``             seeded streams, stratified splits and caps, per-class counts
``bundle``             a loader's last step: checks, cap, manifest -> :class:`~medlib.data.base.DatasetBundle`
``decode``             reading images: reduced-size decoding in a process pool, resumable
``image_errors``       the one-line errors for missing, unreadable and oversized images
``cache``, ``store``   prepared splits, uncompressed and memory-mapped; ``digests``: their input hashes
``prepare_lock``       one preparation of a dataset at a time
``preview``            what notebook 01 may show (samples, or statistics for credentialed sources)
``labels``             the label sets of the chest X-ray sources
=====================  ======================================================================

Source modules are imported lazily, so importing ``medlib.data`` stays cheap (``datasets``/``huggingface_hub``
load only when a hub source is used).
"""

from __future__ import annotations

from ..config import Profile
from .base import DatasetBundle, Split
from . import cache
from .registry import SOURCES, SYNTHETIC_MODES, DatasetSkipped, load_dataset, source_module

__all__ = ["DatasetSkipped", "DatasetBundle", "Split", "get_dataset", "load_dataset", "source_plan", "SOURCES",
           "SYNTHETIC_MODES", "source_module"]


def get_dataset(profile: Profile, name: str, refresh: bool = False) -> DatasetBundle:
    """Like :func:`load_dataset`, but through the prepared-split cache under ``<data_dir>/cache/<profile>/``.

    The cache is reused while the DatasetSpec, the seed and the files the loader reads are unchanged;
    ``refresh=True`` rebuilds it.
    """
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
