"""Prepared splits on disk: uncompressed ``.npy`` files opened memory-mapped, written resumably.

A dataset's prepared splits live in one folder (``<data_dir>/cache/<profile>/<name>/``)::

    <split>_images.npy        uint8 (N, S, S[, 3]), uncompressed: ``numpy.load(..., mmap_mode="r")`` maps it;
                              opening reads the header only, batches are read when indexed
    <split>_labels.npy        int64
    <split>.progress.json     {"key", "fingerprint", "n", "done"}: how far the images' decoding got
    <split>_images.npy.partial  the images file while it is being decoded (never read as complete)

Decoding writes straight into the ``.partial`` file through a memory map (no whole split in RAM) and records
``done`` after each flushed chunk (at most once a second). A preparation that is killed leaves the partial file
and its record; the next one with the same key and the same list of files continues from ``done``. The partial
file is renamed into place only when complete, and the caller's commit record (``cache.py``'s ``meta.json``) is
written after every split, so a half-written split is never read as a prepared one.

numpy's own format rather than Arrow through ``datasets``: one fixed-size uint8 array per split is exactly what
``.npy`` + ``mmap`` serve with zero copies and no extra dependency at read time.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..files import atomic_path, write_json
from .decode import ImageFiles

COMMIT_EVERY_S = 1.0  # at most one progress record per second (each costs an msync and a small atomic write)


def images_path(folder: Path, split: str) -> Path:
    return folder / f"{split}_images.npy"


def labels_path(folder: Path, split: str) -> Path:
    return folder / f"{split}_labels.npy"


def progress_path(folder: Path, split: str) -> Path:
    return folder / f"{split}.progress.json"


def write_array(path: Path, arr: np.ndarray) -> None:
    """``np.save`` to a temporary name, renamed into place."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(arr))


def _record(folder: Path, split: str) -> dict[str, Any]:
    try:
        return json.loads(progress_path(folder, split).read_text())
    except (OSError, ValueError):
        return {}


def write_images(folder: Path, split: str, images: Any, key: str, log: Any = print) -> None:
    """Write one split's images: an array at once; an :class:`ImageFiles` column decoded resumably."""
    final = images_path(folder, split)
    if not isinstance(images, ImageFiles):
        write_array(final, images)
        progress_path(folder, split).unlink(missing_ok=True)
        return
    n, fp = len(images), images.fingerprint()
    want = {"key": key, "fingerprint": fp, "n": n}
    rec = _record(folder, split)
    same = all(rec.get(k) == v for k, v in want.items())
    if same and rec.get("done") == n and final.is_file():
        return  # finished by an earlier (interrupted) preparation of the same data
    part = final.with_name(final.name + ".partial")
    if n == 0:
        write_array(final, np.zeros(images.shape, np.uint8))
        write_json(progress_path(folder, split), {**want, "done": 0})
        return
    start = 0
    mm = None
    if same and part.is_file():
        try:
            mm = np.lib.format.open_memmap(part, mode="r+")
            if mm.shape == images.shape and mm.dtype == np.uint8:
                start = int(rec.get("done", 0))
            else:
                mm = None
        except (OSError, ValueError):
            mm = None
    if mm is None:
        progress_path(folder, split).unlink(missing_ok=True)
        mm = np.lib.format.open_memmap(part, mode="w+", dtype=np.uint8, shape=images.shape)
    if start:
        log(f"{images.desc or split}: resuming preparation at image {start:,} of {n:,}")
    last = [time.monotonic()]

    def commit(done: int, force: bool = False) -> None:
        if force or time.monotonic() - last[0] >= COMMIT_EVERY_S:
            mm.flush()
            write_json(progress_path(folder, split), {**want, "done": done})
            last[0] = time.monotonic()

    images.decode(out=mm, start=start, on_chunk=commit)
    commit(n, force=True)
    del mm
    os.replace(part, final)


def open_images(folder: Path, split: str) -> np.ndarray:
    """The split's images memory-mapped read-only (nothing is read but the header until indexed)."""
    return np.load(images_path(folder, split), mmap_mode="r")


def open_labels(folder: Path, split: str) -> np.ndarray:
    return np.load(labels_path(folder, split)).astype(np.int64, copy=False)


def iter_batches(images: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Batches of ``images`` as in-memory arrays; for a memory map, the pages of each batch are released from
    this process after it is copied (they stay in the OS page cache), so one pass keeps the RSS at a batch."""
    mm = getattr(images, "_mmap", None)
    for i in range(0, len(images), batch_size):
        batch = np.array(images[i:i + batch_size])
        if mm is not None and hasattr(mm, "madvise"):
            mm.madvise(mmap.MADV_DONTNEED)
        yield batch
