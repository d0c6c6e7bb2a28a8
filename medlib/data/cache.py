"""Prepared-split cache: ``<data_dir>/cache/<profile>/<name>/`` (layout in :mod:`medlib.data.store`) + ``meta.json``.

Each split is an uncompressed ``<split>_images.npy`` (opened memory-mapped: a cache hit reads headers, labels
and the JSON, never every image, and never a source image file) and ``<split>_labels.npy``. ``meta.json`` holds
class names, task, domain, source, synthetic, credentialed, license, manifest, captions, ids and all captions per
split, and ``key``: a hash of the DatasetSpec (and of its fallback's spec), the profile seed, this cache's format version and
the (path, size, sha256) of the files the loader reads (for CSV pairs: every image too; the digests are memoized
under each file's stat, so a hit reads no file's content: :mod:`medlib.data.digests`). The cache is reused when
the key matches, so editing the spec, changing the seed, replacing an input file (also by one of the same size and
mtime, as ``cp -p`` leaves it) or dropping the real file into the data dir rebuilds it; touching a file without
changing its bytes does not. ``meta.json`` is the commit record: removed before any split is replaced and written after
all of them, so an interrupted preparation is never read as complete (and resumes where it stopped).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..files import write_json
from ..config import Profile
from . import digests, store
from .base import DatasetBundle, Split
from .locate import warn_synthetic
from .prepare_lock import PrepareLock
from .registry import load_index, source_module

FORMAT_VERSION = 5  # 5: a content digest per input file instead of its mtime; 4: all_captions per split; 3: a folder
# of .npy files opened memory-mapped; 2: one stat per input file; credentialed
META = "meta.json"


def paths(profile: Profile, name: str) -> tuple[Path, Path]:
    """(folder of the prepared splits, its commit record ``meta.json``)."""
    folder = profile.data_path / "cache" / profile.name / name
    return folder, folder / META


def digest_memo(profile: Profile, name: str) -> Path:
    """The input files' memoized digests, beside the folder (which ``refresh`` removes)."""
    folder = paths(profile, name)[0]
    return folder.with_name(folder.name + ".digests.json")


def cache_key(profile: Profile, name: str) -> str:
    """Hash of everything that decides the prepared splits (see the module docstring)."""
    spec = profile.dataset(name)
    specs = [asdict(spec)] + ([asdict(profile.dataset(spec.fallback))] if spec.fallback else [])
    files = digests.file_digests(source_module(spec).inputs(profile, spec), digest_memo(profile, name))
    blob = json.dumps({"v": FORMAT_VERSION, "seed": profile.seed, "specs": specs, "files": files}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def save(profile: Profile, bundle: DatasetBundle, key: str) -> None:
    """Write every split (images resumably, see :mod:`medlib.data.store`), then the commit record."""
    folder, meta = paths(profile, bundle.name)
    meta.unlink(missing_ok=True)  # no commit record while splits are being replaced
    if folder.exists() and not folder.is_dir():  # format 1 left <name>.npz/.json beside, never a file here
        folder.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    for old in (folder.with_suffix(".npz"), folder.with_suffix(".json")):  # format 1 (one compressed npz)
        old.unlink(missing_ok=True)
    for s, sp in bundle.splits.items():
        store.write_images(folder, s, sp.images, key)
        store.write_array(store.labels_path(folder, s), sp.labels)
    write_json(meta, {
        "key": key, "format": FORMAT_VERSION, "name": bundle.name, "task": bundle.task,
        "class_names": bundle.class_names, "domain": bundle.domain, "source": bundle.source,
        "synthetic": bundle.synthetic, "license": bundle.license, "credentialed": bundle.credentialed,
        "manifest": bundle.manifest,
        "text": {s: {"captions": sp.captions, "ids": sp.ids, "all_captions": sp.all_captions}
                 for s, sp in bundle.splits.items()},
    })


def read(profile: Profile, name: str, key: str | None = None) -> DatasetBundle | None:
    """The cached bundle (images memory-mapped), or None when absent, stale (key differs) or unreadable."""
    folder, meta_path = paths(profile, name)
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if key is not None and meta.get("key") != key:
            return None
        splits = {s: Split(images=store.open_images(folder, s), labels=store.open_labels(folder, s),
                           captions=t["captions"], ids=t["ids"], all_captions=t.get("all_captions"))
                  for s, t in meta["text"].items()}
        for s, sp in splits.items():
            if len(sp.labels) != len(sp):
                raise ValueError(f"{s}: {len(sp.labels)} labels for {len(sp)} images")
    except (OSError, ValueError, KeyError, EOFError) as exc:  # our own cache files: rebuild, but say so
        warnings.warn(f"{folder}: cache unreadable ({type(exc).__name__}); rebuilding it", UserWarning, stacklevel=2)
        return None
    return DatasetBundle(name=meta["name"], task=meta["task"], class_names=meta["class_names"], splits=splits,
                         source=meta["source"], synthetic=meta["synthetic"], license=meta["license"],
                         domain=meta["domain"], manifest=_with_cache_note(meta["manifest"], folder),
                         credentialed=bool(meta.get("credentialed", False)))


def _with_cache_note(manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    return {**manifest, "cache": str(folder)}


def get(profile: Profile, name: str, refresh: bool = False) -> DatasetBundle:
    """Cached prepared splits of dataset ``name``; prepared (or resumed) when absent, stale or ``refresh``.

    One process prepares a dataset at a time (:mod:`medlib.data.prepare_lock`): a second one waits, then reads
    what the first prepared instead of preparing it again.
    """
    key = cache_key(profile, name)  # raises DatasetSkipped for unconfigured data, before any work
    if not refresh:
        hit = _hit(profile, name, key)
        if hit is not None:
            return hit
    folder = paths(profile, name)[0]
    with PrepareLock(folder, name):
        if not refresh:  # another process may have prepared it since the check above (or while this one waited)
            hit = _hit(profile, name, cache_key(profile, name))
            if hit is not None:
                return hit
        if refresh and folder.is_dir():
            shutil.rmtree(folder)  # refresh: no resume from what is there
        bundle = load_index(profile, name)  # images not decoded yet: save() decodes them into the store
        key = cache_key(profile, name)  # after loading: a fixture generated just now exists (and has a digest)
        save(profile, bundle, key)
        out = read(profile, name, key)
    if out is None:  # pragma: no cover - just written
        raise RuntimeError(f"{folder}: prepared split unreadable right after writing")
    return out


def _hit(profile: Profile, name: str, key: str) -> DatasetBundle | None:
    hit = read(profile, name, key)
    if hit is not None and hit.synthetic:
        warn_synthetic(name, hit.source)
    return hit
