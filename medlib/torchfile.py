"""Torch files medlib writes (training checkpoints, saved models): tensors and plain values with a digest of them.

torch's zip reader checks no CRCs and nothing in a torch file hashes its tensors: a damaged byte loads as a
different weight, without an error. So every file medlib writes carries :func:`digest` of its content, and a
reader checks it (:func:`verify`) before using anything in it.

- :func:`digest`: sha256 over the tensors (name, dtype, shape, bytes) and plain values of a dict, in a fixed order.
  It is computed over the values as the program holds them, not over the stored bytes, so it holds whatever
  codec stores them: a codec's packed tensors (``medlib.train.delta``) carry the digest of their decoded values,
  checked when they are decoded.
- :func:`save`: ``torch.save`` under a temporary name, renamed into place, with ``"digest"`` added.
- :func:`runs_code`: whether a failed ``torch.load(weights_only=True)`` refused a file that would run code.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import fail
from .io import write_with

DAMAGED = "damaged: its tensors do not match the digest written with them"


class DigestMismatch(ValueError):
    """Decoded tensors differ from the digest written with them."""


# ---- the digest ---------------------------------------------------------------------------------------


def digest(obj: Any) -> str:
    """sha256 (hex) of ``obj``: a dict of tensors, or any nesting of dicts, lists and tuples of tensors and plain
    values (numbers, strings, None, ...).

    Each tensor counts by its place (the keys above it), dtype, shape and raw bytes; dict entries in the sorted
    order of their keys, so the digest does not depend on the order a file stores them in; plain values by type
    and ``repr`` (exact for floats). A dict holding a ``"codec"`` and its own ``"digest"`` (tensors packed by a
    codec, whose digest is that of their decoded values and is checked when they are decoded) counts by those two.
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
        if isinstance(obj.get("codec"), str) and isinstance(obj.get("digest"), str):
            _put(h, f"packed {obj['codec']} {obj['digest']}")
            return
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

def save(path: str | Path, obj: dict[str, Any]) -> Path:
    """Write ``obj`` (tensors and plain values) to ``path`` with ``torch.save``, atomically, adding
    ``"digest"`` (:func:`digest` of ``obj``; computed once)."""
    blob = {**obj, "digest": digest(obj)}
    return write_with(Path(path), lambda tmp: torch.save(blob, tmp))


# ---- reading ------------------------------------------------------------------------------------------


def load(path: str | Path) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors and plain values only, never code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def runs_code(exc: BaseException) -> bool:
    """Whether a failed weights-only load refused a pickle that names a callable (loading it would run code)."""
    return isinstance(exc, pickle.UnpicklingError) and "GLOBAL" in str(exc)
