"""Figures, one module per subject; every function takes arrays or DataFrames and returns a matplotlib Figure,
and :func:`save_figure` writes it under ``reports/<profile>/figures/`` with the marks the run and its data need.

==================  ==========================================================================
``figure``          saving and marks, titles, label placement, reference lines, the palette
``data``            examples per class, sample grids, caption statistics (notebook 01)
``classification``  confusion matrices, per-class bars, precision-recall curves
``training``        learning curves, WiSE-FT curves, seeds per method, label efficiency
``comparison``      bars with intervals, measured vs published, trade-offs, paired differences
``retrieval``       Recall@K against training images (notebook 07)
==================  ==========================================================================
"""

from .classification import confusion_matrix_plot, multilabel_confusion_plot, per_class_bars, pr_curves
from .comparison import bar_with_ci, paired_differences_plot, sota_bars, tradeoff_scatter
from .data import class_counts_bar, sample_grid, text_statistics_plot
from .figure import (DPI, GENERATED_MARK, NOT_COMPARABLE, PAGE_WIDTH_IN, PALETTE, majority_rate,
                     mark_generated, mark_run, save_figure)
from .retrieval import recall_vs_train_size
from .training import label_efficiency_plot, learning_curve, seed_bars, wise_curve

__all__ = ["DPI", "GENERATED_MARK", "NOT_COMPARABLE", "PAGE_WIDTH_IN", "PALETTE", "bar_with_ci",
           "class_counts_bar", "confusion_matrix_plot", "label_efficiency_plot", "learning_curve", "majority_rate",
           "mark_generated", "mark_run", "multilabel_confusion_plot", "paired_differences_plot", "per_class_bars",
           "pr_curves", "recall_vs_train_size", "sample_grid", "save_figure", "seed_bars", "sota_bars",
           "text_statistics_plot", "tradeoff_scatter", "wise_curve"]
