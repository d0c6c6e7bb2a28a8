"""Fine-tuning variants built on the engine: LP-FT (probe, then fine-tune) and WiSE-FT (weight interpolation)."""

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
from .engine import train
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


def lp_ft(bundle: ClipBundle, data: DatasetBundle, *, cfg: TrainConfig, probe_epochs: int, run_dir: Path,
          seed: int, class_texts: list[list[str]] | None = None, mode: str = "label",
          probe_lr: float | None = None, **kwargs: Any) -> TrainResult:
    """LP-FT (Kumar et al., ICLR 2022): linear probe for ``probe_epochs`` on frozen features, then a
    full fine-tune starting from the probed head. Stages live in ``run_dir/probe`` and ``run_dir/ft``;
    the returned history has both, with a ``stage`` column."""
    run_dir = Path(run_dir)
    probe_cfg = dataclasses.replace(cfg, lock_image=True, epochs=probe_epochs, lr=probe_lr or cfg.lr)
    probe = train(bundle, data, mode=mode, cfg=probe_cfg, run_dir=run_dir / "probe", seed=seed,
                  class_texts=class_texts, **kwargs)
    ft_cfg = dataclasses.replace(cfg, lock_image=False)
    ft = train(bundle, data, mode=mode, cfg=ft_cfg, run_dir=run_dir / "ft", seed=seed, class_texts=class_texts,
               init_head=probe.head, **kwargs)
    hist = pd.concat([probe.history.assign(stage="probe"), ft.history.assign(stage="ft")], ignore_index=True)
    return dataclasses.replace(ft, history=hist, run_dir=run_dir)
