"""A loader's last step (:func:`finish`): check the splits, apply the cap, record the manifest (counts, file
hashes, images outside the dataset folder) and return the :class:`~medlib.data.base.DatasetBundle`."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import DatasetSpec, Profile
from .base import SPLITS, TASKS, DatasetBundle, Split
from .locate import warn_synthetic
from .splits import cap_indices, counts, rng_for, strata_of, take


GENERATED_LICENSE = "generated (no licence needed)"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def finish(
    profile: Profile,
    spec: DatasetSpec,
    *,
    task: str,
    class_names: list[str],
    splits: dict[str, Split],
    source: str,
    synthetic: bool,
    license: str,
    domain: str,
    files: Sequence[str | Path],
    extra: dict[str, Any] | None = None,
    credentialed: bool = False,
    image_folder: str | Path | None = None,
) -> DatasetBundle:
    """Check the splits, apply ``spec.max_per_split``, build the manifest, warn loudly when synthetic.

    ``image_folder``: the dataset folder of a source that reads image paths from an index file; the images it
    would read outside that folder are warned about and recorded (:func:`images_outside`).

    ``source``/``license`` describe the real data; for a generated fixture (``synthetic``) the source gets
    " (generated fixture)" appended and the licence becomes :data:`GENERATED_LICENSE`.
    """
    assert task in TASKS, task
    missing = [s for s in SPLITS if s not in splits]
    if missing:
        raise AssertionError(f"{spec.name}: loader returned no {missing} split(s)")  # a bug in a loader, not input
    source_license = license  # the real data's terms (a credentialed source's fixture is shown as if real)
    if synthetic:
        source, license = f"{source} (generated fixture)", GENERATED_LICENSE
    rng = rng_for(profile, spec, "cap")
    out: dict[str, Split] = {}
    for name in SPLITS:
        s = splits[name]
        idx = cap_indices(strata_of(s.labels), spec.max_per_split, rng)
        if len(idx) < len(s):
            s = take(s, idx)
        if s.images.dtype != np.uint8 or tuple(s.images.shape[1:3]) != (spec.size, spec.size):
            raise AssertionError(f"{spec.name}/{name}: images {s.images.dtype} {s.images.shape}, want uint8 "
                                 f"{spec.size}x{spec.size}")
        s.labels = np.ascontiguousarray(s.labels, dtype=np.int64)
        if s.captions is not None:
            bad = [i for i, c in enumerate(s.captions) if not isinstance(c, str) or not c.strip()]
            if bad:
                raise AssertionError(f"{spec.name}/{name}: empty caption at {bad[:3]}")
        out[name] = s
    manifest: dict[str, Any] = {
        "source": source,
        "synthetic": synthetic,
        "credentialed": credentialed,
        **({"credentialed_license": source_license} if credentialed else {}),
        "counts": counts(task, class_names, out),
        "n": {k: len(v) for k, v in out.items()},
        "sha256": {Path(f).name: sha256_file(f) for f in files},
        "spec": asdict(spec),
    }
    if image_folder is not None:
        manifest[OUTSIDE_KEY] = images_outside(image_folder, out)
    if task == "multilabel":
        manifest["all_negative"] = {k: int((v.labels.sum(axis=1) == 0).sum()) for k, v in out.items()}
    if synthetic:
        manifest["note"] = (f"GENERATED fixture standing in for {spec.name}: numbers on it test the code path "
                            "and are NOT results")
        warn_synthetic(spec.name, source)
    manifest.update(extra or {})
    return DatasetBundle(name=spec.name, task=task, class_names=list(class_names), splits=out, source=source,
                         synthetic=synthetic, license=license, domain=domain, manifest=manifest,
                         credentialed=credentialed)


#: The manifest entry of every source that reads image paths from an index file: the images outside its folder.
OUTSIDE_KEY = "images_outside_folder"


def paths_outside(folder: str | Path, paths: Sequence[str | Path]) -> list[int]:
    """Indices of ``paths`` (absolute, or relative to the working directory) outside ``folder`` once ``..`` is
    resolved, compared lexically: no file-system access (an image reached through a symlinked folder is inside)."""
    base = os.path.normpath(os.path.abspath(folder))
    return [i for i, p in enumerate(paths)
            if os.path.commonpath([base, os.path.normpath(os.path.abspath(p))]) != base]


def images_outside(folder: str | Path, splits: dict[str, Split]) -> dict[str, Any]:
    """The images the splits will read that lie outside the dataset ``folder`` (``../`` or absolute paths in the
    index file): allowed (a shared image folder is common), said once as a UserWarning naming the index file and
    the first such entry, and returned as the manifest record ``{"folder", "n", "examples"}``.

    Reads the paths of the splits' not-yet-decoded image columns (:class:`~medlib.data.decode.ImageFiles`, duck-
    typed: ``paths``, ``wheres``, ``index_file``); images already in memory have no path and are not counted.
    """
    hits: list[tuple[str, str, str]] = []  # (index file, where it lists the image, the image)
    for s in splits.values():
        paths = getattr(s.images, "paths", None)
        if paths is None:
            continue
        for i in paths_outside(folder, paths):
            hits.append((str(s.images.index_file), s.images.wheres[i], os.path.normpath(os.path.abspath(paths[i]))))
    if hits:
        index_file, where, image = hits[0]
        warnings.warn(f"{index_file}: {len(hits)} image path(s) point outside the dataset folder {folder} (first: "
                      f"{where + ': ' if where else ''}{image}); read anyway, recorded in the manifest as "
                      f"{OUTSIDE_KEY}", UserWarning, stacklevel=3)
    return {"folder": str(folder), "n": len(hits), "examples": [h[2] for h in hits[:5]]}
