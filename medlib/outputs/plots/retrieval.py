"""Notebook 07's figure: Recall@K against training images, per augmentation."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...metrics import RETRIEVAL_KS
from ..names import augmentation_name, dataset_name, humanize
from ..references import published_recall

ZERO_SHOT = "zero-shot"


def recall_vs_train_size(summary: pd.DataFrame, dataset: str, title: str = "", published: bool = True):
    """Recall@K (rows: image->text, text->image; columns: K) against training images (log axis), one line per
    augmentation (mean over seeds, whiskers min-max over seeds), zero-shot as a dashed line and, with
    ``published``, the published zero-shot number of ViT-B-32 openai as a dotted grey line where one exists (a
    quote for orientation, comparable only to that model's zero-shot run at 224 px)."""
    d = summary[summary["dataset"] == dataset]
    zs = d[d["method"] == ZERO_SHOT]
    ft = d[(d["method"] != ZERO_SHOT) & (d["variant"] == "")]
    sizes = sorted(int(x) for x in ft["n_train"].unique())
    pub = published_recall(dataset) if published else {}
    fig, axes = plt.subplots(2, len(RETRIEVAL_KS), figsize=(3.4 * len(RETRIEVAL_KS), 6.3), sharex=True, squeeze=False)
    for row, direction in enumerate(("i2t", "t2i")):
        for col, k in enumerate(RETRIEVAL_KS):
            ax, m = axes[row][col], f"{direction}_R@{k}"
            for aug, g in ft.groupby("augmentation", sort=False):
                g = g.sort_values("n_train")
                err = None
                if f"{m}_min" in g and g["seeds"].max() > 1:
                    err = [g[m] - g[f"{m}_min"], g[f"{m}_max"] - g[m]]
                ax.errorbar(g["n_train"], g[m], yerr=err, marker="o", capsize=3, label=augmentation_name(aug))
            if len(zs):
                ax.axhline(float(zs[m].iloc[0]), ls="--", color="k", lw=1, label=ZERO_SHOT)
            if m in pub:
                ax.axhline(pub[m], ls=":", color="grey", lw=1.2, label="published zero-shot, ViT-B-32 openai")
            ax.set_title(f"{'image→text' if direction == 'i2t' else 'text→image'} R@{k}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            if len(sizes) > 1:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(sizes, [str(n) for n in sizes])
            if row == 1:
                ax.set_xlabel("training images")
    handles = {lab: h for ax in axes.ravel() for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(humanize(title) if title else
                 f"{dataset_name(dataset)}: Recall@K against training images, per augmentation (test, every caption)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
