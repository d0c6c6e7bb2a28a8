"""Training losses: CLIP contrastive (open_clip's), label-aware contrastive, focal, class-balanced,
logit-adjusted, and weighted BCE / focal for multi-label.

Every function takes tensors and returns a scalar loss tensor (mean over the batch); class weights
and priors are computed from the training labels by :mod:`medlib.train.class_weights`.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torchvision.ops import sigmoid_focal_loss

from ..errors import MedlibError
from . import class_weights

LABEL_LOSSES = ("ce", "weighted_ce", "focal", "logit_adjust")
MULTILABEL_LOSSES = ("bce", "weighted_bce", "focal", "logit_adjust")

_CLIP_LOSS = ClipLoss()  # single process; no label caching, so any batch size works


def clip_loss(image_f: torch.Tensor, text_f: torch.Tensor, logit_scale: torch.Tensor, *, rank: int = 0,
              world_size: int = 1) -> torch.Tensor:
    """Symmetric InfoNCE of CLIP (Radford et al. 2021) through ``open_clip.loss.ClipLoss``.

    ``image_f``/``text_f`` are L2-normalised (B, D); ``logit_scale`` is the *exponentiated* scale. With
    several processes each passes its rows of the global batch and the features are gathered with their
    gradients (``ClipLoss(local_loss=True, gather_with_grad=True)``, as open_clip's training script): the
    negatives are the global batch and the mean over ranks of this loss is the single-process loss.
    """
    if world_size == 1:
        return _CLIP_LOSS(image_f, text_f, logit_scale)
    return ClipLoss(local_loss=True, gather_with_grad=True, rank=rank, world_size=world_size)(
        image_f, text_f, logit_scale)


def label_aware_targets(labels: torch.Tensor) -> torch.Tensor:
    """(B, B) soft targets: row i is uniform over the items j that share i's label (i included).

    ``labels`` is (B,) class indices, or (B, C) multi-hot rows (items match when the rows are equal).
    """
    if labels.ndim == 1:
        same = labels[:, None] == labels[None, :]
    else:
        same = (labels[:, None, :] == labels[None, :, :]).all(dim=-1)
    same = same.float()
    return same / same.sum(dim=1, keepdim=True)


def label_aware_clip_loss(image_f: torch.Tensor, text_f: torch.Tensor, logit_scale: torch.Tensor,
                          labels: torch.Tensor, *, rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """CLIP loss where pairs in a batch sharing a label are positives, not negatives.

    Soft-target cross-entropy in both directions (image->text, text->image) with
    :func:`label_aware_targets`; this is the false-negative fix behind MedCLIP's semantic matching
    (Wang et al., EMNLP 2022). With all labels distinct it equals :func:`clip_loss` exactly.
    Written here because open_clip has no soft-target variant.
    """
    if world_size > 1:  # this rank's rows against the global batch (features and labels gathered)
        from open_clip.loss import gather_features
        import torch.distributed as dist

        all_img, all_txt = gather_features(image_f, text_f, local_loss=True, gather_with_grad=True, rank=rank,
                                           world_size=world_size)
        gathered = [torch.empty_like(labels) for _ in range(world_size)]
        dist.all_gather(gathered, labels.contiguous())
        b = len(labels)
        mine = slice(rank * b, (rank + 1) * b)
        targets = label_aware_targets(torch.cat(gathered)).to(image_f.dtype)
        loss_i = F.cross_entropy(logit_scale * image_f @ all_txt.T, targets[mine])
        loss_t = F.cross_entropy(logit_scale * text_f @ all_img.T, targets.T[mine])
        return (loss_i + loss_t) / 2
    logits = logit_scale * image_f @ text_f.T
    targets = label_aware_targets(labels).to(logits.dtype)
    loss_i = F.cross_entropy(logits, targets)
    loss_t = F.cross_entropy(logits.T, targets.T)
    return (loss_i + loss_t) / 2


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-class focal loss (Lin et al., ICCV 2017): ``-w_y (1 - p_y)^gamma log p_y``.

    Reduced like ``F.cross_entropy`` (weighted mean when ``weight`` is given), so ``gamma=0`` is
    cross-entropy exactly. Written here because torch/torchvision only ship the sigmoid variant.
    """
    logp = F.log_softmax(logits.float(), dim=-1).gather(1, target[:, None]).squeeze(1)
    loss = -logp if gamma == 0 else -((1 - logp.exp()) ** gamma) * logp
    if weight is None:
        return loss.mean()
    w = weight.to(loss)[target]
    return (w * loss).sum() / w.sum()


def logit_adjusted_loss(logits: torch.Tensor, target: torch.Tensor, priors: torch.Tensor | np.ndarray,
                        tau: float = 1.0, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Logit-adjusted cross-entropy (Menon et al., ICLR 2021): CE on ``logits + tau * log(prior)``.

    Training with the adjusted logits and predicting with the plain ones makes the classifier
    balanced-error optimal; ``tau=0`` is plain cross-entropy exactly.
    """
    priors = torch.as_tensor(priors, dtype=torch.float32, device=logits.device)
    adjusted = logits.float() + tau * torch.log(priors.clamp_min(1e-12)) if tau else logits.float()
    return F.cross_entropy(adjusted, target, weight=None if weight is None else weight.to(adjusted))


def weighted_bce(logits: torch.Tensor, target: torch.Tensor, pos_weight: torch.Tensor | None = None,
                 weight: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-label BCE-with-logits; ``pos_weight`` (C,) up-weights positives of rare labels
    (``n_neg / n_pos`` per label, :func:`medlib.train.class_weights.pos_weights`), ``weight`` (C,) per label."""
    target = target.to(logits.dtype)
    return F.binary_cross_entropy_with_logits(
        logits, target, weight=None if weight is None else weight.to(logits),
        pos_weight=None if pos_weight is None else pos_weight.to(logits))


def binary_focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
                      alpha: float = -1.0) -> torch.Tensor:
    """Sigmoid focal loss for multi-label (Lin et al., ICCV 2017) via ``torchvision.ops``;
    ``alpha < 0`` disables the positive/negative balancing term, so ``gamma=0`` is plain BCE."""
    return sigmoid_focal_loss(logits, target.to(logits.dtype), alpha=alpha, gamma=gamma, reduction="mean")


def logit_adjusted_bce(logits: torch.Tensor, target: torch.Tensor, priors: torch.Tensor | np.ndarray,
                       tau: float = 1.0) -> torch.Tensor:
    """Per-label (binary) logit adjustment (Menon et al., ICLR 2021) for multi-label: BCE on
    ``logits + tau * log(p / (1 - p))`` with ``p`` the training prevalence of each label; ``tau=0`` is BCE."""
    p = torch.as_tensor(priors, dtype=torch.float32, device=logits.device).clamp(1e-6, 1 - 1e-6)
    adjusted = logits.float() + tau * torch.log(p / (1 - p)) if tau else logits.float()
    return F.binary_cross_entropy_with_logits(adjusted, target.to(adjusted.dtype))


# ---- the loss factory of the training engine ---------------------------------------------------------


# The options each loss reads from ``loss_kwargs``; anything else is an error (a silently ignored option would
# make two remedies the same model).
LOSS_OPTIONS: dict[tuple[str, str], frozenset[str]] = {
    ("label", "ce"): frozenset(),
    ("label", "weighted_ce"): frozenset({"weights", "beta"}),
    ("label", "focal"): frozenset({"gamma", "weights", "beta"}),
    ("label", "logit_adjust"): frozenset({"tau"}),
    ("multilabel", "bce"): frozenset({"weights", "beta"}),
    ("multilabel", "weighted_bce"): frozenset({"weights", "beta", "pos_weight"}),
    ("multilabel", "focal"): frozenset({"gamma", "alpha"}),
    ("multilabel", "logit_adjust"): frozenset({"tau"}),
}
WEIGHT_SCHEMES = ("inverse_freq", "effective_number")


def make_loss(mode: str, name: str, kw: dict[str, Any], labels: np.ndarray, c: int,
              device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss function of (logits, target) for label/multilabel modes; weights from the TRAIN labels.

    ``kw`` (a profile's ``loss_kwargs``): ``weights`` = ``inverse_freq`` | ``effective_number`` (with ``beta``)
    | one value per class; ``gamma`` (focal), ``tau`` (logit adjustment), ``alpha`` (multi-label focal),
    ``pos_weight`` (weighted_bce, one value per label). Multi-label ``weighted_bce`` turns the scheme into
    per-label positive weights: each label is a binary problem whose positive and negative classes get the
    scheme's weights, and ``pos_weight = w_pos / w_neg`` (inverse_freq: ``n_neg / n_pos``; effective_number:
    ``(1 - beta^n_neg) / (1 - beta^n_pos)``). An option the loss does not use is an error.
    """
    mode_losses = LABEL_LOSSES if mode == "label" else MULTILABEL_LOSSES
    name = "bce" if (mode == "multilabel" and name == "ce") else name
    if name not in mode_losses:
        raise MedlibError(f"loss {name!r} is not a {mode}-mode loss. Fix: use one of {mode_losses}")
    allowed = LOSS_OPTIONS[(mode, name)]
    unused = sorted(set(kw) - allowed)
    if unused:
        raise MedlibError(f"loss {name!r} ({mode}) does not use loss_kwargs {unused}. "
                          f"Fix: remove them (it reads {sorted(allowed) or 'no options'})")
    scheme = kw.get("weights")
    if "beta" in kw and scheme != "effective_number":
        raise MedlibError(f"loss {name!r}: loss_kwargs beta is used only with weights='effective_number'. "
                          "Fix: remove beta or set weights: effective_number")
    beta = float(kw.get("beta", 0.999))

    def weights(spec: Any) -> torch.Tensor | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec == "inverse_freq":
                w = class_weights.inverse_frequency_weights(labels, c)
            elif spec == "effective_number":
                w = class_weights.effective_number_weights(labels, c, beta)
            else:
                raise MedlibError(f"loss_kwargs weights={spec!r}: unknown. Fix: {' or '.join(WEIGHT_SCHEMES)} or a list")
        else:
            w = np.asarray(spec, dtype=np.float64)
            if w.shape != (c,):
                raise MedlibError(f"loss_kwargs weights: {w.size} values for {c} classes. "
                                  "Fix: give one weight per class")
        return torch.as_tensor(w, dtype=torch.float32, device=device)

    def tensor(p: np.ndarray) -> torch.Tensor:  # on the device once, not converted every step
        return torch.as_tensor(np.asarray(p, dtype=np.float64), dtype=torch.float32, device=device)

    if mode == "label":
        if name == "ce":
            return lambda z, y: F.cross_entropy(z.float(), y)
        if name == "weighted_ce":
            w = weights(kw.get("weights", "inverse_freq"))
            return lambda z, y: F.cross_entropy(z.float(), y, weight=w)
        if name == "focal":
            w, g = weights(kw.get("weights")), float(kw.get("gamma", 2.0))
            return lambda z, y: focal_loss(z, y, g, w)
        pri, tau = tensor(class_weights.class_priors(labels, c)), float(kw.get("tau", 1.0))
        return lambda z, y: logit_adjusted_loss(z, y, pri, tau)
    if name == "bce":
        w = weights(kw.get("weights"))
        return lambda z, y: weighted_bce(z, y, weight=w)
    if name == "weighted_bce":
        if "pos_weight" in kw and "weights" in kw:
            raise MedlibError("loss 'weighted_bce': give loss_kwargs pos_weight or weights, not both. Fix: drop one")
        if "pos_weight" in kw:
            pw = np.asarray(kw["pos_weight"], dtype=np.float64)
            if pw.shape != (c,):
                raise MedlibError(f"loss_kwargs pos_weight: {pw.size} values for {c} labels. Fix: one per label")
        else:
            scheme = kw.get("weights", "inverse_freq")
            if scheme not in WEIGHT_SCHEMES:
                raise MedlibError(f"loss 'weighted_bce': weights={scheme!r}. Fix: use one of {WEIGHT_SCHEMES} "
                                  "(or pos_weight: one value per label)")
            pw = class_weights.pos_weights(labels, scheme, beta)
        pw_t = tensor(pw)
        return lambda z, y: weighted_bce(z, y, pos_weight=pw_t)
    if name == "focal":
        g, a = float(kw.get("gamma", 2.0)), float(kw.get("alpha", -1.0))
        return lambda z, y: binary_focal_loss(z, y, g, a)
    pri, tau = tensor(class_weights.class_counts(labels, c) / max(len(labels), 1)), float(kw.get("tau", 1.0))
    return lambda z, y: logit_adjusted_bce(z, y, pri, tau)
