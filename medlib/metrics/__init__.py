"""Metrics, one module per kind, each recomputable from a run's predictions file:

====================  ==========================================================================
``classification``    input checks, the decision rule, point estimates (scikit-learn)
``replicates``        the same metrics as vectorised functions of bootstrap row weights
``bootstrap``         :func:`evaluate` (metrics + 95% intervals), the paired interval of a difference
``verdicts``          reading a difference: seed-level interval, p-values, Holm's correction, the verdict
``retrieval``         image<->text Recall@K with several captions per image
``thresholds``        decision thresholds tuned on validation, cross-fitted validation metrics
====================  ==========================================================================
"""

from .bootstrap import (RESAMPLING, class_set, evaluate, mean_statistic, paired_bootstrap, paired_interval,
                        resample_weights, seed_summary)
from .classification import (ECE_BINS, check_predictions, degenerate, expected_calibration_error, predict_labels,
                             topk_accuracy)
from .retrieval import (RETRIEVAL_KS, recall_from_ranks, retrieval_hits, retrieval_ranks, retrieval_recall,
                        similarity)
from .thresholds import (MULTILABEL_THRESHOLD_RULE, THRESHOLD_METRICS, apply_thresholds,
                         cross_fitted_threshold_metrics, multilabel_thresholds, tune_thresholds)
from .verdicts import ALPHA, VERDICTS, bootstrap_p_value, combined_p, holm, seed_interval, verdict

__all__ = ["ALPHA", "ECE_BINS", "MULTILABEL_THRESHOLD_RULE", "RESAMPLING", "RETRIEVAL_KS", "THRESHOLD_METRICS",
           "VERDICTS", "apply_thresholds", "bootstrap_p_value", "check_predictions", "class_set", "combined_p",
           "cross_fitted_threshold_metrics", "degenerate", "evaluate", "expected_calibration_error", "holm",
           "mean_statistic", "multilabel_thresholds", "paired_bootstrap", "paired_interval", "predict_labels",
           "recall_from_ranks", "resample_weights", "retrieval_hits", "retrieval_ranks", "retrieval_recall",
           "seed_interval", "seed_summary", "similarity", "topk_accuracy", "tune_thresholds", "verdict"]
