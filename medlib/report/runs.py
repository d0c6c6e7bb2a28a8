"""What the report's sections share: which runs a table shows, their seeds, the paired differences (their verdicts
as the table states them, their comparison, their degenerate runs), and whether a CSV table only repeats numbers
the report already shows."""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..outputs.names import dataset_name, remedy_name
from .blocks import Builder
from .formatting import _finite, _missing, _value, fmt, fmt_diff, fmt_interval, fmt_metric, method_name, metric_name
from .inputs import Inputs


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
    return f"{fmt(float(np.mean(vals)))} ± {fmt(sd)} ({fmt(min(vals))}–{fmt(max(vals))}, {len(vals)} seeds)"


def paired_frame(b: Builder) -> pd.DataFrame | None:
    df = b.inp.tables.get("paired_differences")
    if df is None or not set(PAIRED_COLUMNS) <= set(df.columns):
        return None
    b.used_tables.add("paired_differences")
    return df.assign(seed=df["seed"].astype(str))


def pooled(df: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows: the comparisons fixed in advance (label FT - zero-shot, caption FT - zero-shot, label FT -
    caption FT, the remedy chosen on validation - none), pooled over seeds; one row per metric."""
    return df[df["seed"] == "pooled"].reset_index(drop=True)


def pair_label(a: str, c: str) -> str:
    """'A - B' by the methods' human names."""
    return f"{method_name(a)} - {method_name(c)}"


VERDICTS = ("A higher", "B higher", "not resolved", "n/a")


def verdict(row: dict[str, Any]) -> str:
    """``A higher`` / ``B higher`` / ``not resolved`` / ``n/a``: the table's own ``verdict`` column where it has
    one (the statistics decide, with every interval and correction they use); otherwise whether the row's 95%
    interval excludes zero."""
    v = row.get("verdict")
    if isinstance(v, str) and v in VERDICTS:
        return v
    lo, hi = row.get("ci_low"), row.get("ci_high")
    if not (_finite(lo) and _finite(hi)):
        return "n/a"
    return "A higher" if float(lo) > 0 else "B higher" if float(hi) < 0 else "not resolved"


def reading(row: dict[str, Any]) -> str:
    """The verdict in words: 'label fine-tune higher', 'not resolved'."""
    v = verdict(row)
    return {"A higher": f"{method_name(row['method_a'])} higher",
            "B higher": f"{method_name(row['method_b'])} higher"}.get(v, v)


def diff_cell(row: dict[str, Any]) -> str:
    """'+0.229 [+0.199, +0.261]': every number with the decimals its sign needs."""
    return f"{fmt_diff(row['diff'])} {fmt_interval(row['ci_low'], row['ci_high'])}"


COMPARISONS = ("label - zero-shot", "caption - zero-shot", "label - caption", "remedy - none")


def comparison(row: dict[str, Any]) -> str:
    """Which fixed comparison a row belongs to (one of :data:`COMPARISONS`), read from the method ids (or labels)."""
    a = str(row.get("method_id_a") or row["method_a"]).lower()
    c = str(row.get("method_id_b") or row["method_b"]).lower()
    if "remedy" in a or "remedy" in c or "remedy" in str(row["method_a"]).lower():
        return "remedy - none"
    if "caption" in c:
        return "label - caption"
    return "caption - zero-shot" if "caption" in a else "label - zero-shot"


def n_seeds(df: pd.DataFrame, row: dict[str, Any]) -> int:
    if _finite(row.get("n_seeds")):
        return max(1, int(float(row["n_seeds"])))
    same = df[(df["method_a"] == row["method_a"]) & (df["method_b"] == row["method_b"])
              & (df["dataset"] == row["dataset"]) & (df["metric"] == row["metric"]) & (df["seed"] != "pooled")]
    return max(1, len(same))


def row_runs(b: Builder, row: dict[str, Any], side: str) -> list[dict[str, Any]]:
    """The metrics records of method A (``side='a'``) or B of a paired row: its ``runs_a``/``runs_b`` column,
    else the main model's runs of that method on that data set."""
    names = str(row.get(f"runs_{side}") or "")
    found = [b.inp.by_run[n] for n in names.split(";") if n in b.inp.by_run]
    if found:
        return found
    method = str(row.get(f"method_id_{side}") or row[f"method_{side}"])
    return [r for r in b.inp.runs if r["dataset"] == row["dataset"] and r["method"] == method
            and (b.main is None or r["model"] == b.main)]


def degenerate_sides(b: Builder, row: dict[str, Any]) -> list[tuple[str, str, str]]:
    """[(side 'a' | 'b', method name, why)] for each method of a paired row whose run is degenerate."""
    out = []
    for side in ("a", "b"):
        why = next((w for w in (b.inp.degenerate(r) for r in row_runs(b, row, side)) if w), None)
        if why:
            out.append((side, method_name(row[f"method_{side}"]), why))
    return out


def degenerate_of(b: Builder, row: dict[str, Any]) -> str:
    """'' or the sentence that methods of a paired row are degenerate: 'multi-label fine-tune on ChestX-ray14 is
    degenerate: no positive prediction on any of its 14 labels'."""
    ds = dataset_name(str(row["dataset"]))
    return "; ".join(f"{m} on {ds} is degenerate: {why}" for _, m, why in degenerate_sides(b, row))


def degenerate_groups(b: Builder, runs: list[dict[str, Any]]) -> list[str]:
    """'zero-shot and label fine-tune on PneumoniaMNIST (predicts one class only (pneumonia))': the degenerate runs
    among ``runs`` (first seed of each), one entry per data set and reason."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in runs:
        why = b.inp.degenerate(r)
        if why:
            names = groups.setdefault((dataset_name(str(r["dataset"])), why), [])
            if method_name(r["method"]) not in names:
                names.append(method_name(r["method"]))
    return [f"{' and '.join(ms) if len(ms) < 3 else ', '.join(ms[:-1]) + ' and ' + ms[-1]} on {ds} ({why})"
            for (ds, why), ms in groups.items()]


SHORT = {"label fine-tune": "label FT", "caption fine-tune": "caption FT", "multi-label fine-tune": "multi-label FT",
         "ResNet-18 (supervised)": "ResNet-18"}


def short_method(label: str) -> str:
    """A method's name for a narrow table cell: 'label FT', 'remedy (tuned thresholds)'."""
    s = method_name(label)
    if s.startswith("best remedy:"):
        return f"chosen remedy ({remedy_name(s.split(':', 1)[1].split('(')[0].strip())})"
    return SHORT.get(s, s)


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
    df["metric"] = [metric_name(str(m)) for m in df["metric"]]
    for c in index:
        df[c] = ["" if _missing(v) else str(v) for v in df[c]]
    wide = df.pivot_table(index=index, columns="metric", values="cell", aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    if "majority_rate" in df.columns and df["majority_rate"].notna().any() and "dataset" in index:
        rates = df.dropna(subset=["majority_rate"]).groupby("dataset")["majority_rate"].first()
        wide["majority class"] = [fmt(float(rates[d])) if d in rates else "" for d in wide["dataset"]]
    return wide.fillna("")


def diff_rows(b: Builder) -> list[dict[str, Any]]:
    paired = paired_frame(b)
    return [] if paired is None else pooled(paired).to_dict("records")


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
