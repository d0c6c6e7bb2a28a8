"""Retrieval metrics: image<->text Recall@K with several captions per image (Flickr30K, COCO: five)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import fail

RETRIEVAL_KS = (1, 5, 10)
_SIM_CHUNK = 512  # image rows of the similarity matrix held at once (bounds memory for COCO's 5k x 25k)


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    ks: Sequence[int] = RETRIEVAL_KS,
    text_to_image: np.ndarray | None = None,
) -> dict[str, float]:
    """Image->text and text->image Recall@K from embeddings (L2-normalised here, cosine similarity).

    The one Recall@K of the package: evaluation (``medlib.outputs.records.save_retrieval_run``) and the validation metric of
    contrastive runs (``finetune``) both call it. ``text_to_image`` (M,) gives the image index of each caption
    (several captions per image: Flickr30K/COCO have five); default: one caption per image, caption i belongs to
    image i. The standard protocol (CLIP_benchmark's ``zeroshot_retrieval``): t2i, each caption is a query and a
    hit when its image is in its top K; i2t, each image is a query and a hit when ANY of its captions is in its
    top K. Ties count against the query (see :func:`retrieval_ranks`).
    Returns ``{"i2t_R@1": ..., ..., "t2i_R@10": ..., "mean_recall": ...}``.
    """
    i2t_rank, t2i_rank = retrieval_ranks(image_emb, text_emb, text_to_image)
    return recall_from_ranks(i2t_rank, t2i_rank, ks)


def recall_from_ranks(i2t_rank: np.ndarray, t2i_rank: np.ndarray, ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, float]:
    """Recall@K from per-query ranks (0 = first): the mean of the hit vectors ``rank < K``."""
    hits = retrieval_hits(i2t_rank, t2i_rank, ks)
    out = {k: float(np.mean(v)) for k, v in hits.items()}
    out["mean_recall"] = float(np.mean(list(out.values())))
    return out


def retrieval_hits(i2t_rank: np.ndarray, t2i_rank: np.ndarray, ks: Sequence[int] = RETRIEVAL_KS) -> dict[str, np.ndarray]:
    """Per-query 0/1 hit vectors ``{"i2t_R@K": (N_img,), "t2i_R@K": (N_txt,)}``: what a (paired) bootstrap over
    queries resamples. Keys in the order of :func:`retrieval_recall`."""
    i2t_rank, t2i_rank = np.asarray(i2t_rank), np.asarray(t2i_rank)
    out = {f"i2t_R@{k}": (i2t_rank < k).astype(np.float64) for k in ks}
    out.update({f"t2i_R@{k}": (t2i_rank < k).astype(np.float64) for k in ks})
    return out


def retrieval_ranks(image_emb: np.ndarray, text_emb: np.ndarray,
                    text_to_image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-query ranks ``(i2t_rank (N_img,), t2i_rank (N_txt,))``, int64, 0 = the correct item is first.

    i2t rank of image i: the number of OTHER images' captions scoring at least as high as i's best caption;
    t2i rank of caption j: the number of other images scoring at least as high as j's image. So ties count
    against the query (duplicate captions never lift a score), and with one correct candidate a query's rank + 1
    is scikit-learn's per-query ``coverage_error`` (ties get the maximal rank). Computed over chunks of image rows
    (float64 similarities), so a 5k x 25k problem never holds the whole matrix.
    Own code: scikit-learn has no Recall@K for several positives per query.
    """
    a, b = _normalised_pair(image_emb, text_emb)
    n_img, n_txt = len(a), len(b)
    t2i = _check_text_to_image(text_to_image, n_img, n_txt)
    if np.bincount(t2i, minlength=n_img).min() == 0:
        raise fail("retrieval_recall", "an image has no caption in text_to_image",
                   "give every image at least one caption (or drop captionless images)")
    chunks = [(lo, min(lo + _SIM_CHUNK, n_img)) for lo in range(0, n_img, _SIM_CHUNK)]
    # Pass 1: each caption's score with its own image, taken from the same matrix products as pass 2 (an einsum
    # would round differently and split exact ties).
    correct = np.empty(n_txt)
    for lo, hi in chunks:
        mine = np.flatnonzero((t2i >= lo) & (t2i < hi))
        correct[mine] = (a[lo:hi] @ b.T)[t2i[mine] - lo, mine]
    i2t_rank = np.zeros(n_img, np.int64)
    t2i_rank = np.zeros(n_txt, np.int64)
    for lo, hi in chunks:
        sim = a[lo:hi] @ b.T  # (chunk, N_txt)
        own = t2i[None, :] == np.arange(lo, hi)[:, None]  # own[r, j]: caption j belongs to image lo + r
        best_own = np.where(own, sim, -np.inf).max(axis=1)
        i2t_rank[lo:hi] = ((sim >= best_own[:, None]) & ~own).sum(axis=1)
        t2i_rank += ((sim >= correct[None, :]) & ~own).sum(axis=0)
    return i2t_rank, t2i_rank


def similarity(image_emb: np.ndarray, text_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity (N_img, N_txt) of two embedding matrices (float64)."""
    a, b = _normalised_pair(image_emb, text_emb)
    return a @ b.T


def _normalised_pair(image_emb: np.ndarray, text_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both embedding matrices as float64 with unit rows (checked: non-empty, same width)."""
    a = np.asarray(image_emb, dtype=np.float64)
    b = np.asarray(text_emb, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) == 0 or len(b) == 0:
        raise fail("retrieval_recall", f"embeddings must be non-empty (N, D) and (M, D), got {a.shape} and {b.shape}",
                   "pass image and text embeddings of the same width")
    a = a / np.clip(np.linalg.norm(a, axis=1, keepdims=True), 1e-12, None)
    b = b / np.clip(np.linalg.norm(b, axis=1, keepdims=True), 1e-12, None)
    return a, b


def _check_text_to_image(text_to_image, n_img: int, n_txt: int) -> np.ndarray:
    if text_to_image is None:
        if n_img != n_txt:
            raise fail("retrieval_recall", f"{n_img} images but {n_txt} captions and no text_to_image",
                       "pass text_to_image (the image index of each caption)")
        return np.arange(n_img)
    t2i = np.asarray(text_to_image)
    if t2i.shape != (n_txt,) or not np.issubdtype(t2i.dtype, np.integer) or t2i.min() < 0 or t2i.max() >= n_img:
        raise fail("retrieval_recall", f"text_to_image must be {n_txt} integer image indices in 0..{n_img - 1}",
                   "pass one image index per caption")
    return t2i.astype(np.int64)

