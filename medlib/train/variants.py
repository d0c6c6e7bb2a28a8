"""How a model is trained: :func:`train` with a ``variant`` (fine-tune, linear probe, LP-FT), each a run of the
engine's loop (:func:`medlib.train.fit.fit`); and WiSE-FT (weight interpolation, no training of its own)."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..config import TrainConfig
from ..data.base import DatasetBundle
from ..errors import MedlibError
from ..models import ClipBundle
from .fit import fit
from .heads import ClipClassifier, head_from_texts
from .result import TrainResult


def wise_interpolate(zero_shot_state: dict[str, torch.Tensor], finetuned_state: dict[str, torch.Tensor],
                     alpha: float) -> dict[str, torch.Tensor]:
    """WiSE-FT (Wortsman et al., CVPR 2022): ``theta = (1 - alpha) * theta_zs + alpha * theta_ft``.

    Floating tensors are interpolated (alpha 0 / 1 return the endpoints exactly); other tensors
    (integer buffers) are taken from the fine-tuned state.
    """
    if set(zero_shot_state) != set(finetuned_state):
        diff = sorted(set(zero_shot_state) ^ set(finetuned_state))[:5]
        raise MedlibError(f"wise_interpolate: the two states have different keys ({diff}). Fix: use the same model")
    out = {}
    for k, ft in finetuned_state.items():
        zs = zero_shot_state[k]
        if not torch.is_floating_point(ft) or alpha == 1.0:
            out[k] = ft.detach().clone()
        elif alpha == 0.0:
            out[k] = zs.detach().clone().to(ft)
        else:
            out[k] = ((1 - alpha) * zs.to(ft) + alpha * ft).detach()
    return out


def wise_ft(result: TrainResult, zero_shot: ClipBundle, class_texts: list[list[str]], alpha: float,
            negative_texts: list[list[str]] | None = None) -> TrainResult:
    """WiSE-FT model for label/multilabel results: interpolate the zero-shot CLIP + text-initialised
    head (multilabel: from ``class_texts`` and ``negative_texts``, as the engine initialises it) with the
    fine-tuned CLIP + head. Returns a new TrainResult (history of the fine-tune)."""
    if result.head is None:
        raise MedlibError("wise_ft: the result has no head. Fix: use a label or multilabel result")
    if result.mode == "multilabel" and negative_texts is None:
        raise MedlibError("wise_ft: a multilabel result needs negative_texts (its zero-shot end). "
                          "Fix: pass medlib.models.prompts.negative_prompts(class_names, domain)")
    zs_head = head_from_texts(zero_shot, class_texts, negative_texts if result.mode == "multilabel" else None)
    zs_model = ClipClassifier(zero_shot.model, zs_head)
    ft_model = ClipClassifier(result.model.model, result.head)
    mixed = ClipClassifier(copy.deepcopy(result.model.model), copy.deepcopy(result.head))
    mixed.load_state_dict(wise_interpolate(zs_model.state_dict(), ft_model.state_dict(), alpha))
    bundle = dataclasses.replace(result.model, model=mixed.clip)
    return dataclasses.replace(result, model=bundle, head=mixed.head)


VARIANTS = ("fine_tune", "linear_probe", "lp_ft")


def train(bundle: ClipBundle, data: DatasetBundle, *, mode: str, cfg: TrainConfig, run_dir: Path, seed: int,
          variant: str = "fine_tune", probe_epochs: int | None = None, probe_lr: float | None = None,
          **kwargs: Any) -> TrainResult:
    """Train a copy of ``bundle`` on ``data`` (resumable under ``run_dir``) and return the best epoch's model.

    ``variant``: ``fine_tune`` -- one run with ``cfg`` as given (its ``lock_image``/``lock_text`` choose what
    trains); ``linear_probe`` -- the image tower frozen, ``probe_epochs`` at ``probe_lr`` (:func:`probe_config`);
    ``lp_ft`` -- the linear probe, then a fine-tune from the probed head (:func:`lp_ft`). ``kwargs`` go to the
    engine (:func:`medlib.train.fit.fit`: class texts, loss, sampler, ``fresh``, ...).
    """
    if variant == "fine_tune":
        return fit(bundle, data, mode=mode, cfg=cfg, run_dir=run_dir, seed=seed, **kwargs)
    if variant == "linear_probe":
        return fit(bundle, data, mode=mode, cfg=probe_config(cfg, probe_epochs, probe_lr), run_dir=run_dir,
                   seed=seed, **kwargs)
    if variant == "lp_ft":
        return lp_ft(bundle, data, mode=mode, cfg=cfg, run_dir=run_dir, seed=seed, probe_epochs=probe_epochs,
                     probe_lr=probe_lr, **kwargs)
    raise MedlibError(f"train: unknown variant {variant!r}. Fix: use one of {VARIANTS}")


def probe_config(cfg: TrainConfig, epochs: int | None, lr: float | None) -> TrainConfig:
    """``cfg`` for a linear probe: the image tower frozen, ``epochs`` (default ``cfg.epochs``) at ``lr`` (default
    ``cfg.lr``): a head alone takes a larger step."""
    return dataclasses.replace(cfg, lock_image=True, epochs=epochs or cfg.epochs, lr=lr or cfg.lr)


def lp_ft(bundle: ClipBundle, data: DatasetBundle, *, cfg: TrainConfig, probe_epochs: int | None, run_dir: Path,
          seed: int, class_texts: list[list[str]] | None = None, mode: str = "label",
          probe_lr: float | None = None, **kwargs: Any) -> TrainResult:
    """LP-FT (Kumar et al., ICLR 2022): linear probe for ``probe_epochs`` on frozen features, then a
    full fine-tune starting from the probed head. Stages live in ``run_dir/probe`` and ``run_dir/ft``;
    the returned history has both, with a ``stage`` column."""
    run_dir = Path(run_dir)
    probe = fit(bundle, data, mode=mode, cfg=probe_config(cfg, probe_epochs, probe_lr), run_dir=run_dir / "probe",
                seed=seed, class_texts=class_texts, **kwargs)
    ft_cfg = dataclasses.replace(cfg, lock_image=False)
    ft = fit(bundle, data, mode=mode, cfg=ft_cfg, run_dir=run_dir / "ft", seed=seed, class_texts=class_texts,
             init_head=probe.head, **kwargs)
    hist = pd.concat([probe.history.assign(stage="probe"), ft.history.assign(stage="ft")], ignore_index=True)
    return dataclasses.replace(ft, history=hist, run_dir=run_dir)
