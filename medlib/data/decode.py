"""Decoding image files into prepared arrays: reduced-size decoding, in a process pool, resumable by chunks.

:class:`ImageFiles` is a not-yet-decoded image column: the files, the index line that lists each one, and the
prepared size. Loaders build splits from it (subsetting and capping cost nothing); the prepared-split store
decodes it straight into a memory-mapped file (resuming where an interrupted preparation stopped), and
:func:`~medlib.data.load_dataset` decodes it into memory.

Reduced-size decoding (:func:`decode_file`), for images at least :data:`REDUCE_FROM` times the target side: a
JPEG is decoded by libjpeg's DCT-domain scaling (``Image.draft``: 1/2, 1/4 or 1/8 scale, never below the target
side), any image is then box-reduced by an integer factor keeping at least :data:`OVERSAMPLE` times the target
side (``Image.reduce``), and the same antialiased bilinear resize as the full decode finishes. Stated tolerance against
the full decode + resize (tests/test_data_scale.py, on 1024 px PNGs and 2544x3056 JPEGs): mean absolute
difference <= :data:`TOLERANCE_MEAN_ABS` grey level (measured 0.2-0.3). Smaller images (every smoke fixture,
64 px -> 28 px) take the full decode + resize, bit for bit.

The pool is the standard library's ``ProcessPoolExecutor`` on the ``forkserver`` start method: workers fork from a
small single-threaded server process (started once per Python process, with this module preloaded), never from
the caller, which may hold torch's or a Jupyter kernel's threads. Chunks come back in order, so what is written is always a prefix of the split and a preparation
can record "first N done" and resume from N. A worker's error is the same one-line MedlibError naming the image
and the index file's line as in one process.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from . import image_errors

REDUCE_FROM = 4  # reduced decoding only for images at least 4x the target side (smaller ones: the full decode)
JPEG_OVERSAMPLE = 1  # JPEG draft keeps >= 1x the target side (libjpeg's DCT scaling is itself an area filter)
OVERSAMPLE = 2  # Image.reduce keeps >= 2x the target side, then the antialiased resize does the rest
TOLERANCE_MEAN_ABS = 1.0  # grey levels, reduced vs full decode (measured 0.2-0.3 on 1024 px PNG, 2544x3056 JPEG)
CHUNK = 64  # images per pool task and per resume record (fewer for small sets, see chunk_plan)
CHUNKS_PER_WORKER = 4  # a small set is cut into at least this many chunks per worker (they even out a busy core)
PARALLEL_MIN = 256  # fewer images than this decode in-process (a pool's start-up costs more than it saves)


#: PIL modes with more than 8 bits per grey value (16-bit PNG, 32-bit integer, 32-bit float).
WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


def to_8bit(im: Any) -> Any:
    """A 16-bit / 32-bit integer / float grey image -> 8-bit ``L``, scaled by the image's own value range.

    ``convert("L")`` clips such values at 255 (a DICOM-derived 16-bit PNG, values 0..4095, turns white).
    Here ``v -> round(255 * (v - min) / (max - min))`` (a constant image -> 0; NaN -> the minimum), the
    window DICOM-to-PNG exports need. Other modes are returned unchanged.
    """
    from PIL import Image

    if im.mode not in WIDE_MODES:
        return im
    a = np.asarray(im).astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        return Image.fromarray(np.zeros(a.shape, np.uint8), "L")
    lo, hi = float(a[finite].min()), float(a[finite].max())
    a = np.where(finite, a, lo)
    scaled = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    return Image.fromarray(np.rint(scaled).clip(0, 255).astype(np.uint8), "L")


def pil_to_array(im: Any, size: int, rgb: bool) -> np.ndarray:
    """PIL image -> uint8 array resized to (size, size) (PIL's antialiased bilinear filter).

    Images with more than 8 bits per value are first scaled to 8 bits by their value range (:func:`to_8bit`).
    """
    from PIL import Image

    im = to_8bit(im).convert("RGB" if rgb else "L")
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def worker_count(workers: int = 0) -> int:
    """``workers`` if > 0, else every core this process may use."""
    if workers > 0:
        return workers
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def chunk_plan(n: int, workers: int) -> tuple[int, int]:
    """(processes, images per chunk) to decode ``n`` images with up to ``workers`` processes.

    One process below :data:`PARALLEL_MIN` images. In a pool, chunks of :data:`CHUNK`, smaller when there are
    few images, so that every worker gets several chunks (a pool of 2 given one chunk of 48 images used one).
    """
    if workers <= 1 or n < max(PARALLEL_MIN, 2):
        return 1, CHUNK
    step = max(1, min(CHUNK, -(-n // (CHUNKS_PER_WORKER * workers))))
    return min(workers, -(-n // step)), step


def pool_context() -> Any:
    """The pool's ``forkserver`` context; its server preloads this module and PIL with its PNG/JPEG plugins once,
    so that workers fork with them imported instead of each importing them on its first image.

    multiprocessing also re-runs the caller's main module in every worker: cheap for a notebook kernel
    (``ipykernel_launcher``) and ``python -m medlib``; a script that imports torch pays that import once per
    worker and pool (Python 3.11's forkserver ignores a ``"__main__"`` preload for scripts).
    """
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    # takes effect when the server starts (once per Python process)
    ctx.set_forkserver_preload([__name__, "PIL.Image", "PIL.PngImagePlugin", "PIL.JpegImagePlugin"])
    return ctx


def decode_file(path: Path | str, size: int, rgb: bool, reduced: bool = True) -> np.ndarray:
    """One image file -> uint8 (size, size) or (size, size, 3); ``reduced=False`` is the full decode + resize."""
    from PIL import Image

    with Image.open(path) as im:
        if not reduced or min(im.size) < REDUCE_FROM * size:
            return pil_to_array(im, size, rgb)
        if im.format == "JPEG":  # DCT-domain scaling by 1/2, 1/4 or 1/8; the result stays >= size on both sides
            im.draft(im.mode, (JPEG_OVERSAMPLE * size, JPEG_OVERSAMPLE * size))
        im = to_8bit(im)
        if not rgb or im.mode != "L":  # to the target mode first when that drops channels (less to reduce)...
            im = im.convert("RGB" if rgb else "L")
        factor = min(im.size) // (OVERSAMPLE * size)
        if factor >= 2:  # box-reduce by an integer factor, keeping >= OVERSAMPLE x the target side
            im = im.reduce(factor)
        return pil_to_array(im, size, rgb)  # ...after reducing when it adds them (grey -> RGB: same pixels)


def read_image(path: Path, size: int, rgb: bool, index_file: str | Path, where: str = "",
               reduced: bool = False) -> np.ndarray:
    """One image file -> uint8 (size, size) grayscale or (size, size, 3) RGB; MedlibError naming both files.

    ``where`` (e.g. "line 5") says which row of ``index_file`` lists the image (messages: :mod:`.image_errors`);
    ``reduced``: reduced-size decoding (:func:`decode_file`), as the prepared splits use.
    """
    if not Path(path).is_file():
        raise image_errors.missing(path, index_file, where)
    try:
        return decode_file(path, size, rgb, reduced)
    except image_errors.read_errors() as exc:
        raise image_errors.unreadable(path, exc, index_file, where) from None


def _decode_chunk(job: tuple) -> np.ndarray:
    """Pool task: decode a chunk of files into one array (module-level so spawned workers can import it)."""
    paths, wheres, size, rgb, index_file, reduced = job
    shape = (len(paths), size, size, 3) if rgb else (len(paths), size, size)
    out = np.empty(shape, np.uint8)
    for i, (p, w) in enumerate(zip(paths, wheres)):
        out[i] = read_image(p, size, rgb, index_file, w, reduced)
    return out


@dataclass
class ImageFiles:
    """A column of image files to be decoded to ``size`` px (uint8): what a Split holds before preparation.

    ``wheres[i]`` says where the index file lists ``paths[i]`` (e.g. "line 5"), for error messages. Indexing
    with a slice, an index array or a boolean mask gives another ImageFiles (nothing is decoded).
    """

    paths: list[Path]
    size: int
    rgb: bool
    index_file: Path | str
    wheres: list[str] = field(default_factory=list)
    workers: int = 0
    reduced: bool = True
    desc: str = ""

    def __post_init__(self) -> None:
        self.paths = [Path(p) for p in self.paths]
        if not self.wheres:
            self.wheres = [""] * len(self.paths)

    # -- array-like surface used by Split, finish() and the store --------------------------------------------
    dtype = np.dtype(np.uint8)

    @property
    def shape(self) -> tuple[int, ...]:
        n = len(self.paths)
        return (n, self.size, self.size, 3) if self.rgb else (n, self.size, self.size)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, idx: Any) -> "ImageFiles":
        if isinstance(idx, slice):
            pick = range(len(self.paths))[idx]
        else:
            idx = np.asarray(idx)
            pick = np.flatnonzero(idx) if idx.dtype == bool else idx.astype(np.int64).ravel()
        return ImageFiles([self.paths[i] for i in pick], self.size, self.rgb, self.index_file,
                          [self.wheres[i] for i in pick], self.workers, self.reduced, self.desc)

    def fingerprint(self) -> str:
        """sha256 of what decides the decoded pixels (files, size, mode, decoder): a resume must match it."""
        import hashlib

        h = hashlib.sha256(f"{self.size}|{self.rgb}|{self.reduced}".encode())
        for p in self.paths:
            h.update(str(p).encode() + b"\0")
        return h.hexdigest()[:16]

    # -- decoding ------------------------------------------------------------------------------------------------
    def decode(self, out: np.ndarray | None = None, start: int = 0,
               on_chunk: Callable[[int], None] | None = None) -> np.ndarray:
        """Decode images ``start..`` into ``out`` (a new array when None) and return it.

        ``on_chunk(done)`` runs after each chunk with the count of images decoded so far, always a prefix
        (rows ``0..done-1`` are final), so a caller can record it and resume from ``done`` later.
        """
        from tqdm.auto import tqdm

        from ..progress import enabled as progress_enabled

        out = np.empty(self.shape, np.uint8) if out is None else out
        n = len(self.paths)
        workers, step = chunk_plan(n - start, worker_count(self.workers))
        starts = list(range(start, n, step))
        jobs = ((self.paths[s:s + step], self.wheres[s:s + step], self.size, self.rgb, str(self.index_file),
                 self.reduced) for s in starts)
        bar = tqdm(total=n, initial=start, desc=self.desc or "decode images", leave=False,
                   disable=n - start < 500 or not progress_enabled())
        try:
            if workers <= 1:
                results = map(_decode_chunk, jobs)
                for s, arr in zip(starts, results):
                    self._put(out, s, arr, bar, on_chunk)
            else:
                self._pool(out, starts, jobs, workers, bar, on_chunk)
        finally:
            bar.close()
        return out

    def _put(self, out: np.ndarray, s: int, arr: np.ndarray, bar: Any, on_chunk: Callable[[int], None] | None) -> None:
        out[s:s + len(arr)] = arr
        bar.update(len(arr))
        if on_chunk is not None:
            on_chunk(s + len(arr))

    def _pool(self, out: np.ndarray, starts: Sequence[int], jobs: Any, workers: int, bar: Any,
              on_chunk: Callable[[int], None] | None) -> None:
        from concurrent.futures import ProcessPoolExecutor

        window = 4 * workers  # chunks in flight: bounded memory, results consumed in order
        ex = ProcessPoolExecutor(workers, mp_context=pool_context())
        pending: deque = deque()
        it = zip(starts, jobs)
        try:
            for s, job in it:
                pending.append((s, ex.submit(_decode_chunk, job)))
                if len(pending) >= window:
                    s0, fut = pending.popleft()
                    self._put(out, s0, fut.result(), bar, on_chunk)
            while pending:
                s0, fut = pending.popleft()
                self._put(out, s0, fut.result(), bar, on_chunk)
        except BaseException:
            ex.shutdown(wait=True, cancel_futures=True)
            raise
        ex.shutdown(wait=False)  # every result is in: the idle workers exit on their own, nobody waits for them


def image_files(paths: Sequence[Path], size: int, rgb: bool, index_file: str | Path, desc: str = "",
                first_line: int | None = None, wheres: Sequence[str] | None = None, workers: int = 0) -> Any:
    """The images as a not-yet-decoded :class:`~medlib.data.decode.ImageFiles` column (decoded when prepared).

    ``first_line``: the line of ``index_file`` that lists ``paths[0]`` (rows in order); or ``wheres``: per image.
    """
    if wheres is None:
        wheres = [f"line {first_line + i}" for i in range(len(paths))] if first_line is not None else []
    return ImageFiles(list(paths), size, rgb, index_file, list(wheres), workers, desc=desc)


def read_images(paths: Sequence[Path], size: int, rgb: bool, index_file: str | Path, desc: str,
                first_line: int | None = None, workers: int = 0) -> np.ndarray:
    """Read many images (reduced-size decoding, a process pool for many files, tqdm progress) into one array."""
    return image_files(paths, size, rgb, index_file, desc, first_line, workers=workers).decode()


def materialize(images: Any) -> np.ndarray:
    """``images`` as a uint8 array in memory (decoding an :class:`ImageFiles`)."""
    return images.decode() if isinstance(images, ImageFiles) else images
