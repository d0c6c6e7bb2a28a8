"""Tables the notebooks show, built from metrics records (``results.save_run`` / ``load_run``) and published
references. Functions take records and return DataFrames or text; the notebooks display and save them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from .errors import MedlibError
from .references import published

# The metrics each task is compared on in notebook 06 (and its comparison table).
HEADLINE = {"multiclass": ["acc", "auroc", "top3"], "multilabel": ["auroc"]}
SOTA_COLUMNS = ["dataset", "model", "method", "metric", "value", "sd", "min", "max", "n_seeds", "ci_low", "ci_high",
                "resolution", "split", "majority_rate", "source", "comparable", "note"]


def _ci(record: dict, metric: str) -> tuple[float | None, float | None]:
    lo, hi = (record.get("ci95", {}).get(metric) or [None, None])
    return lo, hi


# Readable names of our methods (tables, the paired-differences table the report quotes).
METHOD_LABELS = {"zero-shot": "zero-shot", "caption-ft-plain": "caption fine-tune", "label-ft": "label fine-tune",
                 "multilabel-ft": "multi-label fine-tune", "linear-probe": "linear probe", "lp-ft": "LP-FT",
                 "supervised": "ResNet-18 (supervised)", "remedy-none": "no remedy"}


def method_label(method: str) -> str:
    """``label-ft`` -> ``label fine-tune``, ``remedy-focal`` -> ``remedy: focal``; unknown ids are returned as is."""
    if method in METHOD_LABELS:
        return METHOD_LABELS[method]
    return f"remedy: {method[len('remedy-'):]}" if method.startswith("remedy-") else method


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
            lo, hi = _ci(r, m)
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


def _mean_sd(mean: float, sd: float, lo: float, hi: float, n: int) -> str:
    if n <= 1 or pd.isna(sd):
        return f"{mean:.3f}"
    return f"{mean:.3f} ± {sd:.3f} [{lo:.3f}–{hi:.3f}]"


def seed_pivot(summary: pd.DataFrame) -> pd.DataFrame:
    """Display copy of :func:`seed_summary`: one row per (dataset, method), one column per metric holding
    ``mean ± sd [min–max]`` (a single value for one seed), then the seed count and the majority-class rate."""
    if summary.empty:
        return summary
    cells = summary.assign(cell=[_mean_sd(*v) for v in summary[["mean", "sd", "min", "max", "n_seeds"]].itertuples(
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
        shown[m] = [("★ " if v == best else "") + _mean_sd(v, sd, lo, hi, n) for v, sd, lo, hi, n in
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


def _not_comparable(note: str, reasons: list[str]) -> str:
    if not reasons:
        return note
    rest = note[len("NOT COMPARABLE: "):] if note.startswith("NOT COMPARABLE: ") else note
    return "NOT COMPARABLE: " + "; ".join([*reasons, rest] if rest else reasons)


def sota_table(measured: list[dict], tasks: dict[str, str], synthetic: dict[str, bool],
               display: dict[str, str] | None = None, neighbours: dict[str, list[str]] | None = None,
               sizes: dict[str, int] | None = None, splits: dict[str, str] | None = None) -> pd.DataFrame:
    """Notebook 06's comparison: our measured rows (``source = measured``; mean over seeds with ``sd``, ``min``,
    ``max``; the 95% bootstrap interval for a single-seed run) and published rows (``source`` = the citation), on each dataset's
    headline metrics, with each row's input ``resolution`` and test ``split`` and the dataset's majority-class rate.

    ``tasks``/``synthetic``/``sizes``/``splits`` map dataset -> task / whether our data there is a generated fixture
    / our image side in px / a description of our test split; ``neighbours`` maps a dataset to other published
    datasets with the same labels (chestxray14 -> chestmnist). Published rows always carry a ``note``; it starts
    with NOT COMPARABLE where our data is generated, the published resolution differs from ours, the published
    number is from another dataset, or it is on another sample/split (already so marked in the references).
    """
    display, neighbours, sizes, splits = display or {}, neighbours or {}, sizes or {}, splits or {}
    rows = []
    by_run: dict[tuple, list[dict]] = {}
    for r in measured:
        by_run.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    majority = {ds: majority_rate(recs[0]) for (ds, _, _), recs in by_run.items()}
    for (ds, model, method), recs in by_run.items():
        recs = sorted(recs, key=lambda r: r.get("seed") or 0)
        for m in HEADLINE[tasks[ds]]:
            vals = pd.Series([r["metrics"].get(m) for r in recs], dtype=float).dropna()
            if vals.empty:
                continue
            lo, hi = _ci(recs[0], m) if len(vals) == 1 else (None, None)  # several seeds: sd and min-max instead
            weights = (recs[0].get("extra") or {}).get("weights")
            rows.append({"dataset": ds, "model": display.get(model, model), "method": method, "metric": m,
                         "value": vals.mean(), "sd": vals.std(), "min": vals.min(), "max": vals.max(),
                         "n_seeds": len(vals), "ci_low": lo, "ci_high": hi,
                         "resolution": f"{sizes[ds]} px" if ds in sizes else "", "split": splits.get(ds, "ours"),
                         "majority_rate": majority.get(ds), "source": "measured", "comparable": True,
                         "note": f"weights: {weights}" if weights else ""})
    for name, task in tasks.items():
        for source_ds in [name, *neighbours.get(name, [])]:
            pub = published(dataset=source_ds)
            pub = pub[(pub["label"] == "") & pub["metric"].isin(HEADLINE[task])]
            for p in pub.itertuples():
                reasons = []
                if synthetic.get(name):
                    reasons.append("our data here is a generated fixture")
                px = next((int(t) for t in str(p.resolution).split(" ")[:1] if t.isdigit()), None)
                if name in sizes and px is not None and px != sizes[name]:
                    reasons.append(f"published at {p.resolution}, ours at {sizes[name]} px")
                if source_ds != name:
                    reasons.append(f"published on {source_ds}, not {name}")
                note = _not_comparable(p.note, reasons)
                rows.append({"dataset": name, "model": p.model, "method": p.method, "metric": p.metric,
                             "value": p.value, "sd": None, "min": None, "max": None, "n_seeds": None,
                             "ci_low": None, "ci_high": None, "resolution": p.resolution, "split": p.split,
                             "majority_rate": majority.get(name), "source": p.source,
                             "comparable": not note.startswith("NOT COMPARABLE"), "note": note})
    return pd.DataFrame(rows, columns=SOTA_COLUMNS)


# ---- paired differences between two methods ------------------------------------------------------------------

PAIRED_COLUMNS = ["method_a", "method_b", "dataset", "metric", "seed", "diff", "ci_low", "ci_high", "n",
                  "comparison", "model", "method_id_a", "method_id_b", "runs_a", "runs_b", "n_boot", "boot_seed",
                  "selected_on"]


@dataclass
class Comparison:
    """``A - B`` on one dataset: the runs of each method (one per seed). ``fixed_b``: B has no training randomness
    (zero-shot), so its one run is paired with every seed of A; otherwise runs are paired by seed."""

    comparison: str  # e.g. "label FT - zero-shot"
    dataset: str
    model: str
    runs_a: list[dict]
    runs_b: list[dict]
    metrics: list[str]
    label_a: str = ""
    label_b: str = ""
    fixed_b: bool = False
    selected_on: str = ""  # how A was chosen when it was (e.g. "validation balanced_acc, mean over seeds")

    def pairs(self) -> list[tuple[int, dict, dict]]:
        """(seed, run of A, run of B) for every seed both methods have."""
        if self.fixed_b:
            return [(int(a["seed"]), a, self.runs_b[0]) for a in self.runs_a] if self.runs_b else []
        by_seed = {int(b["seed"]): b for b in self.runs_b}
        return [(int(a["seed"]), a, by_seed[int(a["seed"])]) for a in self.runs_a if int(a["seed"]) in by_seed]


def paired_differences(reports: Any, comparisons: Sequence[Comparison], n_boot: int, seed: int) -> pd.DataFrame:
    """The paired-differences table (``tables/paired_differences.csv``): for each comparison and metric one row
    per seed and one ``pooled`` row (mean of the per-seed differences, rows resampled jointly across seeds; see
    :func:`medlib.metrics.paired_bootstrap`), each recomputable from the runs' predictions files with
    :func:`medlib.results.paired_difference` (``runs_a``/``runs_b`` list them, ``;``-separated, in pair order)."""
    from .results import paired_difference

    rows = []
    for c in comparisons:
        pairs = c.pairs()
        if not pairs:
            continue
        groups = [(str(s), [a["run"]], [b["run"]]) for s, a, b in pairs]
        groups.append(("pooled", [a["run"] for _, a, _ in pairs], [b["run"] for _, _, b in pairs]))
        for metric in c.metrics:
            for seed_label, ra, rb in groups:
                try:
                    d = paired_difference(reports, ra, rb, metric, n_boot=n_boot, seed=seed)
                except MedlibError as exc:  # the metric is undefined for one of the runs (e.g. AUROC, one class)
                    print(f"paired difference skipped ({c.comparison}, {c.dataset}, {metric}): {exc}")
                    break
                rows.append({"method_a": c.label_a or method_label(c.runs_a[0]["method"]),
                             "method_b": c.label_b or method_label(c.runs_b[0]["method"]),
                             "dataset": c.dataset, "metric": metric, "seed": seed_label, "diff": d["diff"],
                             "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"],
                             "comparison": c.comparison, "model": c.model, "method_id_a": c.runs_a[0]["method"],
                             "method_id_b": c.runs_b[0]["method"], "runs_a": ";".join(ra), "runs_b": ";".join(rb),
                             "n_boot": n_boot, "boot_seed": seed, "selected_on": c.selected_on})
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


# ---- label efficiency ------------------------------------------------------------------------------------------


def label_efficiency(few_shot: Sequence[dict], full: Sequence[dict], metric: str = "acc") -> pd.DataFrame:
    """One row per run: dataset, method, shots_per_class (``all`` for the full-data runs in ``full``), draw,
    n_train, seed and the test ``metric`` (``value``). Few-shot records carry ``extra.shots_per_class``/``draw``
    (:func:`medlib.pipeline.few_shot_run`)."""
    rows = []
    for r in few_shot:
        x = r.get("extra") or {}
        rows.append({"dataset": r["dataset"], "method": r["method"].rsplit(f"-{x['shots_per_class']}shot", 1)[0],
                     "shots_per_class": str(x["shots_per_class"]), "draw": x["draw"], "n_train": x.get("n_train"),
                     "seed": r.get("seed"), "value": r["metrics"].get(metric)})
    for r in full:
        rows.append({"dataset": r["dataset"], "method": r["method"], "shots_per_class": "all", "draw": None,
                     "n_train": None, "seed": r.get("seed"), "value": r["metrics"].get(metric)})
    return pd.DataFrame(rows, columns=["dataset", "method", "shots_per_class", "draw", "n_train", "seed", "value"])


def label_efficiency_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd (over draws; over seeds for ``all``), min, max and count per dataset, method and shots, in the
    order the shots first appear."""
    if df.empty:
        return pd.DataFrame(columns=["dataset", "method", "shots_per_class", "mean", "sd", "min", "max", "n_runs"])
    return (df.groupby(["dataset", "method", "shots_per_class"], sort=False)
            .agg(mean=("value", "mean"), sd=("value", "std"), min=("value", "min"), max=("value", "max"),
                 n_runs=("value", "size")).reset_index())


# ---- per-class views (notebook 05) -----------------------------------------------------------------------------


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


def study_table(measured: Sequence[dict], published_rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The PubMedVision study's table: our runs (mean over seeds with the spread, ``source = measured``) and the
    published rows (``source`` = the citation, each marked NOT COMPARABLE in ``note``: a different sample)."""
    ours = seed_summary([r for r in measured if r], list(metrics)).rename(columns={"mean": "value"})
    ours = ours.assign(source="measured", note="")
    pub = published_rows[published_rows["metric"].isin(metrics)]
    pub = pub.assign(note=["NOT COMPARABLE: " + n if not str(n).startswith("NOT COMPARABLE") else n
                           for n in pub["note"]])
    cols = ["dataset", "model", "method", "metric", "value", "sd", "min", "max", "n_seeds", "majority_rate", "source",
            "note"]
    return pd.concat([ours.reindex(columns=cols), pub.reindex(columns=cols)], ignore_index=True)


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
