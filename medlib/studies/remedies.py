"""Class imbalance (notebook 05): the remedies as training options, the threshold remedy, choosing a remedy on
validation, and the per-class views."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pandas as pd

from ..config import Profile
from ..data.base import DatasetBundle
from ..metrics import cross_fitted_threshold_metrics, tune_thresholds
from ..outputs.tables import majority_rate, mean_sd, validation_value
from ..train import predict
from .runs import save_scores, seed_runs, validation_metrics
from ..config.notebooks import NOTEBOOKS
from .setup import main_model


# Remedy name -> keyword arguments of medlib.train.train (per task). "threshold" reuses the "none" model.
def remedy_kwargs(remedy: str, task: str, profile: Profile) -> dict[str, Any]:
    imbalance = profile.imbalance
    weighted = "weighted_bce" if task == "multilabel" else "weighted_ce"
    plain = "bce" if task == "multilabel" else "ce"
    table: dict[str, dict[str, Any]] = {
        "none": {"loss": plain},
        "inverse_freq": {"loss": weighted, "loss_kwargs": {"weights": "inverse_freq"}},
        "effective_number": {"loss": weighted, "loss_kwargs": {"weights": "effective_number", "beta": imbalance.cb_beta}},
        "focal": {"loss": "focal", "loss_kwargs": {"gamma": imbalance.focal_gamma}},
        "logit_adjust": {"loss": "logit_adjust", "loss_kwargs": {"tau": imbalance.la_tau}},
        "balanced_sampler": {"loss": plain, "sampler": "balanced"},
    }
    if remedy not in table:
        raise ValueError(f"unknown remedy {remedy!r}; known: {sorted(table) + ['threshold']}")
    return table[remedy]


# The imbalance remedies are chosen on this validation metric (mean over seeds); it is the metric they aim at
# (mean recall over classes), and the paired difference "best remedy - none" is reported on it and on
# worst-class recall.
REMEDY_SELECT_METRIC = "balanced_acc"


def remedy_runs(profile: Profile, dataset: str, model: str | None = None) -> dict[str, list[dict]]:
    """Notebook 05's runs of each remedy of the profile (one per seed that has run), by remedy name."""
    model = model or main_model(profile).name
    out = {r: seed_runs(profile, NOTEBOOKS["05"], dataset, model, f"remedy-{r}") for r in profile.imbalance.remedies}
    return {r: recs for r, recs in out.items() if recs}


def threshold_remedy(profile: Profile, data: DatasetBundle, result: Any, *, notebook: str, model: str,
                     seed: int | None = None) -> dict:
    """The decision-threshold remedy on top of the ``none`` model ``result``: thresholds tuned on the validation
    split for the profile's ``imbalance.threshold_metric`` (per label for multi-label sets, on p(class 1) for binary
    ones), saved as ``remedy-threshold`` with the raw test scores and the thresholds (the metrics apply
    ``score >= threshold``) and the validation metrics, cross-fitted (:func:`medlib.metrics.cross_fitted_threshold_metrics`)
    so that choosing a remedy on validation does not favour the one whose thresholds were tuned there."""
    mode = "multilabel" if data.task == "multilabel" else "label"
    metric = profile.imbalance.threshold_metric
    val_labels = data.splits["val"].labels
    val_score = predict(result, data.splits["val"].images, mode=mode)
    thr = tune_thresholds(val_labels, val_score, metric=metric)  # validation only
    test_score = predict(result, data.splits["test"].images, mode=mode)
    extra = {"thresholds": thr.tolist(), "threshold_metric": metric,
             # what a selection on validation reads: thresholds scored on validation rows that did not tune them
             "val_metrics": cross_fitted_threshold_metrics(val_labels, val_score, data.task, data.class_names,
                                                           metric=metric, seed=profile.seed if seed is None else seed),
             "val_metrics_in_sample": validation_metrics(data, val_score, threshold=thr)}
    return save_scores(profile, notebook=notebook, data=data, model=model, method="remedy-threshold", y_score=test_score,
                       threshold=thr, extra=extra, seed=seed)


def best_remedy(records: Mapping[str, Sequence[dict]], metric: str, baseline: str = "none") -> str | None:
    """The remedy (other than ``baseline``) with the highest validation ``metric``, averaged over its seeds;
    None when no remedy has a validation value. Test scores are never read."""
    means = {}
    for remedy, recs in records.items():
        vals = [validation_value(r, metric) for r in _as_list(recs)]
        vals = [v for v in vals if v is not None]
        if remedy != baseline and vals:
            means[remedy] = sum(vals) / len(vals)
    return max(means, key=means.get) if means else None


def _as_list(recs: dict | Sequence[dict]) -> list[dict]:
    return [recs] if isinstance(recs, dict) else [r for r in recs if r]


def remedy_table(records: Mapping[str, dict | Sequence[dict]], metrics: list[str],
                 select_metric: str = "balanced_acc", baseline: str = "none") -> pd.DataFrame:
    """One row per remedy: each test metric's mean over seeds with ``<m>_sd``, ``<m>_min``, ``<m>_max``; the
    validation ``select_metric`` (``val_<metric>``, mean over seeds), ``chosen``: the remedy picked on it
    (:func:`best_remedy`), the one the report names, and the test split's majority-class rate. ``records`` maps
    remedy -> its runs (one per seed)."""
    chosen = best_remedy(records, select_metric, baseline)
    rows = []
    for remedy, recs in records.items():
        recs = _as_list(recs)
        row: dict = {"remedy": remedy, "n_seeds": len(recs)}
        for m in metrics:
            vals = pd.Series([r["metrics"].get(m) for r in recs], dtype=float)
            row[m], row[f"{m}_sd"], row[f"{m}_min"], row[f"{m}_max"] = vals.mean(), vals.std(), vals.min(), vals.max()
        vals = [v for v in (validation_value(r, select_metric) for r in recs) if v is not None]
        row[f"val_{select_metric}"] = sum(vals) / len(vals) if vals else None
        row["chosen"] = remedy == chosen
        row["majority_rate"] = majority_rate(recs[0]) if recs else None
        rows.append(row)
    return pd.DataFrame(rows)


def mark_best(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Display copy of a remedy table: ``mean ± sd [min–max]`` strings (one value for one seed), the highest test
    mean of each metric starred (descriptive), and the validation-chosen remedy marked in the remedy column."""
    shown = table[["remedy"]].copy()
    if "chosen" in table:
        shown["remedy"] = [f"{r} (chosen on validation)" if c else r for r, c in zip(table["remedy"], table["chosen"])]
    for m in metrics:
        if not table[m].notna().any():
            continue
        best = table[m].max()
        shown[m] = [("★ " if v == best else "") + mean_sd(v, sd, lo, hi, n) for v, sd, lo, hi, n in
                    zip(table[m], table[f"{m}_sd"], table[f"{m}_min"], table[f"{m}_max"], table["n_seeds"])]
    extra = [c for c in table.columns if c.startswith("val_") or c == "majority_rate"]
    return shown.join(table[extra].round(3)) if extra else shown


def remedy_conclusions(dataset: str, table: pd.DataFrame, metrics: list[str], baseline: str = "none") -> list[str]:
    """Sentences computed from the table: the remedy chosen on validation and what it and the baseline give on
    test, then per metric the highest test mean (descriptive, not a selection)."""
    lines = []
    by_remedy = table.set_index("remedy")
    val = next((c for c in table.columns if c.startswith("val_")), None)
    if "chosen" in table and table["chosen"].any() and val:
        pick = table.loc[table["chosen"], "remedy"].iloc[0]
        vs = [f"{m} {by_remedy.loc[pick, m]:.3f}" + (f" (`{baseline}` {by_remedy.loc[baseline, m]:.3f})"
                                                      if baseline in by_remedy.index else "")
              for m in metrics if pd.notna(by_remedy.loc[pick, m])]
        lines.append(f"- **{dataset}**: chosen on validation {val[4:]} ({by_remedy.loc[pick, val]:.3f}): `{pick}`; "
                     f"on test {', '.join(vs)}. Paired differences with intervals: `tables/paired_differences.csv`.")
    for m in metrics:
        if not table[m].notna().any():
            continue
        winner = table.loc[table[m].idxmax(), "remedy"]
        base = f"; `{baseline}` gives {by_remedy.loc[baseline, m]:.3f}" if baseline in by_remedy.index else ""
        lines.append(f"- **{dataset}**, {m}: highest test mean is `{winner}` ({table[m].max():.3f}{base}; "
                     "descriptive, not a selection).")
    return lines


def per_class_with_frequency(record: dict, train_counts: Mapping[str, int]) -> pd.DataFrame:
    """A run's per-class precision, recall, F1 and support next to each class's share of the training split,
    most frequent class first."""
    per = pd.DataFrame(record["per_class"]).T[["precision", "recall", "f1", "support"]]
    total = max(sum(train_counts.values()), 1)
    per.insert(0, "train_frequency", [train_counts.get(c, 0) / total for c in per.index])
    return per.sort_values("train_frequency", ascending=False).rename_axis("class").reset_index()


def per_label_by_prevalence(record: dict, class_names: Sequence[str], prevalence: Sequence[float]) -> pd.DataFrame:
    """A multi-label run's per-label AUROC, recall, precision, F1, support and threshold next to each label's
    training prevalence, most prevalent first."""
    per = pd.DataFrame(record["per_class"]).T
    per["train_prevalence"] = pd.Series(list(prevalence), index=list(class_names))
    cols = [c for c in ["train_prevalence", "auroc", "recall", "precision", "f1", "support", "threshold"] if c in per]
    return per[cols].sort_values("train_prevalence", ascending=False).rename_axis("pathology").reset_index()
