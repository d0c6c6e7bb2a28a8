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
from ..models.zeroshot import classifier_weights, image_features
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


def head_from_texts(bundle: ClipBundle, class_texts: list[list[str]],
                    negative_texts: list[list[str]] | None = None) -> nn.Linear:
    """Linear head (D -> C) that reproduces the zero-shot classifier on the normalised image embedding:
    weights :func:`medlib.models.zeroshot.classifier_weights` (``s * pos``; multilabel, with ``negative_texts``,
    ``s * (pos - neg)`` so that ``sigmoid`` of its logits is the zero-shot pairwise score), zero bias."""
    w = classifier_weights(bundle, class_texts, negative_texts)
    head = nn.Linear(w.shape[1], w.shape[0], bias=True).to(bundle.device)
    with torch.no_grad():
        head.weight.copy_(w)
        head.bias.zero_()
    return head


def predict(bundle_or_result: ClipBundle | TrainResult, images: np.ndarray, *, mode: str,
            batch_size: int = 256, head: nn.Linear | None = None,
            class_texts: list[list[str]] | None = None,
            negative_texts: list[list[str]] | None = None) -> np.ndarray:
    """Class probabilities (N, C): softmax for contrastive/label, sigmoid for multilabel.

    The head is, in order: ``head``, the result's head, or the zero-shot one built from ``class_texts``
    (multilabel: and ``negative_texts``).
    """
    check_mode(mode)
    if isinstance(bundle_or_result, TrainResult):
        bundle, head = bundle_or_result.model, head or bundle_or_result.head
    else:
        bundle = bundle_or_result
    if head is None:
        if class_texts is None:
            raise MedlibError("predict: no classifier head. Fix: pass a TrainResult, head= or class_texts=")
        if mode == "multilabel" and negative_texts is None:
            raise MedlibError("predict: a multilabel zero-shot head needs negative_texts. "
                              "Fix: pass medlib.models.prompts.negative_prompts(class_names, domain)")
        head = head_from_texts(bundle, class_texts, negative_texts if mode == "multilabel" else None)
    feats = image_features(bundle, images, batch_size)
    with torch.no_grad():
        logits = head.to(feats.device)(feats).double()
    probs = torch.sigmoid(logits) if mode == "multilabel" else torch.softmax(logits, dim=-1)
    return probs.cpu().numpy()
