"""The one checkpoint format of every trainer (the CLIP engine and the CNN baseline): plain tensors, readable
without medlib.

A run directory holds
- ``best.pt``: the best epoch's weights -- only what the run changed (:func:`changed_state`: trainable
  parameters, the head, buffers) as a plain state dict under ``"model"``; frozen towers are the base model's and
  are not copied (``"base"``: the digest of those frozen weights, :func:`frozen_digest`, checked when the
  checkpoint is put back into a model built from the base);
- ``last.pt``: while the run is going, the last epoch's changed weights, optimizer, scheduler and RNG
  states (resume after kill -9 is exact); once it has finished, a small record (``finished: True``,
  history, best epoch) without weights or optimizer, so a re-run returns at once from ``best.pt``; a sweep's run
  evaluated once may drop ``best.pt`` too (:func:`drop_weights`, profile key ``keep_weights``).

Every file is a dict of tensors and plain values (numbers, strings, lists, tuples, dicts), written with
``torch.save`` under a temporary name and renamed into place. Any PyTorch user reads it without medlib::

    ckpt = torch.load("runs/<profile>/<run>/best.pt", weights_only=True)
    state = ckpt["model"]   # {name: tensor}: what the run changed, e.g. for model.load_state_dict(state, strict=False)

medlib reads it the same way (``weights_only=True``: a checkpoint never runs code; a file that would need more,
a crafted pickle, is refused with a one-line error). Every file also carries a digest of its tensors and values
(:func:`medlib.files.tensors.digest`): a damaged byte is a one-line error naming the file, never a model with other
weights. Files of another format version are refused the same way. A full disk while writing is a one-line error
naming the file; the previous checkpoint is left as it was.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn as nn

from ..files import tensors as torchfile
from ..errors import fail

FORMAT = "medlib-train-checkpoint"
VERSION = 4  # 3: a digest of the tensors, checked on load; 4: best.pt holds plain tensors
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
    its digest (damaged) or -- with ``signature`` -- was written by a run with other settings.
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
        raise fail(path, f"written by another medlib version (checkpoint format {obj.get('version')!r}; this "
                   f"medlib reads format {VERSION})", RETRAIN)
    torchfile.verify(path, obj, RETRAIN)
    if signature is not None and obj.get("signature") != signature:
        raise fail(path, "holds a run with different settings (mode, config, data or seed)",
                   "pass fresh=True to start over, or use another run_dir")
    return obj


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


def finished_best(run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """``(path, checkpoint)`` of the best epoch of the finished run in ``run_dir`` (LP-FT: of its fine-tune stage,
    ``ft/``), read and checked by :func:`load`; a one-line MedlibError when there is no finished run there or its
    weights were not kept."""
    run_dir = Path(run_dir)
    folder = run_dir / "ft" if (run_dir / "ft" / "last.pt").is_file() else run_dir
    last, best = folder / "last.pt", folder / "best.pt"
    if not last.is_file():
        raise fail(run_dir, "holds no training run (no last.pt)", "pass the runs/<profile>/<run>/ folder of a "
                   "finished run")
    record = load(last)
    if not record.get("finished"):
        raise fail(last, "the run has not finished", "let it finish (re-run its notebook), then try again")
    if record.get("weights_dropped") or not best.is_file():
        raise fail(run_dir, "its weights were not kept (under keep_weights: reused a sweep's run keeps only its log "
                   "and metrics)", "set keep_weights: all in the profile and train the run again (fresh=True)")
    return best, load(best)


# ---- what a run changed -------------------------------------------------------------------------------


def changed_state(module: nn.Module, also: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """The part of ``module.state_dict()`` a run can change: trainable parameters, parameters whose names
    start with one of ``also`` (a head), and buffers (BatchNorm statistics move in train mode). Frozen
    parameters are the base model's and are left out."""
    keep = {n for n, p in module.named_parameters() if p.requires_grad or n.startswith(also)}
    params = {n for n, _ in module.named_parameters()}
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items() if k in keep or k not in params}


def frozen_digest(module: nn.Module, changed: Iterable[str]) -> str:
    """The digest of ``module``'s state entries outside ``changed`` (the names a checkpoint holds): the base
    model's frozen weights, which a checkpoint does not copy and takes from the model it is loaded into."""
    changed = set(changed)
    return torchfile.digest({k: v for k, v in module.state_dict().items() if k not in changed})


def load_changed_state(module: nn.Module, state: dict[str, torch.Tensor], path: Path,
                       base: str | None = None) -> None:
    """Put a :func:`changed_state` back into ``module`` (built from the same base model).

    ``base``: the checkpoint's :func:`frozen_digest`; a one-line MedlibError naming ``path`` when ``module``'s
    frozen weights differ from the ones the run trained with (another base model, or another seed of a
    random-init one), since the result would mix two models."""
    if base is not None and frozen_digest(module, state) != base:
        raise fail(path, "was trained from another base model (the frozen weights it does not copy differ from "
                   "this model's)", "load the model the run started from (the same profile model and seed), or "
                   "pass fresh=True to train again")
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
