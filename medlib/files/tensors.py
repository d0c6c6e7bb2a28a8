"""Torch files medlib writes (training checkpoints, saved models): tensors and plain values with a digest of them.

torch's zip reader checks no CRCs and nothing in a torch file hashes its tensors: a damaged byte loads as a
different weight, without an error. So every file medlib writes carries :func:`digest` of its content, and a
reader checks it (:func:`verify`) before using anything in it.

- :func:`digest`: sha256 over the tensors (name, dtype, shape, bytes) and plain values of a dict, in a fixed order.
  It is computed over the values as the program holds them, not over the stored bytes.
- :func:`save`: ``torch.save`` under a temporary name, renamed into place, with ``"digest"`` added; a full disk
  is a one-line error naming the file (torch's own report of it is ``unexpected pos ...``, without a path or a
  cause), and the previous file is left as it was.
- :func:`runs_code` / :func:`reason`: what a failed ``torch.load(weights_only=True)`` means, in a line that never
  repeats torch's advice to load the file in its unsafe mode (``weights_only`` off), which runs the code a
  crafted file holds.
"""

from __future__ import annotations

import errno
import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..errors import fail
from .atomic import write_with

DAMAGED = "damaged: its tensors do not match the digest written with them"


class DigestMismatch(ValueError):
    """Decoded tensors differ from the digest written with them."""


# ---- the digest ---------------------------------------------------------------------------------------


def digest(obj: Any) -> str:
    """sha256 (hex) of ``obj``: a dict of tensors, or any nesting of dicts, lists and tuples of tensors and plain
    values (numbers, strings, None, ...).

    Each tensor counts by its place (the keys above it), dtype, shape and raw bytes; dict entries in the sorted
    order of their keys, so the digest does not depend on the order a file stores them in; plain values by type
    and ``repr`` (exact for floats).
    """
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _put(h: Any, text: str) -> None:
    data = text.encode("utf-8")
    h.update(len(data).to_bytes(8, "little"))
    h.update(data)


def _feed(h: Any, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        _put(h, f"tensor {t.dtype} {tuple(t.shape)}")
        data = t.reshape(-1).view(torch.uint8).numpy()
        h.update(data.nbytes.to_bytes(8, "little"))
        h.update(data)  # hashlib reads the buffer in place (and releases the GIL)
    elif isinstance(obj, Mapping):
        _put(h, f"dict {len(obj)}")
        for key in sorted(obj, key=lambda k: (type(k).__name__, repr(k))):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, (list, tuple)):
        _put(h, f"{type(obj).__name__} {len(obj)}")
        for item in obj:
            _feed(h, item)
    else:
        _put(h, f"{type(obj).__name__} {obj!r}")


def verify(path: str | Path, obj: dict[str, Any], fix: str) -> dict[str, Any]:
    """``obj`` (a dict read from ``path``) without its ``"digest"``, after checking it against the rest; a
    one-line MedlibError (naming ``path`` and ``fix``) when it is missing or does not match."""
    stored = obj.pop("digest", None)
    if not isinstance(stored, str) or stored != digest(obj):
        raise fail(path, DAMAGED, fix)
    return obj


# ---- writing ------------------------------------------------------------------------------------------

_WRITE_ERRORS = {
    errno.ENOSPC: ("no space left on device", "free space on the disk holding {folder} (df -h {folder}) and {then}"),
    errno.EDQUOT: ("disk quota exceeded", "free space in your quota on {folder} (quota -s) and {then}"),
    errno.EFBIG: ("file too large for this shell's file-size limit",
                  "raise the limit (ulimit -f unlimited) or write to another disk, and {then}"),
}


def save(path: str | Path, obj: dict[str, Any], then: str = "rerun") -> Path:
    """Write ``obj`` (tensors and plain values) to ``path`` with ``torch.save``, atomically, adding
    ``"digest"`` (:func:`digest` of ``obj``; computed once).

    A full disk, quota or file-size limit is a one-line MedlibError naming ``path`` and the fix (free space
    and ``then``); the previous file at ``path`` is left as it was and no temporary file remains.
    """
    path = Path(path)
    blob = {**obj, "digest": digest(obj)}
    try:
        return write_with(path, lambda tmp: _torch_save(blob, tmp, path))
    except OSError as exc:
        if exc.errno not in _WRITE_ERRORS:
            raise
        problem, fix = _WRITE_ERRORS[exc.errno]
        raise fail(path, problem, fix.format(folder=path.parent, then=then)) from None


def _torch_save(blob: dict[str, Any], tmp: Path, path: Path) -> None:
    try:
        torch.save(blob, tmp)
    except RuntimeError as exc:
        # torch's writer reports a short write as "[enforce fail at inline_container.cc:...] unexpected pos" (or
        # "file write failed"), without the OS error behind it. Writing a little more to the same file shows it:
        # the disk is still full (or the quota, or the file-size limit, still reached).
        if not any(s in str(exc) for s in ("inline_container", "PytorchStreamWriter", "file write failed")):
            raise
        cause = _write_probe(tmp)
        if cause is not None:
            raise cause from None
        raise fail(path, "could not be written (a write stopped short; the disk reported no cause)",
                   f"check the disk holding {path.parent} (df -h {path.parent}) and rerun") from None


def _write_probe(tmp: Path) -> OSError | None:
    try:
        with open(tmp, "ab") as fh:
            fh.write(bytes(1 << 20))
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        return exc
    return None


# ---- reading ------------------------------------------------------------------------------------------


def load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def runs_code(exc: BaseException) -> bool:
    """Whether a failed weights-only load refused a pickle that names a callable (loading it would run code)."""
    return isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc)


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's weights-only refusal of a file (a pickle with more than tensors and plain values)."""
    return isinstance(exc, pickle.UnpicklingError) or "Weights only load failed" in str(exc)


def reason(exc: BaseException) -> str:
    """One line on why a torch file could not be read: torch's first line, except for a weights-only refusal,
    whose text advises torch's unsafe loading mode (``weights_only`` off: it runs whatever code the file holds)
    and is not repeated."""
    text = str(exc)
    if refused(exc) or "weights_only" in text:
        return "it holds more than tensors and plain values"
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]

