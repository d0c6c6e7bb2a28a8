"""Tables built from metrics records (:mod:`medlib.outputs.records`): one row per run and metric, the mean over
seeds with its spread, and their display copies. Functions take records and return DataFrames."""

from __future__ import annotations

import pandas as pd

from .names import method_name


def ci_of(record: dict, metric: str) -> tuple[float | None, float | None]:
    lo, hi = (record.get("ci95", {}).get(metric) or [None, None])
    return lo, hi


def method_label(method: str) -> str:
    """``label-ft`` -> ``label fine-tune``, ``remedy-focal`` -> ``remedy: focal loss`` (:mod:`medlib.outputs.names`,
    the one mapping of human names); unknown ids come back readable."""
    return method_name(method)


def majority_rate(record: dict) -> float | None:
    """The accuracy of always predicting the most frequent test class (multi-label: of predicting each label's
    majority value, the baseline of element-wise accuracy), from the record's per-class supports."""
    per, n = record.get("per_class") or {}, record.get("n")
    if not per or not n:
        return None
    support = [float(v.get("support", 0)) for v in per.values()]
    if record.get("task") == "multilabel":
        return sum(max(s, n - s) for s in support) / (len(support) * n)
    return max(support) / n


def _metric_name(record: dict, metric: str) -> str:
    # Multi-label "acc" is MedMNIST's mean over labels of per-label accuracy: name it so it is not read as accuracy.
    return "elementwise_acc" if metric == "acc" and record.get("task") == "multilabel" else metric


def metric_rows(records: list[dict], metrics: list[str]) -> pd.DataFrame:
    """Long table (dataset, model, method, seed, metric, value, ci_low, ci_high, n, majority_rate): one row per
    run and metric, each seed's own 95% bootstrap interval (recomputable from its predictions file). Multi-label
    ``acc`` is named ``elementwise_acc``."""
    rows = []
    for r in records:
        for m in metrics:
            v = r["metrics"].get(m)
            if v is None:
                continue
            lo, hi = ci_of(r, m)
            rows.append({"dataset": r["dataset"], "model": r["model"], "method": r["method"], "seed": r.get("seed"),
                         "metric": _metric_name(r, m), "value": v, "ci_low": lo, "ci_high": hi, "n": r.get("n"),
                         "majority_rate": majority_rate(r)})
    return pd.DataFrame(rows, columns=["dataset", "model", "method", "seed", "metric", "value", "ci_low", "ci_high",
                                       "n", "majority_rate"])


SUMMARY_COLUMNS = ["dataset", "model", "method", "metric", "mean", "sd", "min", "max", "n_seeds", "seeds", "n",
                   "majority_rate"]


def seed_summary(records: list[dict], metrics: list[str]) -> pd.DataFrame:
    """Mean over seeds with the spread: one row per (dataset, model, method, metric) with ``mean``, ``sd``
    (sample sd; NaN for one seed), ``min``, ``max``, ``n_seeds``, ``seeds``, ``n`` and the majority-class rate."""
    rows = metric_rows(records, metrics)
    if rows.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    keys = ["dataset", "model", "method", "metric"]
    out = rows.groupby(keys, sort=False).agg(
        mean=("value", "mean"), sd=("value", "std"), min=("value", "min"), max=("value", "max"),
        n_seeds=("value", "size"), seeds=("seed", lambda x: ",".join(str(v) for v in x)),
        n=("n", "first"), majority_rate=("majority_rate", "first")).reset_index()
    return out[SUMMARY_COLUMNS]


def mean_sd(mean: float, sd: float, lo: float, hi: float, n: int) -> str:
    if n <= 1 or pd.isna(sd):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {sd:.3f} [{lo:.3f}–{hi:.3f}]"


def seed_pivot(summary: pd.DataFrame) -> pd.DataFrame:
    """Display copy of :func:`seed_summary`: one row per (dataset, method), one column per metric holding
    ``mean ± sd [min–max]`` (a single value for one seed), then the seed count and the majority-class rate."""
    if summary.empty:
        return summary
    cells = summary.assign(cell=[mean_sd(*v) for v in summary[["mean", "sd", "min", "max", "n_seeds"]].itertuples(
        index=False)])
    index = ["dataset", "model", "method"]
    wide = cells.pivot(index=index, columns="metric", values="cell")
    order = list(dict.fromkeys(map(tuple, summary[index].itertuples(index=False))))  # runs in the order given
    wide = wide.loc[order, list(dict.fromkeys(summary["metric"]))]
    extra = summary.groupby(index, sort=False).agg(seeds=("n_seeds", "max"), majority_rate=("majority_rate", "first"))
    return wide.join(extra).reset_index().round({"majority_rate": 3}).fillna("")


def best_by_validation(records: list[dict]) -> dict | None:
    """The classification record whose training run had the highest *validation* score (``extra.best_val_metric``);
    test scores are never used to choose."""
    scored = [r for r in records if r and r.get("task") != "retrieval"
              and (r.get("extra") or {}).get("best_val_metric") is not None]
    return max(scored, key=lambda r: r["extra"]["best_val_metric"]) if scored else None


def validation_value(record: dict, metric: str) -> float | None:
    """The run's validation-split ``metric`` (``extra.val_metrics``, written when the run was evaluated)."""
    v = ((record or {}).get("extra") or {}).get("val_metrics", {}).get(metric)
    return None if v is None else float(v)


def interval_pivot(rows: pd.DataFrame) -> pd.DataFrame:
    """Display copy of :func:`metric_rows`: one row per run (dataset, model, method, seed), one column per metric
    holding ``value [ci_low, ci_high]``, then n and the majority-class rate."""
    if rows.empty:
        return rows
    cells = rows.assign(cell=[f"{v:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) and pd.notna(hi) else "")
                              for v, lo, hi in zip(rows["value"], rows["ci_low"], rows["ci_high"])])
    index = ["dataset", "model", "method", "seed"]
    wide = cells.pivot(index=index, columns="metric", values="cell")
    order = list(dict.fromkeys(map(tuple, rows[index].itertuples(index=False))))  # runs in the order given
    wide = wide.loc[order, list(dict.fromkeys(rows["metric"]))]
    extra = rows.groupby(index).agg(n=("n", "first"), majority_rate=("majority_rate", "first"))
    return wide.join(extra).reset_index().round({"majority_rate": 3}).fillna("")
