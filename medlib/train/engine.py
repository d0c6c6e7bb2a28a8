"""The engine of one training run: three modes (contrastive, label, multilabel) over the same steps.

:class:`Engine` holds a run's state -- a copy of the model (with a classifier head in label modes), the optimizer
and schedule, the data order and RNGs -- and does one epoch of training (:meth:`Engine.train_epoch`) and one
validation pass (:meth:`Engine.validate`, on ``data.splits["val"]``; the test split is never read here). The epoch
loop, resume and checkpoints are :func:`medlib.train.fit.fit`'s.

Modes
- ``contrastive``: image-caption pairs, open_clip's CLIP loss (or the label-aware variant). Captions
  are ``split.captions`` (with ``cfg.text_augment``, one of an image's ``split.all_captions`` sampled per
  step), or generated from the labels with the class prompts (one prompt sampled per example and step when
  ``cfg.text_augment``). Classification afterwards is zero-shot style: the
  head is rebuilt from the (fine-tuned) text tower with :func:`medlib.train.heads.head_from_texts`.
- ``label``: linear head initialised from the class-text embeddings (prompt ensemble x logit
  scale) on the normalised image embedding; cross-entropy or an imbalance loss. ``cfg.lock_image``
  gives a linear probe on cached features; :mod:`medlib.train.variants` builds LP-FT and WiSE-FT.
- ``multilabel``: the same head over C labels, initialised as the zero-shot classifier
  ``s * (pos - neg)`` (positive vs. negative prompts), BCE or an imbalance loss.

Under ``torchrun`` (``launch.py``) the same steps run on every rank with DistributedDataParallel
(``distributed.py``): one process and N processes with the same global batch give the same run up to
floating-point rounding. The other parts live beside this file: heads (``heads.py``), trainable parameters and
the optimizer (``optim.py``), the schedule (``scheduler.py``), checkpoint I/O (``checkpoint.py``), the validation
metric (``validation.py``), the losses (``losses.py``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import class_weights, losses
from ..models.augment import AugmentConfig, augment_batch
from ..config import TrainConfig
from ..data.base import DatasetBundle, caption_index
from ..errors import MedlibError, fail
from ..models import ClipBundle
from ..models.preprocess import bundle_input
from ..progress import enabled as progress_enabled
from ..models.prompts import class_prompts, negative_prompts, templates_for
# Feature extraction and mixed precision are shared with zero-shot evaluation (one implementation).
from ..models.zeroshot import autocast, image_features, resolve_precision, text_features
from . import checkpoint
from .distributed import World, gather_rows, rows, sum_all, world
from .heads import ClipClassifier, head_from_texts
from .optim import build_optimizer, set_trainable
from .result import HISTORY_COLUMNS, TrainResult
from .scheduler import build_scheduler
from .validation import cap, require_split, retrieval_r1, val_metric, validation_split

SAMPLERS = ("none", "balanced")


class ContrastiveForward(nn.Module):
    """The contrastive step's forward (what DDP wraps, so its gradient hooks fire): normalised image features,
    normalised text features (``inv`` maps encoded distinct prompts back to rows) and the exponentiated scale."""

    def __init__(self, clip: nn.Module):
        super().__init__()
        self.clip = clip

    def forward(self, x: torch.Tensor, tokens: torch.Tensor, inv: torch.Tensor | None = None):
        img_f = F.normalize(self.clip.encode_image(x).float(), dim=-1)
        txt_f = F.normalize(self.clip.encode_text(tokens).float(), dim=-1)
        if inv is not None:
            txt_f = txt_f[inv]
        return img_f, txt_f, self.clip.logit_scale.exp().float()


class Engine:
    """One training run's state; :func:`train` drives it (the public API is train())."""

    def __init__(self, bundle: ClipBundle, data: DatasetBundle, mode: str, cfg: TrainConfig, seed: int,
                 class_texts: list[list[str]] | None, loss: str, loss_kwargs: dict[str, Any], sampler: str,
                 init_head: nn.Linear | None, negative_texts: list[list[str]] | None = None):
        self.mode, self.cfg, self.seed, self.device = mode, cfg, seed, bundle.device
        self.world: World = world()  # one process unless launched by torchrun (medlib.train.launch)
        self.on_step: Callable[[int, int], None] | None = None  # called after each batch (fault-injection tests)
        self.precision = resolve_precision(bundle.device, cfg.precision)
        if bundle.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.bundle = dataclasses.replace(bundle, model=copy.deepcopy(bundle.model))  # caller's model untouched
        self.train_split = cap(require_split(data, "train"), cfg.max_train, seed)
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
        if mode == "multilabel" and negative_texts is None:  # the zero-shot default (medlib.models.zeroshot)
            negative_texts = negative_prompts(data.class_names, data.domain)
        self.negative_texts = negative_texts if mode == "multilabel" else None
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
            self.sampler = class_weights.balanced_sampler(self.train_split.labels, seed + 2, num_classes=self.c)
        elif sampler != "none":
            raise MedlibError(f"sampler {sampler!r}: unknown. Fix: use one of {SAMPLERS}")
        self.aug = AugmentConfig(hflip=cfg.hflip) if cfg.augment else None
        self.y_train = torch.as_tensor(np.asarray(self.train_split.labels))
        self.n = len(self.train_split)
        clip = self.bundle.model
        set_trainable(clip, cfg.lock_image, cfg.lock_text, mode)
        self.probe = mode != "contrastive" and cfg.lock_image
        if mode == "contrastive":
            if loss != "ce" or loss_kwargs:  # the CLIP loss reads neither: an option it ignores is an error
                raise MedlibError(f"contrastive mode uses the CLIP loss; loss={loss!r} loss_kwargs={loss_kwargs} would "
                                  "be ignored. Fix: drop them (cfg.label_aware picks the label-aware CLIP loss)")
            self.module: nn.Module = ContrastiveForward(clip)
            self._setup_text()
            if self.world.distributed and cfg.batch_size % self.world.size:
                raise MedlibError(f"contrastive batch_size {cfg.batch_size} is not divisible by the {self.world.size} "
                                  "processes. Fix: use a multiple of the process count")
        else:
            head = copy.deepcopy(init_head).to(self.device) if init_head is not None else \
                head_from_texts(self.bundle, class_texts, self.negative_texts)
            self.classifier = ClipClassifier(clip, head)
            self.module = head if self.probe else self.classifier
            self.loss_fn = losses.make_loss(mode, loss, loss_kwargs, self.train_split.labels, self.c, self.device)
        self.batches_per_epoch = (self.n // cfg.batch_size if mode == "contrastive"
                                  else math.ceil(self.n / cfg.batch_size))
        if self.batches_per_epoch < 1:
            fits = 2 ** int(math.log2(self.n)) if self.n else 1  # whole contrastive batches: a power of 2 fits
            raise fail(f"dataset {data.name!r}", f"{self.n} training pairs < batch size {cfg.batch_size}",
                       f"lower the batch size to at most {self.n}, e.g. for notebook 03 "
                       f"--set caption_finetune.train.batch_size={fits} "
                       "(notebook 07: retrieval_study.train.batch_size)")
        steps = cfg.epochs * math.ceil(self.batches_per_epoch / max(cfg.grad_accum, 1))
        self.opt = build_optimizer(self.module, cfg.optimizer, cfg.lr, cfg.weight_decay)
        self.step_module: nn.Module = self.module  # what a step calls: the module, or its DDP wrapper
        if self.world.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.step_module = DistributedDataParallel(
                self.module, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.sched = build_scheduler(self.opt, cfg.scheduler, cfg.warmup_steps, steps)
        # checkpoints hold what the run changes; the rest (frozen towers) is the base model's, identified by its digest
        self.base_digest = checkpoint.frozen_digest(self._state_module(), self.model_state())
        self.signature = {"version": checkpoint.VERSION, "mode": mode, "cfg": dataclasses.asdict(cfg), "seed": seed,
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
            # several captions per image (Flickr30K/COCO: five) and text augmentation: one of them sampled per
            # step (_free_caption_rows); otherwise each image keeps its first caption for the whole run
            pool = self.train_split.captions_per_image() if self.cfg.text_augment else [[c] for c in caps]
            counts = torch.tensor([len(p) for p in pool])
            self.caption_count, self.caption_offset = counts, torch.cumsum(counts, 0) - counts
            self.tokens = tok([c for p in pool for c in p])
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

    def _free_caption_rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Row of ``tokens`` used as each image's caption this step: one of its captions drawn from the augment
        generator where it has several, else its one caption (no random number drawn: unchanged runs)."""
        count = self.caption_count[idx]
        if int(count.max()) == 1:
            return self.caption_offset[idx]
        r = torch.rand(len(idx), generator=self.gens["augment"], dtype=torch.float64)
        return (r * count).long() + self.caption_offset[idx]

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
        return self._features(self.train_split.images)

    @functools.cached_property
    def val_feats(self) -> torch.Tensor:
        return self._features(self.val_split.images)

    # -- one epoch
    def _order(self) -> torch.Tensor:
        if self.sampler is not None:
            return torch.tensor(list(iter(self.sampler)), dtype=torch.long)
        return torch.randperm(self.n, generator=self.gens["shuffle"])

    def _images(self, idx: torch.Tensor, mine: slice) -> torch.Tensor:
        """Model input of this process's rows ``mine`` of the global batch ``idx`` (augmentation drawn for the
        whole global batch, so the result does not depend on the process count)."""
        x = bundle_input(self.bundle, self.train_split.images[idx[mine].numpy()])
        if self.aug is not None:
            x = augment_batch(x, self.gens["augment"], self.bundle.mean, self.bundle.std, self.aug,
                              rows=mine, total=len(idx))
        return x

    def _batch_loss(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to back-propagate, this process's mean loss for the log) for the global batch ``idx``.

        With several processes each computes its rows; the loss is scaled so that DDP's gradient average
        equals the gradient of the single-process mean over the global batch (contrastive: equal shares,
        features gathered with their gradients; label/multilabel: weighted by the share's size -- exact
        for losses that are plain means, close for class-weighted means, which normalise per share).
        """
        w = self.world
        mine = rows(len(idx), w)
        if self.mode == "contrastive":
            x = self._images(idx, mine)
            with autocast(self.device, self.precision):
                if self.label_captions:
                    # label-generated captions repeat a handful of prompts: encode each distinct prompt
                    # once and gather (same loss and gradient, ~10x less text-tower work per step)
                    uniq, inv = torch.unique(self._caption_ids(idx)[mine], return_inverse=True)
                    img_f, txt_f, scale = self.step_module(x, self.prompt_tokens[uniq].to(self.device),
                                                           inv.to(self.device))
                else:
                    img_f, txt_f, scale = self.step_module(
                        x, self.tokens[self._free_caption_rows(idx)[mine]].to(self.device))
            if self.cfg.label_aware and self.has_labels:
                loss = losses.label_aware_clip_loss(img_f, txt_f, scale, self.y_train[idx[mine]].to(self.device),
                                                    rank=w.rank, world_size=w.size)
            else:
                loss = losses.clip_loss(img_f, txt_f, scale, rank=w.rank, world_size=w.size)
            return loss, loss
        y = self.y_train[idx[mine]].to(self.device)
        if len(y) == 0:  # more processes than rows in this batch: a zero loss that still reaches every parameter
            zero = sum(p.sum() * 0 for p in self.module.parameters() if p.requires_grad)
            return zero, zero.detach()
        if self.probe:
            loss = self.loss_fn(self.step_module(self.train_feats[idx[mine].to(self.device)]).float(), y)
        else:
            x = self._images(idx, mine)
            with autocast(self.device, self.precision):
                logits = self.step_module(x)
            loss = self.loss_fn(logits.float(), y)
        return loss * (len(y) * w.size / len(idx)), loss

    def train_epoch(self, epoch: int, progress: bool) -> tuple[float, float]:
        self.module.train()
        order = self._order()
        bs, accum = self.cfg.batch_size, max(self.cfg.grad_accum, 1)
        nb = self.batches_per_epoch
        total, seen = 0.0, 0
        self.opt.zero_grad(set_to_none=True)
        bar = tqdm(range(nb), desc=f"epoch {epoch}/{self.cfg.epochs} [{self.mode}]",
                   disable=not (progress_enabled(progress) and self.world.main),
                   leave=False)
        for b in bar:
            idx = order[b * bs:(b + 1) * bs]
            step_now = (b + 1) % accum == 0 or b + 1 == nb
            sync = contextlib.nullcontext() if step_now or not self.world.distributed else self.step_module.no_sync()
            with sync:  # accumulation: gradients are averaged across processes on the stepping batch only
                loss, local = self._batch_loss(idx)
                (loss / accum).backward()
            if step_now:
                self.opt.step()
                self.opt.zero_grad(set_to_none=True)
                self.sched.step()
                if self.mode == "contrastive":
                    with torch.no_grad():  # as open_clip's training script: keep the scale <= 100
                        self.bundle.model.logit_scale.clamp_(0, math.log(100))
            n_mine = len(range(*rows(len(idx), self.world).indices(len(idx))))
            batch_loss = sum_all(float(local.detach()) * n_mine, self.world) / len(idx)
            total += batch_loss * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{batch_loss:.4f}")
            if self.on_step is not None:
                self.on_step(epoch, b)
        return total / max(seen, 1), seen

    def _features(self, images: np.ndarray) -> torch.Tensor:
        """Normalised image features of all ``images``: each process encodes its rows, all get all rows."""
        mine = rows(len(images), self.world)
        return gather_rows(image_features(self.bundle, images[mine], precision=self.precision), len(images),
                           self.world)

    @torch.no_grad()
    def validate(self) -> float:
        self.module.eval()
        val = self.val_split
        if self.mode != "contrastive":
            feats = self.val_feats if self.probe else self._features(val.images)
            return val_metric(val.labels, self.classifier.head(feats), self.mode == "multilabel")
        img_f = self._features(val.images)
        if self.metric_name == "acc":  # zero-shot classification with the current text tower
            return val_metric(val.labels, head_from_texts(self.bundle, self.class_texts)(img_f), multilabel=False)
        texts, text_to_image = caption_index(val)  # every caption of each validation image, sharded
        mine = rows(len(texts), self.world)
        txt_f = gather_rows(text_features(self.bundle, list(texts)[mine], precision=self.precision),
                            len(texts), self.world)
        return retrieval_r1(img_f, txt_f, text_to_image)

    # -- checkpoint state: only what this run changes (see checkpoint.changed_state)
    def _state_module(self) -> nn.Module:
        return self.classifier if self.mode != "contrastive" else self.bundle.model

    def model_state(self) -> dict[str, torch.Tensor]:
        if self.probe:  # a linear probe changes its head alone (the frozen tower runs in eval mode)
            return {f"head.{k}": v.detach().cpu().clone() for k, v in self.classifier.head.state_dict().items()}
        return checkpoint.changed_state(self._state_module(), also=("head.",))

    def load_model_state(self, ckpt: dict[str, Any], path: Path) -> None:
        """Put a checkpoint's ``model`` back (read and checked by :func:`checkpoint.load`), after checking that this
        engine's frozen weights are the ones the run trained with (``ckpt["base"]``)."""
        checkpoint.load_changed_state(self._state_module(), ckpt["model"], path, base=ckpt.get("base", ""))

    def _generators(self) -> dict[str, torch.Generator]:
        gens = dict(self.gens)
        if self.sampler is not None:
            gens["sampler"] = self.sampler.generator
        return gens

    def rng_state(self) -> dict[str, Any]:
        return checkpoint.rng_state(self._generators())

    def set_rng_state(self, st: dict[str, Any]) -> None:
        checkpoint.set_rng_state(st, self._generators())

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
                           mode=self.mode, metric_name=self.metric_name, best_metric=best, cfg=self.cfg)
