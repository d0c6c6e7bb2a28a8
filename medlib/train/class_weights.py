"""Class weights and class-balanced sampling, fitted on the training labels.

Labels are (N,) class indices (multiclass) or (N, C) 0/1 (multi-label). The losses
(:mod:`medlib.train.losses`) and the engine's sampler read these; nothing here sees a validation or test split.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import WeightedRandomSampler

from ..errors import MedlibError, fail


def class_balanced_weights(counts: np.ndarray | list[int], beta: float = 0.999) -> np.ndarray:
    """Class-balanced weights by the effective number of samples (Cui et al., CVPR 2019).

    ``w_c = (1 - beta) / (1 - beta ** n_c)``, normalised to sum to C. A class with no training
    example gets the weight of a class with one (it cannot contribute to the loss anyway).
    """
    n = np.maximum(np.asarray(counts, dtype=np.float64), 1.0)
    if not 0.0 <= beta < 1.0:
        raise fail(f"class-balanced beta={beta}", "must be in [0, 1)",
                   "set imbalance.cb_beta (loss_kwargs beta) to e.g. 0.999")
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return w / w.sum() * len(n)


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Examples per class (multiclass) or positives per label (multi-label), shape (C,)."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.sum(axis=0).astype(np.int64)
    return np.bincount(labels.astype(np.int64), minlength=num_classes)[:num_classes]


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Inverse-frequency weights ``w_c = C * (1 / n_c) / sum_j (1 / n_j)``: proportional to ``1 / n_c`` (and so to
    the textbook ``N / (C * n_c)``, which differs by a constant factor), scaled to sum to C. A class without
    examples counts as one."""
    n = np.maximum(class_counts(labels, num_classes).astype(np.float64), 1.0)
    w = 1.0 / n
    return w / w.sum() * num_classes


def effective_number_weights(labels: np.ndarray, num_classes: int, beta: float = 0.999) -> np.ndarray:
    """Class-balanced weights by effective number (Cui et al., CVPR 2019), normalised to sum to C."""
    return class_balanced_weights(class_counts(labels, num_classes), beta)


def class_priors(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Training-set class frequencies (sum 1), for logit adjustment (Menon et al., ICLR 2021)."""
    n = np.maximum(class_counts(labels, num_classes).astype(np.float64), 1.0)
    return n / n.sum()


def pos_weights(labels: np.ndarray, scheme: str = "inverse_freq", beta: float = 0.999) -> np.ndarray:
    """Multi-label ``pos_weight`` for BCE-with-logits, one per label, from a class-weighting ``scheme``.

    Each label is a binary problem with ``n_pos`` positives and ``n_neg`` negatives; the scheme weighs the two
    classes and ``pos_weight = w_pos / w_neg``: ``inverse_freq`` gives ``n_neg / n_pos``, ``effective_number``
    (Cui et al., CVPR 2019) gives ``(1 - beta^n_neg) / (1 - beta^n_pos)``. Counts below one count as one.
    """
    labels = np.asarray(labels)
    pos = np.maximum(labels.sum(axis=0).astype(np.float64), 1.0)
    neg = np.maximum(labels.shape[0] - labels.sum(axis=0).astype(np.float64), 1.0)
    if scheme == "inverse_freq":
        return neg / pos
    if scheme == "effective_number":
        if not 0.0 <= beta < 1.0:
            raise MedlibError(f"pos_weights: beta={beta} must be in [0, 1). Fix: set imbalance.cb_beta to e.g. 0.999")
        return (1.0 - np.power(beta, neg)) / (1.0 - np.power(beta, pos))
    raise MedlibError(f"pos_weights: unknown scheme {scheme!r}. Fix: use 'inverse_freq' or 'effective_number'")


def sample_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-example weights that make classes equally likely: ``1 / n_{y_i}``.

    Multi-label: an example weighs as much as its rarest positive label (all-negative rows count
    as one extra 'no finding' class), so rare pathologies are over-sampled.
    """
    labels = np.asarray(labels)
    if labels.ndim == 1:
        n = class_counts(labels, num_classes).astype(np.float64)
        return 1.0 / n[labels]
    ext = np.concatenate([labels, (labels.sum(axis=1) == 0)[:, None]], axis=1).astype(np.float64)
    inv = 1.0 / np.maximum(ext.sum(axis=0), 1.0)
    return (ext * inv[None, :]).max(axis=1)


def balanced_sampler(labels: np.ndarray, seed: int, num_samples: int | None = None,
                     num_classes: int | None = None) -> WeightedRandomSampler:
    """Seeded class-balanced sampler (with replacement), ``num_samples`` defaults to N.

    Its ``generator`` attribute holds the RNG; save ``sampler.generator.get_state()`` to resume.
    """
    labels = np.asarray(labels)
    c = num_classes or (labels.shape[1] if labels.ndim == 2 else int(labels.max()) + 1)
    w = torch.as_tensor(sample_weights(labels, c), dtype=torch.double)
    gen = torch.Generator().manual_seed(int(seed))
    return WeightedRandomSampler(w, num_samples or len(labels), replacement=True, generator=gen)
