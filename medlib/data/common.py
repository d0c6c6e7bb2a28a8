"""Helpers every source module shares: paths, hashing, image reading, stratified splits, caps, the manifest."""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..config import DatasetSpec, Profile
from ..errors import MedlibError, fail
from . import image_errors
from .base import SPLITS, TASKS, DatasetBundle, Split

GENERATED_LICENSE = "generated (no licence needed)"


def resolve_path(profile: Profile, spec: DatasetSpec, default: str = "") -> Path:
    """``spec.path`` (or ``default``) relative to ``profile.data_dir`` unless absolute."""
    p = Path(spec.path or default).expanduser()
    return p if p.is_absolute() else profile.data_path / p


def fixture_dir(profile: Profile, *parts: str) -> Path:
    """``<data_dir>/fixtures/<parts...>``: where generated stand-ins live."""
    return profile.data_path.joinpath("fixtures", *parts)


def rng_for(profile: Profile, spec: DatasetSpec, purpose: str) -> np.random.Generator:
    """A Generator seeded from the profile seed, the dataset name and a purpose (independent streams)."""
    return np.random.default_rng([profile.seed, zlib.crc32(spec.name.encode()), zlib.crc32(purpose.encode())])


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def read_image(path: Path, size: int, rgb: bool, index_file: str | Path, where: str = "") -> np.ndarray:
    """One image file -> uint8 (size, size) grayscale or (size, size, 3) RGB; MedlibError naming both files.

    ``where`` (e.g. "line 5") says which row of ``index_file`` lists the image (messages: :mod:`.image_errors`).
    """
    from PIL import Image

    if not Path(path).is_file():
        raise image_errors.missing(path, index_file, where)
    try:
        with Image.open(path) as im:
            return pil_to_array(im, size, rgb)
    except image_errors.read_errors() as exc:
        raise image_errors.unreadable(path, exc, index_file, where) from None


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


def image_files(paths: Sequence[Path], size: int, rgb: bool, index_file: str | Path, desc: str = "",
                first_line: int | None = None, wheres: Sequence[str] | None = None, workers: int = 0) -> Any:
    """The images as a not-yet-decoded :class:`~medlib.data.decode.ImageFiles` column (decoded when prepared).

    ``first_line``: the line of ``index_file`` that lists ``paths[0]`` (rows in order); or ``wheres``: per image.
    """
    from .decode import ImageFiles

    if wheres is None:
        wheres = [f"line {first_line + i}" for i in range(len(paths))] if first_line is not None else []
    return ImageFiles(list(paths), size, rgb, index_file, list(wheres), workers, desc=desc)


def read_images(paths: Sequence[Path], size: int, rgb: bool, index_file: str | Path, desc: str,
                first_line: int | None = None, workers: int = 0) -> np.ndarray:
    """Read many images (reduced-size decoding, a process pool for many files, tqdm progress) into one array."""
    return image_files(paths, size, rgb, index_file, desc, first_line, workers=workers).decode()


def read_table_file(path: Path, need: Sequence[str], *, missing: str, unreadable_fix: str, columns_fix: str,
                    **read_kw: Any) -> Any:
    """A CSV as a DataFrame with the columns ``need``, or a one-line MedlibError naming the file and the fix.

    ``missing``: the fix when the file is absent; ``unreadable_fix``: when pandas cannot parse it (it raises many
    types for a malformed file); ``columns_fix``: when columns are missing. ``read_kw`` goes to ``pd.read_csv``.
    """
    import pandas as pd

    if not Path(path).is_file():
        raise fail(path, "not found", missing)
    try:
        df = pd.read_csv(path, **read_kw)
    except Exception as exc:  # ParserError, UnicodeDecodeError, EOFError/BadGzipFile, EmptyDataError, ...
        raise fail(path, f"unreadable CSV ({type(exc).__name__})", unreadable_fix) from None
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise fail(path, f"missing column(s) {miss}", columns_fix)
    return df


def check_hub_reachable(what: str, local_fix: str) -> None:
    """Fail at once (instead of after huggingface_hub's ~25 s of retries) when the hub cannot be reached.

    Skipped when the user chose offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: a local HF cache may
    serve the request) or routes through a proxy (a direct probe would not tell).
    """
    import os
    import socket
    from urllib.parse import urlparse

    env = os.environ
    if any(env.get(k, "").strip() not in ("", "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return
    if any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    host = urlparse(env.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        raise fail(what, f"cannot reach {host} (offline?)",
                   f"go online once, set HF_DATASETS_OFFLINE=1 to use a cached copy, or {local_fix}") from None


def strata_of(labels: np.ndarray) -> np.ndarray:
    """A 1-D stratum per example: the class (multiclass), first positive label or C (multi-label)."""
    if labels.ndim == 2:
        has = labels.any(axis=1)
        return np.where(has, labels.argmax(axis=1), labels.shape[1])
    return labels


def stratified_parts(strata: np.ndarray, fractions: Sequence[float], rng: np.random.Generator) -> list[np.ndarray]:
    """Split ``arange(len(strata))`` into parts of the given fractions, class by class.

    Own code rather than sklearn's ``train_test_split(stratify=...)``, which refuses classes with fewer
    than 2 members and cannot do a 3-way split in one call; rare classes land in the first parts.
    """
    cum = np.cumsum(fractions) / float(np.sum(fractions))
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for c in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == c))
        bounds = np.round(cum * len(idx)).astype(int)[:-1]
        for part, chunk in zip(parts, np.split(idx, bounds)):
            part.append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) if p else np.zeros(0, np.int64) for p in parts]


def cap_indices(strata: np.ndarray, max_n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a stratified-ish random subset of at most ``max_n`` (all when max_n <= 0)."""
    n = len(strata)
    if max_n <= 0 or n <= max_n:
        return np.arange(n, dtype=np.int64)
    frac = max_n / n
    keep: list[int] = []
    rest: list[int] = []
    for c in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == c))
        k = max(1, int(np.floor(len(idx) * frac)))
        keep.extend(idx[:k])
        rest.extend(idx[k:])
    keep_a, rest_a = np.array(keep), rng.permutation(np.array(rest, dtype=np.int64))
    if len(keep_a) > max_n:
        keep_a = rng.choice(keep_a, size=max_n, replace=False)
    elif len(keep_a) < max_n:
        keep_a = np.concatenate([keep_a, rest_a[: max_n - len(keep_a)]])
    return np.sort(keep_a).astype(np.int64)


def take(split: Split, idx: np.ndarray) -> Split:
    """Subset of a split (``Split.subset``)."""
    return split.subset(idx)


def empty_split(size: int, rgb: bool) -> Split:
    """A split with no examples (retrieval sets have only ``test``)."""
    shape = (0, size, size, 3) if rgb else (0, size, size)
    return Split(np.zeros(shape, np.uint8), np.zeros(0, np.int64), [], [])


def counts(task: str, class_names: list[str], splits: dict[str, Split]) -> dict[str, dict[str, int]]:
    """{split: {class: n}}: examples per class (multiclass) or positives per label (multi-label)."""
    out: dict[str, dict[str, int]] = {}
    for name, s in splits.items():
        if task == "multilabel":
            sums = s.labels.sum(axis=0) if len(s) else np.zeros(len(class_names), np.int64)
            out[name] = {c: int(v) for c, v in zip(class_names, sums)}
        elif task == "multiclass":
            bc = np.bincount(s.labels, minlength=len(class_names)) if len(s) else np.zeros(len(class_names), int)
            out[name] = {c: int(v) for c, v in zip(class_names, bc)}
        else:
            out[name] = {}
    return out


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


def warn_synthetic(name: str, source: str) -> None:
    """The one console line per generated dataset (stderr; no warning class, no source-line echo)."""
    print(f"GENERATED {name}: a generated stand-in ({source}) is used, not the real dataset; its numbers are "
          "NOT results", file=sys.stderr, flush=True)


# ---- where the data comes from: one ladder for every source -------------------------------------------


def check_kind(path: Path, want: str, what: str, fix: str, stop: Path | None = None) -> None:
    """Raise a one-line MedlibError when ``path`` (or a folder above it, up to ``stop``) exists with the wrong
    kind: a file where a folder belongs or a folder where a file belongs. A missing path is not an error here."""
    path = Path(path)
    chain = []
    for parent in path.parents:
        chain.append(parent)
        if stop is None or parent == stop:
            break
    for parent in reversed(chain):  # the outermost wrong folder first
        if os.path.lexists(parent) and not parent.is_dir():
            raise fail(parent, f"is a file, but {what} expects a folder here", fix)
    if want == "file" and path.is_dir():
        raise fail(path, f"is a folder, but {what} expects a file here", fix)
    if want == "dir" and os.path.lexists(path) and not path.is_dir():
        raise fail(path, f"is a file, but {what} expects a folder here", fix)


def choose_source(spec: DatasetSpec, *, present: bool, missing: MedlibError, remote: bool = False,
                  fallback: bool = False) -> str:
    """The source-selection ladder every loader follows; returns 'generated', 'real', 'hub' or 'fallback'.

    1. ``synthetic: always`` -> 'generated' (the source's fixture);
    2. the real/local copy is ``present`` -> 'real';
    3. ``remote`` (download allowed and a place to download from) -> 'hub';
    4. ``fallback`` (another dataset stands in) -> 'fallback';
    5. ``synthetic: auto`` -> 'generated';
    6. otherwise ``missing`` is raised (a one-line error naming the file and how to get it).
    Wrong-kind paths are checked by the caller (:func:`check_kind`) before, so they never fall through to 5.
    """
    if spec.synthetic == "always":
        return "generated"
    if present:
        return "real"
    if remote:
        return "hub"
    if fallback:
        return "fallback"
    if spec.synthetic == "auto":
        return "generated"
    raise missing


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
