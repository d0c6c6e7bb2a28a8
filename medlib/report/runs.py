"""What the report's sections share: which runs a table shows, their seeds, the paired differences and their
verdicts, and whether a CSV table only repeats numbers the report already shows."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .blocks import Builder
from .formatting import METRIC_NAMES, _finite, _missing, _value, fmt, fmt_metric, method_name
from .inputs import Inputs


TITLES = {"02": "Zero-shot baseline", "03": "Caption fine-tuning (contrastive)", "04": "Label fine-tuning",
          "07": "Small-data image-text matching on general data (Flickr30K, COCO)"}


HEADLINE = ("acc", "balanced_acc", "macro_f1", "auroc", "worst_class_recall")  # run tables (the rest: metrics files)
PRIMARY = {"multiclass": "acc", "multilabel": "auroc", "retrieval": "mean_recall"}


MAX_ROWS = 14  # longer CSV tables: first rows in the report, the whole file in tables/
MAX_CLASSES = 6


NOT_RUN = "not run"
STUDY = {("02", "zero-shot"), ("03", "caption-ft-plain"), ("04", "label-ft"), ("04", "multilabel-ft")}


FEW_SHOT = re.compile(r"^(?P<base>.+)-(?P<k>\d+)shot(?:-d(?P<draw>\d+))?$")  # label-ft-4shot, label-ft-4shot-d2
WISE = re.compile(r"^(?P<base>(?:.+-)?wise-ft)-a(?P<alpha>\d+(?:\.\d+)?)$")


SEED_SUFFIX = re.compile(r"__s\d+$")
PAIRED_COLUMNS = ("method_a", "method_b", "dataset", "metric", "seed", "diff", "ci_low", "ci_high", "n")


def classification(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("task") in ("multiclass", "multilabel")]


def is_sweep(method: str) -> bool:
    return bool(FEW_SHOT.match(method) or WISE.match(method))


def primary(task: Any) -> str:
    return PRIMARY.get(str(task), "acc")


def group_seeds(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs of one (notebook, dataset, model, method) over seeds, first seed first."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["run"], r.get("seed") or 0)):
        key = (r.get("notebook"), r["dataset"], r["model"], r["method"], SEED_SUFFIX.sub("", r["run"]))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def seed_cell(group: list[dict[str, Any]], metric: str, ci: bool = True) -> str:
    """One seed: 'value [ci]'. Several: 'mean ± sd (min-max, k seeds)'."""
    vals = [float(r["metrics"][metric]) for r in group if _finite(r["metrics"].get(metric))]
    if not vals:
        return "n/a" if any(metric in r["metrics"] for r in group) else ""
    if len(group) == 1:
        return fmt_metric(group[0], metric, ci)
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return f"{fmt(float(np.mean(vals)))} ± {fmt(sd)} ({fmt(min(vals))}-{fmt(max(vals))}, {len(vals)} seeds)"


def paired_frame(b: Builder) -> pd.DataFrame | None:
    df = b.inp.tables.get("paired_differences")
    if df is None or not set(PAIRED_COLUMNS) <= set(df.columns):
        return None
    b.used_tables.add("paired_differences")
    return df.assign(seed=df["seed"].astype(str))


def pair_label(a: str, c: str) -> str:
    """'A - B' from method ids (label-ft) or the labels the paired table already carries (label FT)."""
    return f"{method_name(a)} - {method_name(c)}"


def verdict(lo: Any, hi: Any, a: str, c: str) -> str:
    if not (_finite(lo) and _finite(hi)):
        return "n/a"
    if float(lo) > 0:
        return f"{method_name(a)} higher"
    if float(hi) < 0:
        return f"{method_name(c)} higher"
    return "no clear difference"


def abstract_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows: the comparisons the notebooks fixed in advance (label FT - zero-shot, caption FT - zero-shot,
    label FT - caption FT, the remedy chosen on validation - none), pooled over seeds."""
    return df[df["seed"] == "pooled"].reset_index(drop=True)


def n_seeds(df: pd.DataFrame, row: dict[str, Any]) -> int:
    same = df[(df["method_a"] == row["method_a"]) & (df["method_b"] == row["method_b"])
              & (df["dataset"] == row["dataset"]) & (df["metric"] == row["metric"]) & (df["seed"] != "pooled")]
    return max(1, len(same))


def pick(inp: Inputs, nn: str, methods: Sequence[str], ds: str, model: str | None) -> list[dict[str, Any]]:
    for m in methods:
        runs = [r for r in classification(inp.runs_of(nn)) if r["dataset"] == ds and r["method"] == m
                and (model is None or r["model"] == model)]
        if runs:
            return group_seeds(runs)[0]
    return []


def auroc_note(rows_have_low: bool) -> str:
    return ("† AUROC below 0.5: the scores rank the classes worse than chance (with a randomly initialised model "
            "the class-text directions are arbitrary, so this is expected).") if rows_have_low else ""


def ci_merge(df: pd.DataFrame) -> pd.DataFrame:
    """Columns X, X_lo, X_hi (or value, ci_low, ci_high) become one text column 'X [lo, hi]'."""
    df = df.copy()
    pairs = [(c, f"{c}_lo", f"{c}_hi") for c in df.columns if f"{c}_lo" in df.columns and f"{c}_hi" in df.columns]
    if {"value", "ci_low", "ci_high"} <= set(df.columns):
        pairs.append(("value", "ci_low", "ci_high"))
    for c, lo, hi in pairs:
        df[c] = [_value(v) + ("" if _missing(a) or _missing(z) else f" [{fmt(float(a))}, {fmt(float(z))}]")
                 for v, a, z in zip(df[c], df[lo], df[hi])]
        df = df.drop(columns=[lo, hi])
    return df


SOTA_INDEX = ("dataset", "model", "method", "resolution", "split", "source", "note")


def sota_cell(row: dict[str, Any]) -> str:
    """'0.853 [0.824, 0.881]' (one seed or published) or '0.853 ± 0.010 (2 seeds)'."""
    v = row.get("value")
    if not _finite(v):
        return "n/a"
    seeds = row.get("n_seeds")
    if _finite(seeds) and float(seeds) > 1 and _finite(row.get("sd")):
        return f"{fmt(float(v))} ± {fmt(float(row['sd']))} ({int(float(seeds))} seeds)"
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return fmt(float(v)) + (f" [{fmt(float(lo))}, {fmt(float(hi))}]" if _finite(lo) and _finite(hi) else "")


def wide_metrics(b: Builder, df: pd.DataFrame) -> pd.DataFrame:
    """Long comparison rows (metric, value, interval or spread over seeds) -> one column per metric, one row per
    model/method; sources -> [k]; the majority-class rate becomes one column."""
    if not {"metric", "value"} <= set(df.columns):
        return ci_merge(df.dropna(axis=1, how="all"))
    df = df.copy()
    if "source" in df.columns:
        df["source"] = [b.cite_source(x) for x in df["source"]]
    index = [c for c in SOTA_INDEX if c in df.columns and not df[c].isna().all()]
    df["cell"] = [sota_cell(r) for r in df.to_dict("records")]
    df["metric"] = [METRIC_NAMES.get(str(m), str(m)) for m in df["metric"]]
    for c in index:
        df[c] = ["" if _missing(v) else str(v) for v in df[c]]
    wide = df.pivot_table(index=index, columns="metric", values="cell", aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    if "majority_rate" in df.columns and df["majority_rate"].notna().any() and "dataset" in index:
        rates = df.dropna(subset=["majority_rate"]).groupby("dataset")["majority_rate"].first()
        wide["majority class"] = [fmt(float(rates[d])) if d in rates else "" for d in wide["dataset"]]
    return wide.fillna("")


def diff_rows(b: Builder) -> list[dict[str, Any]]:
    paired = b.inp.tables.get("paired_differences")
    if paired is None or not set(PAIRED_COLUMNS) <= set(paired.columns):
        return []
    return abstract_pairs(paired.assign(seed=paired["seed"].astype(str))).to_dict("records")


def close(a: Any, c: Any) -> bool:
    try:
        return math.isclose(float(a), float(c), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def repeats_shown(b: Builder, name: str, df: pd.DataFrame) -> bool:
    """True when every row of a table repeats numbers of a run shown in the report (its metrics file)."""
    inp = b.inp
    runs = [r for r in inp.runs if r.get("task") == "retrieval" or not is_sweep(str(r.get("method")))]
    if df.empty or not runs:
        return False
    parts = name.split("__")
    known = {k for r in runs for k in r["metrics"]}
    long = {"metric", "value"} <= set(df.columns)
    metric_cols = [] if long else [c for c in df.columns if c in known]
    if not long and not metric_cols:
        return False
    for row in df.to_dict("records"):
        if "source" in row and str(row["source"]) != "measured":
            return False
        ds = row.get("dataset", parts[1] if len(parts) > 1 else None)
        method = row.get("method", row.get("remedy"))
        ok = False
        for r in runs:
            if ds is not None and r["dataset"] != ds:
                continue
            if "model" in row and str(row["model"]) not in inp.aliases(r["model"]):
                continue
            if method is not None and r["method"] not in (method, f"remedy-{method}", f"{method}-retrieval"):
                continue
            checks = {row["metric"]: row["value"]} if long else {c: row[c] for c in metric_cols}
            if all(not _missing(v) and k in r["metrics"] and close(r["metrics"][k], v) for k, v in checks.items()
                   if not (_missing(v) and k not in r["metrics"])):
                ok = True
                break
        if not ok:
            return False
    return True
