"""Metrics, one module per kind, each recomputable from a run's predictions file:

====================  ==========================================================================
``classification``    input checks, the decision rule, point estimates (scikit-learn)
``replicates``        the same metrics as vectorised functions of bootstrap row weights
``bootstrap``         :func:`evaluate` (metrics + 95% intervals), the paired interval of a difference
``retrieval``         image<->text Recall@K with several captions per image
``thresholds``        decision thresholds tuned on validation, cross-fitted validation metrics
====================  ==========================================================================
"""

from .bootstrap import evaluate, mean_statistic, paired_bootstrap, paired_interval, resample_weights
from .classification import (ECE_BINS, check_predictions, expected_calibration_error, predict_labels,
                             topk_accuracy)
from .retrieval import (RETRIEVAL_KS, recall_from_ranks, retrieval_hits, retrieval_ranks, retrieval_recall,
                        similarity)
from .thresholds import THRESHOLD_METRICS, apply_thresholds, cross_fitted_threshold_metrics, tune_thresholds

__all__ = ["ECE_BINS", "RETRIEVAL_KS", "THRESHOLD_METRICS", "apply_thresholds", "check_predictions",
           "cross_fitted_threshold_metrics", "evaluate", "expected_calibration_error", "mean_statistic",
           "paired_bootstrap", "paired_interval", "predict_labels", "recall_from_ranks", "resample_weights",
           "retrieval_hits", "retrieval_ranks", "retrieval_recall", "similarity", "topk_accuracy",
           "tune_thresholds"]
