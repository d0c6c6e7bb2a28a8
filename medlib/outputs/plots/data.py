"""Figures of notebook 01: examples per class, sample grids, caption statistics of withheld sources."""

from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..names import humanize
from .figure import PAGE_WIDTH_IN, PALETTE, all_zero_note, short_label, titled, wrap


def class_counts_bar(counts: pd.DataFrame | Mapping[str, Mapping[str, int]], title: str = "Class counts",
                     log: bool = False) -> Figure:
    """Grouped bars of examples per class; ``counts`` is a DataFrame (index = class, columns = splits) or
    ``{split: {class: count}}``."""
    df = counts if isinstance(counts, pd.DataFrame) else pd.DataFrame(counts)
    if len(df) > 6:  # many classes: one row per class, so the figure fits the page width at a legible size
        fig, ax = plt.subplots(figsize=(7.5, min(9.0, 0.13 * len(df) * max(1, df.shape[1]) + 1.5)))
        df.plot.barh(ax=ax, logx=log, color=PALETTE[: df.shape[1]])
        ax.invert_yaxis()
        ax.set_ylabel("class")
        ax.set_xlabel("examples" + (" (log scale)" if log else ""))
        ax.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    else:
        fig, ax = plt.subplots(figsize=(min(PAGE_WIDTH_IN, max(5.0, 0.6 * len(df) * max(1, df.shape[1]) + 2)), 3.8))
        df.plot.bar(ax=ax, logy=log, rot=0, color=PALETTE[: df.shape[1]])
        ax.set_xticks(range(len(df)), [short_label(c, 14) for c in df.index])
        ax.set_xlabel("class")
        ax.set_ylabel("examples" + (" (log scale)" if log else ""))
        ax.legend(title="split", fontsize=8)
    for cont in ax.containers:
        ax.bar_label(cont, fontsize=6)
    all_zero_note(ax, df.to_numpy().ravel().tolist(), "every count")
    return titled(fig, title)


def sample_grid(images: np.ndarray, captions: Sequence[str] | None = None, ncols: int = 4, max_chars: int = 60,
                title: str = "Samples") -> Figure:
    """Images (N, H, W) or (N, H, W, 3) uint8 in a grid, each with its caption (shortened to ``max_chars``)
    underneath. The space between rows is sized to the longest caption, so no caption reaches into the image
    below or above it."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols)) if n else 1
    caps = []
    for i in range(n if captions is not None else 0):
        cap = str(captions[i])
        caps.append(wrap(cap if len(cap) <= max_chars else cap[: max_chars - 1] + "…", 28))
    lines = max((c.count("\n") + 1 for c in caps), default=0)
    img, cap_h, top, bottom = 2.3, (lines * 7 * 1.3 + 8) / 72 if lines else 0.1, 0.55, 0.05  # inches
    height = nrows * (img + cap_h) + top + bottom
    fig = plt.figure(figsize=(2.6 * ncols, height))
    grid = fig.add_gridspec(nrows, ncols, left=0.02, right=0.98, top=1 - top / height,
                            bottom=(bottom + cap_h) / height, hspace=cap_h / img, wspace=0.12)
    for i in range(nrows * ncols):
        ax = fig.add_subplot(grid[i // ncols, i % ncols])
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray" if images[i].ndim == 2 else None)
        if caps:
            ax.text(0.5, -0.03, caps[i], transform=ax.transAxes, ha="center", va="top", fontsize=7)
    if title:
        fig.suptitle(humanize(title), y=1 - 0.12 / height, va="top")
    return fig


def text_statistics_plot(lengths: Mapping[str, np.ndarray], prevalence: pd.DataFrame, title: str = "",
                         note: str = "") -> Figure:
    """Statistics of data whose text and images may not be shown (credentialed sources such as MIMIC-CXR):
    caption length per split (histogram, words) and label prevalence per split (bars). ``note`` says why."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(PAGE_WIDTH_IN, 4.2))
    for split, ln in lengths.items():
        a.hist(ln, bins=20, alpha=0.6, label=f"{split} (n={len(ln)})")
    a.set_xlabel("caption length (words)"), a.set_ylabel("captions")
    if lengths:
        a.legend(fontsize=8)
    if not prevalence.empty:
        prevalence.plot.barh(ax=b)
        b.set_xlabel("share of images with the label"), b.legend(fontsize=8)
    if note:
        fig.text(0.5, -0.02, wrap(note, 140), ha="center", va="top", fontsize=8)
    return titled(fig, title)
