"""Classifier heads on CLIP image embeddings, and prediction with them.

``ClipClassifier`` = ``head(normalize(clip.encode_image(x)))``; :func:`head_from_texts` initialises the
head from class prompts so that it reproduces the zero-shot classifier; :func:`predict` turns images
into class probabilities with a trained result, a head, or class prompts.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MedlibError
from ..models import ClipBundle
from ..zeroshot import image_features, text_features
from .result import MODES, TrainResult


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise MedlibError(f"finetune: unknown mode {mode!r}. Fix: use one of {MODES}")


class ClipClassifier(nn.Module):
    """``head(normalize(clip.encode_image(x)))``: the label/multilabel model."""

    def __init__(self, clip: nn.Module, head: nn.Linear):
        super().__init__()
        self.clip = clip
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.normalize(self.clip.encode_image(x), dim=-1))


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
    check_mode(mode)
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
