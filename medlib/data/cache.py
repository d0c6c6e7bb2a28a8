"""Prepared-split cache: ``<data_dir>/cache/<profile>/<name>.npz`` + ``<name>.json``.

The npz holds ``<split>_images`` and ``<split>_labels``; the JSON holds class names, task, domain,
source, synthetic, license, manifest, captions and ids per split, and ``key``: a hash of the
DatasetSpec (and of its fallback's spec), the profile seed, this cache's format version and the
(path, size, mtime) of the files the loader reads. The cache is reused when the key matches, so
editing the spec, changing the seed or dropping the real file into the data dir rebuilds it.
Both files are written atomically, the JSON (the commit record) removed first and written last, so a crash
between the two writes leaves no JSON and the next run rebuilds (never an old key over new arrays).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
import zipfile
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .. import io as mio
from ..config import Profile
from . import load_dataset, source_module
from .base import DatasetBundle, Split
from .common import warn_synthetic

FORMAT_VERSION = 2  # 2: one stat per input file (absolute, unresolved path); credentialed


def paths(profile: Profile, name: str) -> tuple[Path, Path]:
    base = profile.data_path / "cache" / profile.name / name
    return base.with_suffix(".npz"), base.with_suffix(".json")


def cache_key(profile: Profile, name: str) -> str:
    """Hash of everything that decides the prepared splits (see the module docstring)."""
    spec = profile.dataset(name)
    specs = [asdict(spec)] + ([asdict(profile.dataset(spec.fallback))] if spec.fallback else [])
    files = [_stat(p) for p in source_module(spec).inputs(profile, spec)]
    blob = json.dumps({"v": FORMAT_VERSION, "seed": profile.seed, "specs": specs, "files": files}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _stat(path: str | Path) -> list:
    """[absolute path, size, mtime_ns] with one ``stat`` (None, None when absent): cheap for 100k images."""
    path = os.path.abspath(path)
    try:
        st = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, st.st_size, st.st_mtime_ns]


def save(profile: Profile, bundle: DatasetBundle, key: str) -> None:
    npz, meta = paths(profile, bundle.name)
    meta.unlink(missing_ok=True)  # no commit record while the npz is being replaced
    arrays: dict[str, np.ndarray] = {}
    for s, sp in bundle.splits.items():
        arrays[f"{s}_images"] = sp.images
        arrays[f"{s}_labels"] = sp.labels
    mio.write_npz(npz, **arrays)
    mio.write_json(meta, {
        "key": key, "name": bundle.name, "task": bundle.task, "class_names": bundle.class_names,
        "domain": bundle.domain, "source": bundle.source, "synthetic": bundle.synthetic, "license": bundle.license,
        "credentialed": bundle.credentialed, "manifest": bundle.manifest,
        "text": {s: {"captions": sp.captions, "ids": sp.ids} for s, sp in bundle.splits.items()},
    })


def read(profile: Profile, name: str, key: str | None = None) -> DatasetBundle | None:
    """The cached bundle, or None when absent, stale (key differs) or unreadable."""
    npz, meta_path = paths(profile, name)
    if not (npz.is_file() and meta_path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if key is not None and meta.get("key") != key:
            return None
        with np.load(npz) as z:
            splits = {s: Split(images=z[f"{s}_images"], labels=z[f"{s}_labels"].astype(np.int64),
                               captions=t["captions"], ids=t["ids"]) for s, t in meta["text"].items()}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # our own cache file: rebuild, but say so
        warnings.warn(f"{npz}: cache unreadable ({type(exc).__name__}); rebuilding it", UserWarning, stacklevel=2)
        return None
    return DatasetBundle(name=meta["name"], task=meta["task"], class_names=meta["class_names"], splits=splits,
                         source=meta["source"], synthetic=meta["synthetic"], license=meta["license"],
                         domain=meta["domain"], manifest=_with_cache_note(meta["manifest"], npz),
                         credentialed=bool(meta.get("credentialed", False)))


def _with_cache_note(manifest: dict[str, Any], npz: Path) -> dict[str, Any]:
    return {**manifest, "cache": str(npz)}


def get(profile: Profile, name: str, refresh: bool = False) -> DatasetBundle:
    """Cached prepared splits of dataset ``name``; rebuilt when stale or ``refresh``."""
    key = cache_key(profile, name)  # raises DatasetSkipped for unconfigured data, before any work
    if not refresh:
        hit = read(profile, name, key)
        if hit is not None:
            if hit.synthetic:
                warn_synthetic(name, hit.source)
            return hit
    bundle = load_dataset(profile, name)
    key = cache_key(profile, name)  # after loading: a fixture generated just now exists (and has an mtime)
    save(profile, bundle, key)
    bundle.manifest = _with_cache_note(bundle.manifest, paths(profile, name)[0])
    return bundle
