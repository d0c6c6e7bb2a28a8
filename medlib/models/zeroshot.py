"""Zero-shot classification from prompt ensembles (CLIP's recipe).

* class embedding = mean of the L2-normalised prompt embeddings of the class, renormalised;
* multiclass: ``softmax(logit_scale * img @ cls.T)`` (rows sum to 1);
* multilabel: each class scored by a positive-vs-negative prompt pair
  (``softmax`` over the pair = ``sigmoid(s*img@pos - s*img@neg)``), so scores lie in [0, 1] and are
  independent across classes. The negative ensemble defaults to ``text.negative_templates_for(domain)``.

Every model call runs under ``torch.no_grad()`` in eval mode (the previous train/eval mode is restored).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Iterator, Sequence

import numpy as np
import torch
from open_clip import build_zero_shot_classifier
from tqdm.auto import tqdm

from ..progress import enabled as progress_enabled
from ..errors import MedlibError
from .load import ClipBundle, logit_scale
from .preprocess import bundle_input
from .prompts import class_prompts, negative_templates_for

TASKS = ("multiclass", "multilabel")


@contextlib.contextmanager
def inference(model: torch.nn.Module) -> Iterator[None]:
    """eval mode + no_grad, restoring the model's previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _l2(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


def autocast(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA when ``precision`` is auto/bf16; a no-op context on CPU / fp32."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=resolve_precision(device, precision) == "bf16")


def resolve_precision(device: torch.device, precision: str) -> str:
    """``auto`` -> bf16 on CUDA, fp32 elsewhere; ``fp32``/``bf16`` as given."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    if precision not in ("fp32", "bf16"):
        raise MedlibError(f"precision={precision!r}: unknown. Fix: use auto, fp32 or bf16")
    return precision


def image_features(bundle: ClipBundle, images_uint8: np.ndarray | torch.Tensor, batch_size: int = 256,
                   precision: str = "auto", progress: bool = False) -> torch.Tensor:
    """(N, D) float32 L2-normalised image embeddings on the bundle's device (for training code)."""
    n = int(images_uint8.shape[0])
    chunks = []
    starts = range(0, n, batch_size)
    with inference(bundle.model):
        for i in tqdm(starts, desc=f"encode images ({bundle.name})",
                      disable=not progress_enabled(progress) or len(starts) <= 1,
                      leave=False):
            with autocast(bundle.device, precision):
                f = bundle.model.encode_image(bundle_input(bundle, images_uint8[i:i + batch_size]))
            chunks.append(_l2(f))
    if not chunks:
        return torch.zeros((0, _embed_dim(bundle)), device=bundle.device)
    return torch.cat(chunks)


def text_features(bundle: ClipBundle, texts: Sequence[str], batch_size: int = 256,
                  precision: str = "auto") -> torch.Tensor:
    """(M, D) float32 L2-normalised text embeddings on the bundle's device (for training code)."""
    texts = list(texts)
    chunks = []
    with inference(bundle.model):
        for i in range(0, len(texts), batch_size):
            tokens = bundle.tokenizer(texts[i:i + batch_size]).to(bundle.device)
            with autocast(bundle.device, precision):
                chunks.append(_l2(bundle.model.encode_text(tokens)))
    if not chunks:
        return torch.zeros((0, _embed_dim(bundle)), device=bundle.device)
    return torch.cat(chunks)


def encode_images(bundle: ClipBundle, images_uint8: np.ndarray | torch.Tensor, batch_size: int = 256,
                  progress: bool = True) -> np.ndarray:
    """(N, D) float32 L2-normalised image embeddings as numpy; images are preprocessed batch by batch on device."""
    return image_features(bundle, images_uint8, batch_size, progress=progress).cpu().numpy()


def encode_texts(bundle: ClipBundle, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
    """(M, D) float32 L2-normalised text embeddings as numpy."""
    return text_features(bundle, texts, batch_size).cpu().numpy()


def _embed_dim(bundle: ClipBundle) -> int:
    proj = getattr(bundle.model.visual, "output_dim", None)
    return int(proj) if proj else 0


def ensemble(prompt_embeddings: np.ndarray) -> np.ndarray:
    """(C, T, D) normalised prompt embeddings -> (C, D): mean over T, renormalised."""
    mean = prompt_embeddings.mean(axis=1)
    return (mean / np.linalg.norm(mean, axis=-1, keepdims=True)).astype(np.float32)


def class_text_embeddings(bundle: ClipBundle, class_texts: Sequence[Sequence[str]]) -> torch.Tensor:
    """(C, D) float32 prompt-ensemble class embeddings on the bundle's device: the mean of each class's
    L2-normalised prompt embeddings, renormalised (CLIP's recipe). The one ensembling implementation of
    medlib (zero-shot scoring, classifier heads, training-time validation): open_clip's
    ``build_zero_shot_classifier``, fed the already-formatted prompts (class ``i``'s ``j``-th prompt)."""
    texts = [list(t) for t in class_texts]
    if not texts or any(len(t) == 0 for t in texts):
        raise MedlibError("class_texts: every class needs at least one prompt. Fix: pass a non-empty list per class")
    n_tpl = len(texts[0])
    if any(len(t) != n_tpl for t in texts):
        raise MedlibError("class_texts: every class needs the same number of prompts (one per template). "
                          "Fix: build them with medlib.text.class_prompts")
    templates = [functools.partial(_nth_prompt, texts, j) for j in range(n_tpl)]
    with inference(bundle.model):
        w = build_zero_shot_classifier(bundle.model, bundle.tokenizer, list(range(len(texts))), templates,
                                       num_classes_per_batch=max(1, 256 // n_tpl), device=bundle.device)
    return w.T.float().contiguous()


def _nth_prompt(texts: list[list[str]], j: int, i: int) -> str:
    return texts[i][j]


def class_embeddings(bundle: ClipBundle, class_names: Sequence[str], templates: Sequence[str]) -> np.ndarray:
    """(C, D) prompt-ensemble class embeddings of ``class_names`` x ``templates`` (CLIP's recipe)."""
    return class_text_embeddings(bundle, class_prompts(class_names, templates)).cpu().numpy()


def classifier_weights(bundle: ClipBundle, class_texts: Sequence[Sequence[str]],
                       negative_texts: Sequence[Sequence[str]] | None = None) -> torch.Tensor:
    """(C, D) weights ``W`` of the zero-shot classifier as a linear map of the normalised image embedding:
    ``s * pos`` (multiclass: softmax of ``img @ W.T``) or, with ``negative_texts``, ``s * (pos - neg)``
    (multilabel: ``sigmoid(img @ W.T)`` = :func:`scores_from_embeddings`'s pairwise score). ``s`` is
    :func:`medlib.models.logit_scale` (clamped at 100), as zero-shot scoring uses."""
    w = class_text_embeddings(bundle, class_texts)
    if negative_texts is not None:
        w = w - class_text_embeddings(bundle, negative_texts)
    return logit_scale(bundle) * w


def scores_from_embeddings(image_emb: np.ndarray, class_emb: np.ndarray, scale: float, task: str,
                           negative_emb: np.ndarray | None = None) -> np.ndarray:
    """y_score (N, C) float64 from normalised embeddings (see module doc for the two tasks)."""
    img = torch.from_numpy(np.asarray(image_emb, dtype=np.float64))
    pos = scale * img @ torch.from_numpy(np.asarray(class_emb, dtype=np.float64)).T
    if task == "multiclass":
        return torch.softmax(pos, dim=1).numpy()
    if task == "multilabel":
        if negative_emb is None:
            raise ValueError("multilabel zero-shot needs negative prompt embeddings")
        neg = scale * img @ torch.from_numpy(np.asarray(negative_emb, dtype=np.float64)).T
        return torch.sigmoid(pos - neg).numpy()  # == softmax over the (positive, negative) pair
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def zero_shot_scores(bundle: ClipBundle, images: np.ndarray | torch.Tensor, class_names: Sequence[str], task: str,
                     templates: Sequence[str], batch_size: int = 256, *,
                     negative_templates: Sequence[str] | None = None, domain: str = "chest_xray",
                     progress: bool = True) -> np.ndarray:
    """Zero-shot y_score (N, C) float64: multiclass rows sum to 1; multilabel entries in [0, 1].

    Multi-label negatives: ``negative_templates`` if given, else ``negative_templates_for(domain)``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    img = encode_images(bundle, images, batch_size=batch_size, progress=progress)
    cls = class_embeddings(bundle, class_names, templates)
    neg = None
    if task == "multilabel":
        neg = class_embeddings(bundle, class_names, list(negative_templates or negative_templates_for(domain)))
    return scores_from_embeddings(img, cls, logit_scale(bundle), task, neg)
