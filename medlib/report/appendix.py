"""The appendix, a document of its own (report-appendix.pdf/.html/.md): every run's metrics per notebook, the
per-seed paired differences, per-class results, the remedies, the other tables (cut to :data:`MAX_ROWS` rows with
"first N of M" and their CSV named; a column equal on every row or long text repeated on many rows is said once in a
note), every figure the paper does not show (in notebook order; a figure that does not apply to its data set is
left out with one sentence) and the run record. Tables are numbered A1, A2, ...; the paper refers to them."""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from ..outputs.names import dataset_name, metric_name, remedy_name
from .blocks import Builder
from .formatting import _cfg, _finite, _missing, fmt, fmt_metric
from .runs import (FEW_SHOT, HEADLINE, NOT_RUN, WISE, auroc_note, ci_merge, classification, diff_cell, group_seeds,
                   is_sweep, method_name, paired_frame, primary, repeats_shown, seed_cell, wide_metrics)

MAX_ROWS = 40  # an appendix table holds at most this many rows (it stays on one page); all rows: its CSV
MAX_TEXT = 40  # a text cell longer than this, repeated on many rows, becomes a key with a note
NOTEBOOK_TITLES = {"02": "zero-shot baseline", "03": "caption fine-tuning", "04": "label fine-tuning",
                   "05": "class imbalance", "06": "comparison with the state of the art", "07": "general retrieval"}


def build_appendix(b: Builder) -> list[dict[str, Any]]:
    """The appendix's sections (each {"id", "title", "blocks", "subsections"}), numbered in the appendix space."""
    with b.appendix():
        parts = [("Runs per notebook", _runs(b)), ("Paired differences per seed", _paired_seeds(b)),
                 ("Per-class results", _per_class(b)), ("Class-imbalance remedies", _remedies(b)),
                 ("Further tables", _further(b)), ("Figures", _figures(b)), ("Run record", _record(b))]
    out, letters = [], "ABCDEFGHIJ"
    for (title, (blocks, subs)), key in zip(parts, ("sec:runs", "sec:paired", "sec:per-class", "sec:remedies",
                                                    "sec:tables", "sec:figures", "sec:record")):
        if not blocks and not subs:
            continue
        b.labels[key] = f"Section {letters[len(out)]}"
        out.append({"id": key.split(":")[1], "title": title, "blocks": blocks, "subsections": subs})
    return out


def runs_table(b: Builder, runs: list[dict[str, Any]], caption: str, key: str | None = None) -> dict[str, Any] | None:
    """One row per (data set, model, method), seeds aggregated; a majority-class reference row per multiclass data
    set; element-wise accuracy left out for multi-label sets; AUROC below 0.5 marked †, degenerate runs ‡."""
    groups = group_seeds(runs)
    if not groups:
        return None
    metrics = [m for m in HEADLINE if any(m in r["metrics"] for r in runs)]
    rows, low, ml, deg_notes = [], False, False, []
    for ds in sorted({g[0]["dataset"] for g in groups}):
        gs = sorted([g for g in groups if g[0]["dataset"] == ds], key=lambda g: (g[0]["model"], g[0]["method"]))
        data = b.inp.data_kind(ds)
        maj = b.inp.majority_rate(ds) if gs[0][0].get("task") == "multiclass" else None
        if maj is not None:
            ref = {"acc": fmt(maj), "balanced_acc": fmt(1.0 / max(2, len(gs[0][0].get("per_class") or {}) or 2)),
                   "auroc": "0.500", "worst_class_recall": "0.000"}
            rows.append([dataset_name(ds), data, "(reference)", "majority class", fmt(gs[0][0].get("n")),
                         *[ref.get(m, "") for m in metrics]])
        for g in gs:
            r = g[0]
            cells = []
            for m in metrics:
                if m == "acc" and r.get("task") == "multilabel":
                    cells.append("-")
                    ml = True
                    continue
                cell = seed_cell(g, m, ci=m in ("acc", "auroc"))
                if m == "auroc" and _finite(r["metrics"].get("auroc")) and float(r["metrics"]["auroc"]) < 0.5:
                    cell += " †"
                    low = True
                cells.append(cell)
            why = b.inp.degenerate(r)
            if why:
                deg_notes.append(f"‡ degenerate: {method_name(r['method'])} on {dataset_name(ds)}, {why}.")
            rows.append([dataset_name(ds), data, r["model"], method_name(r["method"]) + (" ‡" if why else ""),
                         fmt(r.get("n")), *cells])
    notes = ["Intervals: 95% bootstrap over test images (accuracy and AUROC; every other interval, top-3 accuracy and "
             "ECE are in the metrics files). Several seeds: mean ± sd (min-max).",
             "Multi-label sets: element-wise accuracy is left out (it rewards predicting 'absent' everywhere)."
             if ml else "", auroc_note(low), *dict.fromkeys(deg_notes)]
    return b.table(caption, ["data set", "data", "model", "method", "n", *[metric_name(m) for m in metrics]], rows,
                   notes, key=key)


def sweep_table(b: Builder, runs: list[dict[str, Any]], pattern: re.Pattern, group: str, label: str, caption: str,
                key: str | None = None) -> dict[str, Any] | None:
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for g in group_seeds(runs):
        m = pattern.match(str(g[0].get("method", "")))
        if m:
            r = g[0]
            groups.setdefault((r["dataset"], r["model"], m.group("base"), primary(r.get("task"))), {})[
                m.group(group)] = g
    if not groups:
        return None
    cols = sorted({v for g in groups.values() for v in g}, key=float)
    rows = [[dataset_name(ds), model, method_name(base), metric_name(metric),
             *[seed_cell(g[c], metric, False) if c in g else "" for c in cols]]
            for (ds, model, base, metric), g in sorted(groups.items())]
    return b.table(caption, ["data set", "model", "method", "metric", *[f"{label}={c}" for c in cols]], rows, key=key)


def _runs(b: Builder) -> tuple[list, list]:
    inp = b.inp
    subs = []
    for nn in ("02", "03", "04", "05", "06"):
        runs = [r for r in classification(inp.runs_of(nn)) if not is_sweep(r["method"])]
        blocks = []
        t = runs_table(b, runs, f"Runs of notebook {inp.names_for(nn)} on the test split (`metrics/*.json`)."
                       + inp.stale_note(nn), key=f"tab:runs-{nn}")
        if t:
            blocks.append(t)
        ret = [r for r in inp.runs_of(nn) if r.get("task") == "retrieval"]
        if ret and nn != "07":
            metrics = list(dict.fromkeys(k for r in ret for k in r["metrics"]))
            blocks.append(b.table(f"Retrieval runs of notebook {inp.names_for(nn)}, Recall@K on the test split.",
                                  ["data set", "data", "model", "method", "n", *[metric_name(m) for m in metrics]],
                                  [[dataset_name(r["dataset"]), inp.data_kind(r["dataset"]), r["model"],
                                    method_name(r["method"]), fmt(r.get("n")),
                                    *[fmt_metric(r, m, False) if m in r["metrics"] else "" for m in metrics]]
                                   for r in sorted(ret, key=lambda r: r["run"])]))
        if nn == "04":
            blocks += _few_shot(b)
            wise = sweep_table(b, classification(inp.runs_of("04")), WISE, "alpha", "α",
                               "WiSE-FT: weights interpolated between the zero-shot model (α=0) and the fine-tuned model"
                               " (α=1); test split, descriptive (no α is picked on test).", key="tab:wise")
            blocks += [wise] if wise else []
        if blocks:
            subs.append({"title": f"Notebook {inp.names_for(nn)} ({NOTEBOOK_TITLES[nn]})", "blocks": blocks})
    return [], subs


def _few_shot(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    eff = inp.tables.get("04_label_efficiency_summary")
    if eff is not None and {"dataset", "method", "shots_per_class", "mean"} <= set(eff.columns):
        b.used_tables.add("04_label_efficiency_summary")
        df = eff.assign(mean=[fmt(float(m)) + (f" ± {fmt(float(s))}" if _finite(s) else "")
                              for m, s in zip(eff["mean"], eff.get("sd", [None] * len(eff)))])
        cols = [c for c in ("dataset", "method", "shots_per_class", "mean", "n_runs") if c in df.columns]
        return [b.df_table("Label efficiency: test metric per training images per class, mean ± sd over draws "
                           "(`tables/04_label_efficiency_summary.csv`).", df[cols], key="tab:few-shot",
                           limit=MAX_ROWS, csv="04_label_efficiency_summary")]
    t = sweep_table(b, classification(inp.runs_of("04")), FEW_SHOT, "k", "shots",
                    "Few-shot runs: training images per class (test split).", key="tab:few-shot")
    return [t] if t else []


def _paired_seeds(b: Builder) -> tuple[list, list]:
    paired = paired_frame(b)
    if paired is None:
        return [], []
    per_seed = paired[paired["seed"] != "pooled"]
    if not len(per_seed):
        return [], []
    rows = [[dataset_name(str(r["dataset"])), f"{method_name(r['method_a'])} - {method_name(r['method_b'])}",
             metric_name(str(r["metric"])), r["seed"], diff_cell(r), fmt(r["n"]) if _finite(r["n"]) else ""]
            for r in per_seed.to_dict("records")]
    kept, cut = rows[:MAX_ROWS], len(rows) > MAX_ROWS
    caption = ("Paired differences A - B per seed (`tables/paired_differences.csv`); each seed's interval is "
               "conditional on its training run." + (f" First {MAX_ROWS} of {len(rows)} rows; all rows: the CSV."
                                                    if cut else "") + b.inp.stale_note("06"))
    return [b.table(caption, ["data set", "A - B", "metric", "seed", "difference [95% CI]", "n"], kept,
                    key="tab:paired-seeds")], []


def _per_class(b: Builder) -> tuple[list, list]:
    """Per data set: recall of every class (rows) for the main model's fixed methods and notebook 05's runs."""
    inp = b.inp
    blocks = []
    cls = [r for r in classification(inp.runs) if r.get("per_class") and not is_sweep(r["method"])
           and not re.search(r"__s\d+$", r["run"]) and (r["model"] == b.main or r["method"] == "supervised")]
    for ds in sorted({r["dataset"] for r in cls}):
        runs = sorted((r for r in cls if r["dataset"] == ds), key=lambda r: r["run"])[:6]
        ref = max(runs, key=lambda r: len(r["per_class"]))
        classes = sorted(ref["per_class"], key=lambda c: -float((ref["per_class"][c] or {}).get("support") or 0))
        shown = classes[:MAX_ROWS]
        rows = [[f"{c} ({int(float((ref['per_class'][c] or {}).get('support') or 0))})",
                 *[fmt((r["per_class"].get(c) or {}).get("recall")) for r in runs]] for c in shown]
        cut = f" First {len(shown)} of {len(classes)} classes; all: `per_class` in each metrics file." \
            if len(shown) < len(classes) else ""
        blocks.append(b.table(f"Recall per class on {dataset_name(ds)} ({inp.data_kind(ds)} data), test support in "
                              f"brackets, first seed.{cut}{inp.stale_note(*(r['notebook'] for r in runs))}",
                              ["class (support)", *[f"{r['notebook'][:2]} {method_name(r['method'])}" for r in runs]],
                              rows, key="tab:per-class" if not blocks else None))
    return blocks, []


def _remedies(b: Builder) -> tuple[list, list]:
    inp = b.inp
    blocks = []
    for name in sorted(n for n in inp.tables if n.startswith("05_remedies__")):
        b.used_tables.add(name)
        df = _spread(inp.tables[name])
        if "remedy" in df.columns:
            df = df.assign(remedy=[remedy_name(str(r)) for r in df["remedy"]])
        df, notes = tidy(df)
        ds = name.split("__", 1)[1]
        blocks.append(b.df_table(f"Remedies on {dataset_name(ds)} ({inp.data_kind(ds)} data), test split, mean ± sd "
                                 f"over seeds (`tables/{name}.csv`); chosen = picked on validation."
                                 + inp.stale_note("05"), df, notes,
                                 key="tab:remedies" if not blocks else None, limit=MAX_ROWS, csv=name))
    return blocks, []


def _spread(df: pd.DataFrame) -> pd.DataFrame:
    """Columns X, X_sd, X_min, X_max -> one column 'X ± sd'; X_lo/X_hi or ci_low/ci_high -> 'X [lo, hi]'."""
    df = ci_merge(df)
    for c in [c for c in df.columns if f"{c}_sd" in df.columns]:
        df[c] = [fmt(float(v)) + (f" ± {fmt(float(s))}" if _finite(s) else "") if _finite(v) else "n/a"
                 for v, s in zip(df[c], df[f"{c}_sd"])]
        df = df.drop(columns=[x for x in (f"{c}_sd", f"{c}_min", f"{c}_max") if x in df.columns])
    return df


def tidy(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """A table as a reader wants it: a column equal on every row is said once in a note; long text repeated on
    several rows becomes a key (t1, t2, ...) explained in a note."""
    notes: list[str] = []
    if len(df) > 1:
        same = [c for c in df.columns if df[c].astype(str).nunique(dropna=False) == 1]
        for c in same:
            v = df[c].iloc[0]
            if not _missing(v) and str(v):
                notes.append(f"Every row: {c.replace('_', ' ')} = {v if isinstance(v, str) else fmt(v)}.")
        df = df.drop(columns=same)
    keys: list[str] = []
    for c in [c for c in df.columns if df[c].dtype == object]:
        vals = df[c].astype(str)
        if vals.str.len().max() > MAX_TEXT and vals.nunique() < len(vals):
            uniq = list(dict.fromkeys(v for v in vals if v and v != "nan"))
            df = df.assign(**{c: [f"t{len(keys) + uniq.index(v) + 1}" if v in uniq else "" for v in vals]})
            keys += uniq
    notes += [f"t{i}: {t}" for i, t in enumerate(keys, 1)]
    return df, notes


def _further(b: Builder) -> tuple[list, list]:
    inp = b.inp
    blocks = []
    sota = inp.tables.get("sota_comparison")
    if sota is not None:
        df, notes = tidy(wide_metrics(b, sota.drop(columns=["comparable"], errors="ignore")))
        blocks.append(b.df_table("Every measured and published row (`tables/sota_comparison.csv`).", df, notes,
                                 key="tab:sota", limit=MAX_ROWS, csv="sota_comparison"))
    cut_in_paper = [n for n in ("07_retrieval_summary",) if n in inp.tables]  # the paper shows part of these
    rest = cut_in_paper + [n for n in inp.tables if n not in b.used_tables and n not in cut_in_paper
                           and not repeats_shown(b, n, inp.tables[n])]
    for name in rest:
        df, notes = tidy(ci_merge(inp.tables[name]))
        nn = inp.nn_of(name)
        key = "tab:retrieval07" if name == "07_retrieval_summary" else None
        blocks.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for(nn)}).{inp.stale_note(nn)}", df,
                                 notes, key=key, limit=MAX_ROWS, csv=name))
    covered = [n for n in inp.tables if n not in b.used_tables and n not in rest]
    b.used_tables.update(rest)
    if covered:
        blocks.append({"kind": "text", "text": "Also written, repeating numbers shown above: "
                                               + ", ".join(f"`tables/{n}.csv`" for n in covered) + "."})
    return blocks, []


def _figures(b: Builder) -> tuple[list, list]:
    inp = b.inp
    figs = [p for p in inp.figures if p.name not in b.shown_figures]
    subs = []
    for nn in sorted({inp.nn_of(p.stem) or "other" for p in figs}):
        blocks = []
        for p in [p for p in figs if (inp.nn_of(p.stem) or "other") == nn]:
            why = b.skipped_figures.get(p.stem) or b.applies(p)
            if why:
                blocks.append({"kind": "text", "text": why})
                continue
            blocks.append(b.figure(p, key=f"fig:{p.stem}"))
        if blocks:
            subs.append({"title": f"Notebook {inp.names_for(nn)}" if nn != "other" else "Other figures",
                         "blocks": blocks})
    return [], subs


def _record(b: Builder) -> tuple[list, list]:
    inp = b.inp
    m = inp.manifest
    blocks: list[dict[str, Any]] = []
    if m:
        git = m.get("git") or {}
        dev = m.get("device") or {}
        rows = [("git commit", git.get("commit")), ("uncommitted changes (dirty)", git.get("dirty")),
                ("profile", m.get("profile", inp.profile)), ("profile hash", m.get("profile_hash")),
                ("seed", m.get("seed")), ("seeds", inp.cfg.get("seeds")),
                ("device", ", ".join(f"{k}: {v}" for k, v in dev.items()) if isinstance(dev, dict) else dev),
                ("data dir", m.get("data_dir")), ("started", m.get("started")), ("finished", m.get("finished")),
                ("total notebook wall time (s)", m.get("wall_time_s")), ("command", m.get("command"))]
        blocks.append(b.table("Run record (`manifest.json`).", ["item", "value"],
                              [[k, _cfg(v)] for k, v in rows if v is not None]))
        nbs = m.get("notebooks") or {}
        if nbs:
            blocks.append(b.table("Wall time per notebook (executed copies: `executed/NN_*.ipynb`).",
                                  ["notebook", "seconds", "status"],
                                  [[k, _cfg(v.get("seconds")) if isinstance(v, dict) else _cfg(v),
                                    v.get("status", "") if isinstance(v, dict) else ""] for k, v in sorted(nbs.items())]))
    if inp.projection is not None and len(inp.projection):
        blocks.append(b.df_table("Rehearsal projection: wall time and peak memory per notebook on the device it ran "
                                 "on (`projection.csv`).", inp.projection, limit=MAX_ROWS))
    blocks += _settings(b)
    pk = (m or {}).get("packages") or (m or {}).get("versions") or {}
    if pk:
        blocks.append({"kind": "text", "text": "Package versions: " + ", ".join(f"{k} {_cfg(v)}" for k, v in pk.items())
                                               + "."})
    if not m:
        blocks.append({"kind": "text", "text": f"`manifest.json`: {NOT_RUN}."})
    return blocks, []


def _settings(b: Builder) -> list[dict[str, Any]]:
    cfg = b.inp.cfg
    stages = {f"{sec}.{k}": v for sec in ("caption_finetune", "label_finetune", "imbalance")
              if isinstance(cfg.get(sec), dict) for k, v in cfg[sec].items() if isinstance(v, dict)}
    if not stages:
        return []
    keys = list(dict.fromkeys(k for v in stages.values() for k in v))
    varying = [k for k in keys if len({json.dumps(v.get(k)) for v in stages.values()}) > 1
               or k in ("epochs", "batch_size", "lr")]
    same = [k for k in keys if k not in varying]
    first = next(iter(stages.values()))
    return [b.table("Training settings per stage (profile recorded in `manifest.json`).",
                    ["stage", *[k.replace("_", " ") for k in varying]],
                    [[s, *[_cfg(v.get(k)) for k in varying]] for s, v in stages.items()],
                    ["Same in every stage: " + "; ".join(f"{k.replace('_', ' ')} {_cfg(first.get(k))}" for k in same)
                     + "." if same else ""], key="tab:settings")]
