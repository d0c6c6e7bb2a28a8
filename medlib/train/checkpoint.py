"""The one checkpoint format of every trainer (the CLIP engine and the CNN baseline).

A run directory holds
- ``best.pt``: the best epoch's weights -- only what the run changed (:func:`changed_state`: trainable
  parameters, the head, buffers), stored losslessly as their difference from the run's start
  (:func:`medlib.train.delta.pack`: a fraction of the size, bit-exact when loaded); frozen towers are the
  base model's and are not copied;
- ``last.pt``: while the run is going, the last epoch's changed weights, optimizer, scheduler and RNG
  states (resume after kill -9 is exact); once it has finished, a small record (``finished: True``,
  history, best epoch) without weights or optimizer, so a re-run returns at once from ``best.pt``; a sweep's run
  evaluated once may drop ``best.pt`` too (:func:`drop_weights`, profile key ``keep_weights``).

Every file is a dict of tensors and plain values (numbers, strings, lists, tuples, dicts), written under a
temporary name and renamed into place, and read with ``torch.load(weights_only=True)``: a checkpoint never
runs code. A file that would need more (a crafted pickle) is refused with a one-line error.

Every file also carries a digest of its tensors and values (:func:`medlib.files.tensors.digest`; ``best.pt``'s packed
weights carry the digest of their decoded values): a damaged byte is a one-line error naming the file, never a
model with other weights. Files of an older format (without a digest) are refused the same way. A full disk while
writing is a one-line error naming the file; the previous checkpoint is left as it was.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..files import tensors as torchfile
from ..errors import fail
from . import delta

FORMAT = "medlib-train-checkpoint"
VERSION = 3  # 3: a digest of the tensors, checked on load
RETRAIN = "delete it and re-run with fresh=True (the run is trained again)"


def save(path: Path, obj: dict[str, Any]) -> None:
    """Write ``obj`` (tensors and plain values) to ``path`` atomically, with the format marker and the digest.

    A full disk is a one-line MedlibError naming ``path``; the previous file there is kept."""
    torchfile.save(Path(path), {"format": FORMAT, "version": VERSION, **obj},
                   then="rerun (training resumes from the last complete checkpoint)")


def load(path: Path, signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint dict at ``path`` (tensors on CPU), read without running code and checked against its digest.

    MedlibError (one line, naming the file and the fix) when the file is unreadable, needs code to load
    (anything but tensors and plain values), is not a medlib training checkpoint of this version, does not match
    its digest (damaged) or -- with ``signature`` -- was written by a run with other settings. A packed ``model``
    (``best.pt``) is checked when it is decoded: :func:`restore`.
    """
    path = Path(path)
    try:
        obj = torchfile.load(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-fixable state
        if torchfile.runs_code(exc):  # the pickle names a callable: loading it would import and run code
            raise fail(path, "refused: not a plain-tensor checkpoint (loading it would run code)",
                       "delete it and re-run with fresh=True; load only checkpoints medlib wrote") from None
        raise fail(path, f"unreadable checkpoint ({type(exc).__name__})", "delete it or pass fresh=True") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise fail(path, "not a medlib training checkpoint", "delete it or pass fresh=True to start over")
    if obj.get("version") != VERSION:
        raise fail(path, "written by another medlib version (older ones wrote no digest of the tensors, so its "
                   "weights cannot be checked)", RETRAIN)
    torchfile.verify(path, obj, RETRAIN)
    if signature is not None and obj.get("signature") != signature:
        raise fail(path, "holds a run with different settings (mode, config, data or seed)",
                   "pass fresh=True to start over, or use another run_dir")
    return obj


def restore(model: dict[str, Any], base: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint's ``model`` holds: packed ones decoded against ``base`` (the run's start) and
    checked against the digest of the values that were packed. A one-line MedlibError naming ``path`` when they do
    not match (a damaged file, or a base that is not the one the run started from)."""
    try:
        return delta.restore(model, base)
    except (KeyError, ValueError, RuntimeError, delta.CodecError):  # torchfile.DigestMismatch is a ValueError
        raise fail(path, f"{torchfile.DAMAGED} (or the model it started from has changed)", RETRAIN) from None


def drop_weights(run_dir: Path) -> None:
    """Remove a finished run's ``best.pt``, after marking its small ``last.pt`` record
    ``weights_dropped``: a re-run then returns at once without weights (its caller reads the saved metrics) instead
    of looking for them. The record is rewritten first, so a kill in between leaves a consistent run."""
    run_dir = Path(run_dir)
    last, best = run_dir / "last.pt", run_dir / "best.pt"
    record = load(last)
    if not record.get("finished"):
        raise fail(last, "the run has not finished: its weights are still needed", "let it finish first")
    if not record.get("weights_dropped"):
        record["weights_dropped"] = True
        save(last, {k: v for k, v in record.items() if k not in ("format", "version")})
    best.unlink(missing_ok=True)


# ---- what a run changed -------------------------------------------------------------------------------


def changed_state(module: nn.Module, also: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The part of ``module.state_dict()`` a run can change: trainable parameters, parameters whose names
    start with one of ``also`` (a head), and buffers (BatchNorm statistics move in train mode). Frozen
    parameters are the base model's and are left out."""
    keep = {n for n, p in module.named_parameters() if p.requires_grad or n.startswith(also)}
    params = {n for n, _ in module.named_parameters()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if k in keep or k not in params}


def load_changed_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    """Put a :func:`changed_state` back into ``module`` (built from the same base model)."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    trainable = {n for n, p in module.named_parameters() if p.requires_grad}
    if unexpected or trainable & set(missing):
        raise fail(path, "its weights do not fit this model", "pass fresh=True to start over, or use another run_dir")


# ---- RNG states as tensors and plain values -----------------------------------------------------------


def rng_state(generators: dict[str, torch.Generator] | None = None) -> dict[str, Any]:
    """python, numpy, torch (and CUDA) global RNG states plus ``generators``' states, loadable with
    ``weights_only=True`` (numpy's key array is stored as a tensor)."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    st: dict[str, Any] = {"python": random.getstate(),
                          "numpy": [kind, torch.from_numpy(np.asarray(key, dtype=np.int64)), int(pos), int(has_gauss),
                                    float(gauss)],
                          "torch": torch.get_rng_state(),
                          "gens": {k: g.get_state() for k, g in (generators or {}).items()}}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict[str, Any], generators: dict[str, torch.Generator] | None = None) -> None:
    version, internal, gauss = st["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, g = st["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, g))
    torch.set_rng_state(st["torch"])
    for k, s in st["gens"].items():
        if generators is not None and k in generators:
            generators[k].set_state(s)
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
