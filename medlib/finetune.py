"""The training engine: one loop, three modes (contrastive, label, multilabel), resumable.

``train(bundle, data, mode=..., cfg=..., run_dir=..., seed=...)`` fine-tunes a copy of ``bundle``
on ``data.splits["train"]``, validates each epoch on ``data.splits["val"]`` (the test split is never
read here), keeps the best epoch by the validation metric, and checkpoints every epoch atomically to
``run_dir/last.pt`` (+ ``best.pt``). Calling it again with the same ``run_dir`` resumes from
``last.pt`` (or returns at once if that run had finished) unless ``fresh=True``.

Modes
- ``contrastive``: image-caption pairs, open_clip's CLIP loss (or the label-aware variant). Captions
  are ``split.captions``, or generated from the labels with the class prompts (one prompt sampled per
  example and step when ``cfg.text_augment``). Classification afterwards is zero-shot style: the
  head is rebuilt from the (fine-tuned) text tower with :func:`head_from_texts`.
- ``label``: linear head initialised from the class-text embeddings (prompt ensemble x logit
  scale) on the normalised image embedding; cross-entropy or an imbalance loss. ``cfg.lock_image``
  gives a linear probe on cached features; :func:`lp_ft` and :func:`wise_ft` build the variants.
- ``multilabel``: the same head over C labels (initialised from the positive prompts), BCE.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm

from .progress import enabled as progress_enabled
from . import imbalance, losses
from .augment import AugmentConfig, augment_batch
from .config import TrainConfig
from .data.base import DatasetBundle, Split
from .errors import MedlibError, fail
from .io import write_text, write_with
from .models import ClipBundle
from .preprocess import bundle_input
from .text import class_prompts, templates_for
# Feature extraction and mixed precision are shared with zero-shot evaluation (one implementation).
from .zeroshot import autocast, image_features, resolve_precision, text_features

MODES = ("contrastive", "label", "multilabel")
LABEL_LOSSES = ("ce", "weighted_ce", "focal", "logit_adjust")
MULTILABEL_LOSSES = ("bce", "weighted_bce", "focal", "logit_adjust")
SAMPLERS = ("none", "balanced")
CKPT_VERSION = 1
HISTORY_COLUMNS = ["epoch", "train_loss", "val_metric", "lr", "seconds", "images_per_s"]


# ---- results and small modules ---------------------------------------------------------------------


@dataclass
class TrainResult:
    """What :func:`train` returns; ``model`` holds the best epoch's weights."""

    model: ClipBundle
    history: pd.DataFrame  # epoch, train_loss, val_metric, lr, seconds, images_per_s
    best_epoch: int
    run_dir: Path
    resumed_from: int | None  # epoch the run resumed after (None: started fresh)
    head: nn.Linear | None = None  # classifier head (label/multilabel; contrastive: from class texts)
    mode: str = "label"
    metric_name: str = "acc"
    best_metric: float = float("nan")


class ClipClassifier(nn.Module):
    """``head(normalize(clip.encode_image(x)))``: the label/multilabel model."""

    def __init__(self, clip: nn.Module, head: nn.Linear):
        super().__init__()
        self.clip = clip
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.clip.encode_image(x), dim=-1))


# ---- features and heads -------------------------------------------------------------------------------


def class_text_embeddings(bundle: ClipBundle, class_texts: list[list[str]]) -> torch.Tensor:
    """(C, D) prompt-ensemble class embeddings: mean of each class's normalised prompt embeddings,
    renormalised (CLIP's ensembling; ``medlib.zeroshot`` does the same from class names + templates)."""
    if not class_texts or any(len(t) == 0 for t in class_texts):
        raise MedlibError("class_texts: every class needs at least one prompt. Fix: pass a non-empty list per class")
    flat = [t for texts in class_texts for t in texts]
    emb = text_features(bundle, flat)
    out, i = [], 0
    for texts in class_texts:
        out.append(F.normalize(emb[i:i + len(texts)].mean(0), dim=-1))
        i += len(texts)
    return torch.stack(out)


def head_from_texts(bundle: ClipBundle, class_texts: list[list[str]]) -> nn.Linear:
    """Linear head (D -> C) with weights ``logit_scale * class embedding`` and zero bias: applied to
    the normalised image embedding it reproduces the zero-shot classifier's logits exactly."""
    emb = class_text_embeddings(bundle, class_texts)
    scale = float(bundle.model.logit_scale.exp().item())
    head = nn.Linear(emb.shape[1], emb.shape[0], bias=True).to(bundle.device)
    with torch.no_grad():
        head.weight.copy_(emb * scale)
        head.bias.zero_()
    return head


def predict(bundle_or_result: ClipBundle | TrainResult, images: np.ndarray, *, mode: str,
            batch_size: int = 256, head: nn.Linear | None = None,
            class_texts: list[list[str]] | None = None) -> np.ndarray:
    """Class probabilities (N, C): softmax for contrastive/label, sigmoid for multilabel.

    The head is, in order: ``head``, the result's head, or one built from ``class_texts``.
    """
    _check_mode(mode)
    if isinstance(bundle_or_result, TrainResult):
        bundle, head = bundle_or_result.model, head or bundle_or_result.head
    else:
        bundle = bundle_or_result
    if head is None:
        if class_texts is None:
            raise MedlibError("predict: no classifier head. Fix: pass a TrainResult, head= or class_texts=")
        head = head_from_texts(bundle, class_texts)
    feats = image_features(bundle, images, batch_size)
    with torch.no_grad():
        logits = head.to(feats.device)(feats).double()
    probs = torch.sigmoid(logits) if mode == "multilabel" else torch.softmax(logits, dim=-1)
    return probs.cpu().numpy()


# ---- WiSE-FT and LP-FT --------------------------------------------------------------------------------


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


def wise_ft(result: TrainResult, zero_shot: ClipBundle, class_texts: list[list[str]], alpha: float) -> TrainResult:
    """WiSE-FT model for label/multilabel results: interpolate the zero-shot CLIP + text-initialised
    head with the fine-tuned CLIP + head. Returns a new TrainResult (history of the fine-tune)."""
    if result.head is None:
        raise MedlibError("wise_ft: the result has no head. Fix: use a label or multilabel result")
    zs_model = ClipClassifier(zero_shot.model, head_from_texts(zero_shot, class_texts))
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


# ---- the engine ---------------------------------------------------------------------------------------


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise MedlibError(f"finetune: unknown mode {mode!r}. Fix: use one of {MODES}")


def _param_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip's training-script rule: no weight decay on gains, biases, logit scale, 1-D params."""
    decay, no_decay = [], []
    for n, p in module.named_parameters():
        if not p.requires_grad:
            continue
        excluded = p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n or "logit_bias" in n
        (no_decay if excluded else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def _lr_lambda(warmup: int, total: int, kind: str) -> Callable[[int], float]:
    """Linear warmup then cosine (or constant) decay, per optimizer step."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        e = step - warmup
        es = max(total - warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(e, es) / es))
    return f


def _set_trainable(clip: nn.Module, lock_image: bool, lock_text: bool, mode: str) -> None:
    for n, p in clip.named_parameters():
        is_image = n.startswith("visual.")
        is_scale = n.startswith("logit_")
        if is_scale:
            p.requires_grad_(mode == "contrastive")
        elif is_image:
            p.requires_grad_(not lock_image)
        else:  # the text tower: label/multilabel modes never run it in training
            p.requires_grad_(mode == "contrastive" and not lock_text)


def _informative_labels(y: np.ndarray) -> list[int]:
    """Columns of a multi-label (N, C) array that hold both values (AUROC is defined only for those)."""
    return [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]


def val_metric(y_true: np.ndarray, y_score: np.ndarray | torch.Tensor, multilabel: bool) -> float:
    """Model-selection metric on the validation split (also used by ``medlib.cnn``): accuracy of the
    argmax, or (multi-label) macro AUROC over the labels that have both values in ``y_true``."""
    s = y_score.float().cpu().numpy() if isinstance(y_score, torch.Tensor) else np.asarray(y_score)
    y = np.asarray(y_true)
    if multilabel:
        return float(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in _informative_labels(y)]))
    return float((s.argmax(1) == y).mean())


def validation_split(data: DatasetBundle, multilabel: bool) -> Split:
    """``data.splits["val"]``, checked: present, non-empty and, for a multi-label metric, holding at
    least one label with both values (else no epoch could ever be selected)."""
    val = _split(data, "val")
    if multilabel and not _informative_labels(np.asarray(val.labels)):
        raise fail(f"dataset {data.name!r}", "no label has both positive and negative examples in the 'val' split "
                   "(validation AUROC is undefined)", "use a larger validation split")
    return val


def _retrieval_r1(img_f: torch.Tensor, txt_f: torch.Tensor) -> float:
    """Mean of image->text and text->image Recall@1 for paired rows."""
    sim = img_f @ txt_f.T
    idx = torch.arange(len(sim), device=sim.device)
    return float(((sim.argmax(1) == idx).float().mean() + (sim.argmax(0) == idx).float().mean()) / 2)


def _split(data: DatasetBundle, name: str) -> Split:
    if name not in data.splits or len(data.splits[name]) == 0:
        raise fail(f"dataset {data.name!r}", f"has no {name!r} split", "use a loader that carves a validation split")
    return data.splits[name]


def _cap(split: Split, max_n: int, seed: int) -> Split:
    if not max_n or max_n >= len(split):
        return split
    return split.subset(np.sort(np.random.default_rng(seed).permutation(len(split))[:max_n]))


def _make_loss(mode: str, name: str, kw: dict[str, Any], labels: np.ndarray, c: int,
               device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Loss function of (logits, target) for label/multilabel modes; weights from the TRAIN labels."""
    def weights(spec: Any) -> torch.Tensor | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec == "inverse_freq":
                w = imbalance.inverse_frequency_weights(labels, c)
            elif spec == "effective_number":
                w = imbalance.effective_number_weights(labels, c, float(kw.get("beta", 0.999)))
            else:
                raise MedlibError(f"loss_kwargs weights={spec!r}: unknown. Fix: inverse_freq, effective_number or a list")
        else:
            w = np.asarray(spec, dtype=np.float64)
            if w.shape != (c,):
                raise MedlibError(f"loss_kwargs weights: {w.size} values for {c} classes. "
                                  "Fix: give one weight per class")
        return torch.as_tensor(w, dtype=torch.float32, device=device)

    def priors(p: np.ndarray) -> torch.Tensor:  # on the device once, not converted every step
        return torch.as_tensor(p, dtype=torch.float32, device=device)

    if mode == "label":
        if name not in LABEL_LOSSES:
            raise MedlibError(f"loss {name!r} is not a label-mode loss. Fix: use one of {LABEL_LOSSES}")
        if name == "ce":
            return lambda z, y: F.cross_entropy(z.float(), y)
        if name == "weighted_ce":
            w = weights(kw.get("weights", "inverse_freq"))
            return lambda z, y: F.cross_entropy(z.float(), y, weight=w)
        if name == "focal":
            w, g = weights(kw.get("weights")), float(kw.get("gamma", 2.0))
            return lambda z, y: losses.focal_loss(z, y, g, w)
        pri, tau = priors(imbalance.class_priors(labels, c)), float(kw.get("tau", 1.0))
        return lambda z, y: losses.logit_adjusted_loss(z, y, pri, tau)
    name = "bce" if name == "ce" else name
    if name not in MULTILABEL_LOSSES:
        raise MedlibError(f"loss {name!r} is not a multilabel loss. Fix: use one of {MULTILABEL_LOSSES}")
    if name == "bce":
        w = weights(kw.get("weights"))
        return lambda z, y: losses.weighted_bce(z, y, weight=w)
    if name == "weighted_bce":
        pw = weights(kw.get("pos_weight", list(imbalance.pos_weights(labels))))
        return lambda z, y: losses.weighted_bce(z, y, pos_weight=pw)
    if name == "focal":
        g, a = float(kw.get("gamma", 2.0)), float(kw.get("alpha", -1.0))
        return lambda z, y: losses.binary_focal_loss(z, y, g, a)
    pri, tau = priors(imbalance.class_counts(labels, c) / max(len(labels), 1)), float(kw.get("tau", 1.0))
    return lambda z, y: losses.logit_adjusted_bce(z, y, pri, tau)


class _Engine:
    """One training run's state; :func:`train` drives it. Kept private: the public API is train()."""

    def __init__(self, bundle: ClipBundle, data: DatasetBundle, mode: str, cfg: TrainConfig, seed: int,
                 class_texts: list[list[str]] | None, loss: str, loss_kwargs: dict[str, Any], sampler: str,
                 init_head: nn.Linear | None):
        self.mode, self.cfg, self.seed, self.device = mode, cfg, seed, bundle.device
        self.precision = resolve_precision(bundle.device, cfg.precision)
        if bundle.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.bundle = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model))  # caller's model untouched
        self.train_split = _cap(_split(data, "train"), cfg.max_train, seed)
        self.c = data.num_classes
        if mode == "multilabel" and self.train_split.labels.ndim != 2:
            raise fail(f"dataset {data.name!r}", "multilabel mode needs (N, C) 0/1 labels", "use mode='label'")
        if mode == "label" and self.train_split.labels.ndim != 1:
            raise fail(f"dataset {data.name!r}", "label mode needs (N,) class labels", "use mode='multilabel'")
        self.val_split = validation_split(data, multilabel=mode == "multilabel")
        self.has_labels = bool((np.asarray(self.train_split.labels) >= 0).all()) and self.c > 0
        if class_texts is None and (mode != "contrastive" or self.has_labels):
            class_texts = class_prompts(data.class_names, templates_for(data.domain))
        self.class_texts = class_texts
        if class_texts is not None and len(class_texts) != self.c:
            raise MedlibError(f"class_texts has {len(class_texts)} classes, dataset {data.name!r} has {self.c}. "
                              "Fix: pass one prompt list per class")
        # The validation metric, decided once (validate() computes it, TrainResult.metric_name names it).
        # Contrastive runs are validated zero-shot style where val has class labels, else by retrieval.
        if mode == "multilabel":
            self.metric_name = "auroc"
        elif mode == "label" or (class_texts is not None and self.has_labels
                                 and np.asarray(self.val_split.labels).ndim == 1):
            self.metric_name = "acc"
        else:
            self.metric_name = "recall@1"
            if self.val_split.captions is None:
                raise fail(f"dataset {data.name!r}", "contrastive validation needs class labels or captions in "
                           "the 'val' split", "provide either")
        self.gens = {"shuffle": torch.Generator().manual_seed(seed),
                     "augment": torch.Generator().manual_seed(seed + 1)}
        self.sampler = None
        if sampler == "balanced":
            self.sampler = imbalance.balanced_sampler(self.train_split.labels, seed + 2, num_classes=self.c)
        elif sampler != "none":
            raise MedlibError(f"sampler {sampler!r}: unknown. Fix: use one of {SAMPLERS}")
        self.aug = AugmentConfig(hflip=cfg.hflip) if cfg.augment else None
        self.y_train = torch.as_tensor(np.asarray(self.train_split.labels))
        self.n = len(self.train_split)
        clip = self.bundle.model
        _set_trainable(clip, cfg.lock_image, cfg.lock_text, mode)
        self.probe = mode != "contrastive" and cfg.lock_image
        if mode == "contrastive":
            self.module: nn.Module = clip
            self._setup_text()
        else:
            head = copy.deepcopy(init_head).to(self.device) if init_head is not None else \
                head_from_texts(self.bundle, class_texts)
            self.classifier = ClipClassifier(clip, head)
            self.module = head if self.probe else self.classifier
            self.loss_fn = _make_loss(mode, loss, loss_kwargs, self.train_split.labels, self.c, self.device)
        self.batches_per_epoch = (self.n // cfg.batch_size if mode == "contrastive"
                                  else math.ceil(self.n / cfg.batch_size))
        if self.batches_per_epoch < 1:
            raise fail(f"dataset {data.name!r}", f"{self.n} training pairs < batch size {cfg.batch_size}",
                       "lower batch_size")
        steps = cfg.epochs * math.ceil(self.batches_per_epoch / max(cfg.grad_accum, 1))
        params = _param_groups(self.module, cfg.weight_decay)
        if not any(g["params"] for g in params):
            raise MedlibError("finetune: nothing to train (both towers locked). Fix: unlock a tower")
        opt_cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}.get(cfg.optimizer)
        if opt_cls is None:
            raise MedlibError(f"TrainConfig.optimizer={cfg.optimizer!r}: unknown. Fix: use adamw or adam")
        if cfg.optimizer == "adam":  # classic Adam: L2 decay only where asked, no decoupling
            params = [{"params": [p for g in params for p in g["params"]], "weight_decay": cfg.weight_decay}]
        self.opt = opt_cls(params, lr=cfg.lr)
        if cfg.scheduler not in ("cosine", "constant"):
            raise MedlibError(f"TrainConfig.scheduler={cfg.scheduler!r}: unknown. Fix: use cosine or constant")
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(cfg.warmup_steps, steps, cfg.scheduler))
        self.signature = {"version": CKPT_VERSION, "mode": mode, "cfg": dataclasses.asdict(cfg), "seed": seed,
                          "loss": loss, "loss_kwargs": repr(sorted(loss_kwargs.items())), "sampler": sampler,
                          "n_train": self.n, "classes": list(data.class_names), "model": bundle.name,
                          "init_head": init_head is not None}

    # -- text for contrastive mode
    def _setup_text(self) -> None:
        tok = self.bundle.tokenizer
        caps = self.train_split.captions
        self.label_captions = caps is None
        if not self.label_captions:
            if any(not str(c).strip() for c in caps):
                raise MedlibError("contrastive: a training caption is empty. Fix: drop or fill the empty captions")
            self.tokens = tok(list(caps))
        else:
            if self.class_texts is None or self.train_split.labels.ndim != 1:
                raise MedlibError("contrastive: no captions and no class labels to build them from. "
                                  "Fix: use a dataset with captions or class labels")
            flat = [t for texts in self.class_texts for t in texts]
            self.prompt_tokens = tok(flat)
            counts = torch.tensor([len(t) for t in self.class_texts])
            self.prompt_count = counts
            self.prompt_offset = torch.cumsum(counts, 0) - counts
            # captions from labels without text augmentation: each example keeps one prompt of its
            # class for the whole run (as text.captions_from_labels does), drawn once from the seed
            r = torch.from_numpy(np.random.default_rng(self.seed).random(self.n))
            self.fixed_prompt = (r * counts[self.y_train]).long() + self.prompt_offset[self.y_train]

    def _caption_ids(self, idx: torch.Tensor) -> torch.Tensor:
        """Row of ``prompt_tokens`` used as each example's caption this step (label-generated captions)."""
        y = self.y_train[idx]
        if self.cfg.text_augment:  # one prompt per example, sampled each step (template sampling)
            r = torch.rand(len(idx), generator=self.gens["augment"], dtype=torch.float64)
            j = (r * self.prompt_count[y]).long() + self.prompt_offset[y]
        else:  # fixed caption per example: one prompt of its class, drawn once (see _setup_text)
            j = self.fixed_prompt[idx]
        return j

    # Linear probe: the image tower is frozen, so its features are computed ONCE for train and val and
    # the head trains on the cached (N, D) tensors -- epochs take milliseconds instead of a forward pass
    # per batch. No image augmentation in this case (by design). Lazy: a finished run never needs them.
    @functools.cached_property
    def train_feats(self) -> torch.Tensor:
        return image_features(self.bundle, self.train_split.images, precision=self.precision)

    @functools.cached_property
    def val_feats(self) -> torch.Tensor:
        return image_features(self.bundle, self.val_split.images, precision=self.precision)

    # -- one epoch
    def _order(self) -> torch.Tensor:
        if self.sampler is not None:
            return torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        return torch.randperm(self.n, generator=self.gens["shuffle"])

    def _images(self, idx: torch.Tensor) -> torch.Tensor:
        x = bundle_input(self.bundle, self.train_split.images[idx.numpy()])
        if self.aug is not None:
            x = augment_batch(x, self.gens["augment"], self.bundle.mean, self.bundle.std, self.aug)
        return x

    def _batch_loss(self, idx: torch.Tensor) -> torch.Tensor:
        if self.mode == "contrastive":
            x = self._images(idx)
            clip = self.bundle.model
            with autocast(self.device, self.precision):
                img_f = F.normalize(clip.encode_image(x).float(), dim=-1)
                if self.label_captions:
                    # label-generated captions repeat a handful of prompts: encode each distinct prompt
                    # once and gather (same loss and gradient, ~10x less text-tower work per step)
                    uniq, inv = torch.unique(self._caption_ids(idx), return_inverse=True)
                    txt_f = F.normalize(clip.encode_text(self.prompt_tokens[uniq].to(self.device)).float(), dim=-1)
                    txt_f = txt_f[inv.to(self.device)]
                else:
                    txt_f = F.normalize(clip.encode_text(self.tokens[idx].to(self.device)).float(), dim=-1)
            scale = clip.logit_scale.exp().float()
            if self.cfg.label_aware and self.has_labels:
                return losses.label_aware_clip_loss(img_f, txt_f, scale, self.y_train[idx].to(self.device))
            return losses.clip_loss(img_f, txt_f, scale)
        y = self.y_train[idx].to(self.device)
        if self.probe:
            return self.loss_fn(self.module(self.train_feats[idx.to(self.device)]).float(), y)
        x = self._images(idx)
        with autocast(self.device, self.precision):
            logits = self.module(x)
        return self.loss_fn(logits.float(), y)

    def train_epoch(self, epoch: int, progress: bool) -> tuple[float, float]:
        self.module.train()
        order = self._order()
        bs, accum = self.cfg.batch_size, max(self.cfg.grad_accum, 1)
        nb = self.batches_per_epoch
        total, seen = 0.0, 0
        self.opt.zero_grad(set_to_none=True)
        bar = tqdm(range(nb), desc=f"epoch {epoch}/{self.cfg.epochs} [{self.mode}]",
                   disable=not progress_enabled(progress),
                   leave=False)
        for b in bar:
            idx = order[b * bs:(b + 1) * bs]
            loss = self._batch_loss(idx)
            (loss / accum).backward()
            if (b + 1) % accum == 0 or b + 1 == nb:
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                if self.mode == "contrastive":
                    with torch.no_grad():  # as open_clip's training script: keep the scale <= 100
                        self.bundle.model.logit_scale.clamp_(0, math.log(100))
            total += float(loss.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        return total / max(seen, 1), seen

    @torch.no_grad()
    def validate(self) -> float:
        self.module.eval()
        val = self.val_split
        if self.mode != "contrastive":
            feats = self.val_feats if self.probe else image_features(self.bundle, val.images, precision=self.precision)
            return val_metric(val.labels, self.classifier.head(feats), self.mode == "multilabel")
        img_f = image_features(self.bundle, val.images, precision=self.precision)
        if self.metric_name == "acc":  # zero-shot classification with the current text tower
            return val_metric(val.labels, head_from_texts(self.bundle, self.class_texts)(img_f), multilabel=False)
        return _retrieval_r1(img_f, text_features(self.bundle, val.captions, precision=self.precision))

    # -- checkpoint state
    def model_state(self) -> dict[str, torch.Tensor]:
        m = self.classifier if self.mode != "contrastive" else self.bundle.model
        return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}

    def load_model_state(self, state: dict[str, torch.Tensor]) -> None:
        m = self.classifier if self.mode != "contrastive" else self.bundle.model
        m.load_state_dict(state)

    def rng_state(self) -> dict[str, Any]:
        st = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
              "gens": {k: g.get_state() for k, g in self.gens.items()},
              "sampler": None if self.sampler is None else self.sampler.generator.get_state()}
        if torch.cuda.is_available():
            st["cuda"] = torch.cuda.get_rng_state_all()
        return st

    def set_rng_state(self, st: dict[str, Any]) -> None:
        random.setstate(st["python"])
        np.random.set_state(st["numpy"])
        torch.set_rng_state(st["torch"])
        for k, s in st["gens"].items():
            self.gens[k].set_state(s)
        if self.sampler is not None and st["sampler"] is not None:
            self.sampler.generator.set_state(st["sampler"])
        if "cuda" in st and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(st["cuda"])

    def result(self, run_dir: Path, history: list[dict], best_epoch: int, best: float,
               resumed_from: int | None) -> TrainResult:
        self.module.eval()
        self.bundle.model.eval()
        head = None
        if self.mode != "contrastive":
            head = self.classifier.head
        elif self.class_texts is not None:
            head = head_from_texts(self.bundle, self.class_texts)
        return TrainResult(model=self.bundle, history=pd.DataFrame(history, columns=HISTORY_COLUMNS),
                           best_epoch=best_epoch, run_dir=run_dir, resumed_from=resumed_from, head=head,
                           mode=self.mode, metric_name=self.metric_name, best_metric=best)


def _save(path: Path, obj: dict[str, Any]) -> None:
    write_with(path, lambda tmp: torch.save(obj, tmp))


def _load(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint is a user-fixable state
        raise fail(path, f"unreadable checkpoint ({type(exc).__name__})", "delete it or pass fresh=True") from None


def train(bundle: ClipBundle, data: DatasetBundle, *, mode: str, cfg: TrainConfig, run_dir: Path, seed: int,
          class_texts: list[list[str]] | None = None, loss: str = "ce", loss_kwargs: dict | None = None,
          sampler: str = "none", fresh: bool = False, progress: bool = True,
          init_head: nn.Linear | None = None,
          on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None) -> TrainResult:
    """Fine-tune a copy of ``bundle`` on ``data`` (train split; val for selection) and return the best model.

    ``class_texts``: prompts per class (head init, zero-shot validation, label-generated captions);
    default: the domain's templates from ``medlib.text``. ``loss``: label mode ce | weighted_ce |
    focal | logit_adjust; multilabel bce (= ce) | weighted_bce | focal | logit_adjust; options in
    ``loss_kwargs`` (weights="inverse_freq"|"effective_number"|list, beta, gamma, tau, alpha).
    ``init_head``: start from this head instead of the text-initialised one (LP-FT).
    ``on_epoch_end(epoch, row)``: called after each epoch's checkpoint is written.
    """
    _check_mode(mode)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    eng = _Engine(bundle, data, mode, cfg, seed, class_texts, loss, dict(loss_kwargs or {}), sampler, init_head)
    last, best_path = run_dir / "last.pt", run_dir / "best.pt"
    history: list[dict[str, Any]] = []
    start, best, best_epoch, bad, resumed_from = 0, -math.inf, 0, 0, None
    if last.exists() and not fresh:
        ck = _load(last)
        if ck.get("signature") != eng.signature:
            raise fail(last, "holds a run with different settings (mode, config, data or seed)",
                       "pass fresh=True to start over, or use another run_dir")
        eng.load_model_state(ck["model"])
        eng.opt.load_state_dict(ck["optimizer"])
        eng.sched.load_state_dict(ck["scheduler"])
        eng.set_rng_state(ck["rng"])
        history, start, best, best_epoch, bad = ck["history"], ck["epoch"], ck["best"], ck["best_epoch"], ck["bad"]
        resumed_from = start
        if ck["finished"]:
            eng.load_model_state(_load(best_path)["model"])
            return eng.result(run_dir, history, best_epoch, best, resumed_from)
    else:
        # seed the global RNGs too (dropout, anything drawing from them); shuffling uses our generators
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        # a fresh start drops the old run's checkpoints at once: if it is interrupted before its first
        # epoch is saved, the next call must not resume the old run (nor find it without its best.pt)
        for stale in (last, best_path, run_dir / "log.csv"):
            stale.unlink(missing_ok=True)
    finished = False
    for epoch in range(start + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss, seen = eng.train_epoch(epoch, progress)
        t_train = time.perf_counter() - t0
        metric = eng.validate()
        row = {"epoch": epoch, "train_loss": train_loss, "val_metric": metric,
               "lr": eng.opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0,
               "images_per_s": seen / max(t_train, 1e-9)}
        history.append(row)
        if metric > best:  # strictly better: ties keep the earlier epoch
            best, best_epoch, bad = metric, epoch, 0
            _save(best_path, {"model": eng.model_state(), "epoch": epoch, "metric": metric})
        else:
            bad += 1
        finished = epoch == cfg.epochs or (cfg.patience > 0 and bad >= cfg.patience)
        _save(last, {"signature": eng.signature, "model": eng.model_state(), "optimizer": eng.opt.state_dict(),
                     "scheduler": eng.sched.state_dict(), "rng": eng.rng_state(),
                     "epoch": epoch, "best": best, "best_epoch": best_epoch, "bad": bad, "history": history,
                     "finished": finished})
        write_text(run_dir / "log.csv", pd.DataFrame(history, columns=HISTORY_COLUMNS).to_csv(index=False))
        if on_epoch_end is not None:
            on_epoch_end(epoch, row)
        if finished:
            break
    if not best_path.exists():  # zero epochs requested
        raise MedlibError(f"{run_dir}: no epoch was trained (epochs={cfg.epochs}). Fix: set epochs >= 1")
    eng.load_model_state(_load(best_path)["model"])
    return eng.result(run_dir, history, best_epoch, best, resumed_from)
