"""Model selection on the validation split: the split checks and the per-epoch validation metric.

Shared by the CLIP engine and the CNN baseline (``medlib.train.cnn``), so both select epochs the same way.
The test split is never read here.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from ..data.base import DatasetBundle, Split
from ..errors import fail


def informative_labels(y: np.ndarray) -> list[int]:
    """Columns of a multi-label (N, C) array that hold both values (AUROC is defined only for those)."""
    return [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]


def val_metric(y_true: np.ndarray, y_score: np.ndarray | torch.Tensor, multilabel: bool) -> float:
    """Model-selection metric on the validation split: accuracy of the argmax, or (multi-label) macro
    AUROC over the labels that have both values in ``y_true``."""
    s = y_score.float().cpu().numpy() if isinstance(y_score, torch.Tensor) else np.asarray(y_score)
    y = np.asarray(y_true)
    if multilabel:
        return float(np.mean([roc_auc_score(y[:, c], s[:, c]) for c in informative_labels(y)]))
    return float((s.argmax(1) == y).mean())


def retrieval_r1(img_f: torch.Tensor, txt_f: torch.Tensor, text_to_image: np.ndarray | None = None) -> float:
    """Validation metric of contrastive runs without class labels: mean of image->text and text->image Recall@1
    by :func:`medlib.metrics.retrieval_recall`, the one Recall@K of the package (several captions per image via
    ``text_to_image``; ties count against the query). Default: row i of ``img_f`` belongs to row i of ``txt_f``."""
    from ..metrics import retrieval_recall

    r = retrieval_recall(img_f.float().cpu().numpy(), txt_f.float().cpu().numpy(), ks=(1,),
                         text_to_image=text_to_image)
    return (r["i2t_R@1"] + r["t2i_R@1"]) / 2


def require_split(data: DatasetBundle, name: str) -> Split:
    """``data.splits[name]``, present and non-empty, else the one-line error."""
    if name not in data.splits or len(data.splits[name]) == 0:
        raise fail(f"dataset {data.name!r}", f"has no {name!r} split", "use a loader that carves a validation split")
    return data.splits[name]


def validation_split(data: DatasetBundle, multilabel: bool) -> Split:
    """``data.splits["val"]``, checked: present, non-empty and, for a multi-label metric, holding at
    least one label with both values (else no epoch could ever be selected)."""
    val = require_split(data, "val")
    if multilabel and not informative_labels(np.asarray(val.labels)):
        raise fail(f"dataset {data.name!r}", "no label has both positive and negative examples in the 'val' split "
                   "(validation AUROC is undefined)", "use a larger validation split")
    return val


def cap(split: Split, max_n: int, seed: int) -> Split:
    """At most ``max_n`` rows of ``split`` (a seeded subset, order kept); 0 / None: all."""
    if not max_n or max_n >= len(split):
        return split
    return split.subset(np.sort(np.random.default_rng(seed).permutation(len(split))[:max_n]))
