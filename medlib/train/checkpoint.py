"""Checkpoint I/O for every trainer (the CLIP engine and the CNN baseline): one format, written atomically.

A checkpoint is a dict of tensors and plain python values (numbers, strings, lists, dicts) saved with
``torch.save`` under a temporary name and renamed into place (``medlib.io.write_with``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import fail
from ..io import write_with


def save(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` to ``path`` atomically (a failed write leaves the previous file intact)."""
    write_with(path, lambda tmp: torch.save(obj, tmp))


def load(path: Path) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (tensors on CPU); MedlibError if it cannot be read."""
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-fixable state
        raise fail(path, f"unreadable checkpoint ({type(exc).__name__})", "delete it or pass fresh=True") from None
