"""The report's results: per question, the runs tables, class imbalance and the comparison with the state of
the art."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from .blocks import Builder
from .formatting import METRIC_NAMES, _finite, _missing, _value, fmt, fmt_diff, fmt_metric
from .runs import (TITLES, HEADLINE, MAX_ROWS, MAX_CLASSES, NOT_RUN, STUDY, FEW_SHOT, WISE, SEED_SUFFIX,
                   classification, is_sweep, primary, group_seeds, seed_cell, paired_frame, pair_label, verdict,
                   auroc_note, ci_merge, wide_metrics, repeats_shown)


def section_runs_table(b: Builder, runs: list[dict[str, Any]], caption: str) -> dict[str, Any] | None:
    """One row per (dataset, model, method), seeds aggregated; a majority-class reference row per multiclass dataset;
    element-wise accuracy is left out for multi-label sets; AUROC below 0.5 is marked."""
    groups = group_seeds(runs)
    if not groups:
        return None
    metrics = [m for m in HEADLINE if any(m in r["metrics"] for r in runs)]
    rows, low, ml = [], False, False
    for ds in sorted({g[0]["dataset"] for g in groups}):
        gs = sorted([g for g in groups if g[0]["dataset"] == ds], key=lambda g: (g[0]["model"], g[0]["method"]))
        task = gs[0][0].get("task")
        data = b.inp.data_kind(ds)
        maj = b.inp.majority_rate(ds) if task == "multiclass" else None
        if maj is not None:
            ref = {"acc": fmt(maj), "balanced_acc": fmt(1.0 / max(2, len(gs[0][0].get("per_class") or {}) or 2)),
                   "auroc": "0.500", "top3": "", "worst_class_recall": "0.000"}
            rows.append([ds, data, "(reference)", "majority class", fmt(gs[0][0].get("n")),
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
            rows.append([ds, data, r["model"], r["method"], fmt(r.get("n")), *cells])
    notes = ["Intervals: 95% bootstrap over test rows (accuracy and AUROC; every other interval, top-3 accuracy and "
             "ECE are in the metrics files). Several seeds: mean ± sd (min-max).",
             "Multi-label sets: element-wise accuracy is left out (it rewards predicting 'absent' everywhere)."
             if ml else "", auroc_note(low)]
    header = ["dataset", "data", "model", "method", "n", *[METRIC_NAMES.get(m, m) for m in metrics]]
    return b.table(caption, header, rows, notes)


def section_sweep_table(b: Builder, runs: list[dict[str, Any]], pattern: re.Pattern, key: str, label: str,
                 caption: str) -> dict[str, Any] | None:
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for g in group_seeds(runs):
        m = pattern.match(str(g[0].get("method", "")))
        if m:
            r = g[0]
            groups.setdefault((r["dataset"], r["model"], m.group("base"), primary(r.get("task"))), {})[
                m.group(key)] = g
    if not groups:
        return None
    cols = sorted({v for g in groups.values() for v in g}, key=float)
    rows = [[ds, model, base, METRIC_NAMES.get(metric, metric),
             *[seed_cell(g[c], metric, False) if c in g else "" for c in cols]]
            for (ds, model, base, metric), g in sorted(groups.items())]
    return b.table(caption, ["dataset", "model", "method", "metric", *[f"{label}={c}" for c in cols]], rows)


def section_retrieval_table(b: Builder, runs: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    return b.table("Retrieval runs, Recall@K on the test split (`metrics/*.json`).",
                   ["dataset", "data", "model", "method", "n", *metrics],
                   [[r["dataset"], b.inp.data_kind(r["dataset"]), r["model"], r["method"], fmt(r.get("n")),
                     *[fmt_metric(r, m, False) if m in r["metrics"] else "" for m in metrics]]
                    for r in sorted(runs, key=lambda r: r["run"])])


def section_results(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    subs = []
    for nn in ("02", "03", "04", "07"):
        runs = inp.runs_of(nn)
        if nn == "07" and not runs and not any(p.name.startswith("07_") for p in inp.figures):
            continue  # notebook 07 is optional
        blocks: list[dict[str, Any]] = []
        cls = [r for r in classification(runs) if not is_sweep(r["method"])]
        t = section_runs_table(b, cls, f"Runs of notebook {inp.names_for(nn)} on the test split (`metrics/*.json`).")
        if t:
            blocks.append(t)
        tables07 = [n for n in inp.tables if n.startswith("07_")] if nn == "07" else []
        for name in tables07[:2]:  # notebook 07's summary tables (its runs are many small retrieval runs)
            b.used_tables.add(name)
            blocks.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for('07')}).",
                                     ci_merge(inp.tables[name]).head(MAX_ROWS)))
        if nn == "04":
            shots = any(n.startswith("04_") and "shots_per_class" in d.columns for n, d in inp.tables.items())
            few = None if shots else section_sweep_table(b, classification(runs), FEW_SHOT, "k", "shots",
                                                  "Few-shot runs: training examples per class (test split).")
            wise = section_sweep_table(b, classification(runs), WISE, "alpha", "alpha",
                                "WiSE-FT: weights interpolated between the zero-shot model (alpha=0) and the "
                                "fine-tuned model (alpha=1); test split, descriptive (no alpha is picked on test).")
            blocks += [x for x in (few, wise) if x]
        ret = [r for r in runs if r.get("task") == "retrieval"]
        if ret and nn != "07":  # 07: dozens of small runs, summarised by its own tables
            blocks.append(section_retrieval_table(b, ret))
        blocks += [b.figure(p) for p in b.key_figures(nn)]
        if not blocks:
            blocks = [{"kind": "text", "text": f"Notebook {inp.names_for(nn)}: {NOT_RUN}."}]
        subs.append({"title": f"{TITLES[nn]} (notebook {inp.names_for(nn)})", "blocks": blocks})
    paired = paired_frame(b)
    if paired is not None:
        pooled = paired[paired["seed"] == "pooled"]
        if len(pooled):
            subs.append({"title": "Paired differences", "blocks": [b.table(
                "Every paired difference A - B, pooled over seeds (per-seed rows: appendix and "
                "`tables/paired_differences.csv`).",
                ["dataset", "data", "A - B", "metric", "difference [95% CI]", "n", "reading"],
                [[r["dataset"], inp.data_kind(str(r["dataset"])), pair_label(r["method_a"], r["method_b"]),
                  METRIC_NAMES.get(str(r["metric"]), str(r["metric"])),
                  f"{fmt_diff(r['diff'])} [{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]",
                  _value(r["n"], "n"), verdict(r["ci_low"], r["ci_high"], r["method_a"], r["method_b"])]
                 for r in pooled.to_dict("records")]), *[b.figure(p) for p in b.key_figures("paired")]]})
    return subs


def section_imbalance(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("imbalance")
    runs = [r for r in inp.runs_of("05") if r.get("task") in ("multiclass", "multilabel")]
    t = section_runs_table(b, runs, f"Runs of notebook {inp.names_for('05')} on the test split (`metrics/*.json`); each "
                             "remedy's settings were fixed on validation.")
    if t:
        out.append(t)
    for name in sorted(t for t in inp.tables if t.startswith("05_remedies__")):
        df = inp.tables[name]
        if {"remedy", "chosen"} <= set(df.columns):
            chosen = df[df["chosen"].astype(str).str.lower().isin(["true", "1", "yes"])]
            if len(chosen):
                out.append({"kind": "text", "text": f"On {name.split('__', 1)[1]} the remedy chosen on the validation "
                                                    f"split is `{chosen['remedy'].iloc[0]}` (`tables/{name}.csv`, "
                                                    "column `chosen`); its paired difference to no remedy is in "
                                                    "the Results."})
        if repeats_shown(b, name, df):
            continue  # repeats the runs table above (listed in the appendix)
        b.used_tables.add(name)
        ds = name.split("__", 1)[1]
        out.append(b.df_table(f"Remedies on {ds} ({inp.data_kind(ds)} data), test split (`tables/{name}.csv`); "
                              "descriptive, no remedy is picked on test.", ci_merge(df),
                              [auroc_note(bool((df.get("auroc", pd.Series(dtype=float)) < 0.5).any()))]))
    out += section_per_class_recall(b)
    out += [b.figure(p) for p in b.key_figures("05")]
    if len(out) == len(b.prose("imbalance")):
        out.append({"kind": "text", "text": f"Notebook {inp.names_for('05')}: {NOT_RUN}."})
    return out


def section_per_class_recall(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    cls = classification(inp.runs)
    for ds in sorted({r["dataset"] for r in cls}):
        runs = [r for r in cls if r["dataset"] == ds and r.get("per_class") and not is_sweep(r["method"])
                and not SEED_SUFFIX.search(r["run"])]
        imb = [r for r in runs if str(r.get("notebook", "")).startswith("05")]
        fixed = [r for r in runs if r["model"] == b.main and (r.get("notebook", "")[:2], r["method"]) in STUDY]
        use = imb or fixed
        if not use:
            continue
        ref = max(use, key=lambda r: r.get("n") or 0)
        support = {k: v.get("support", 0) or 0 for k, v in ref["per_class"].items()}
        classes = sorted(support, key=lambda c: support[c])[:MAX_CLASSES] if len(support) > MAX_CLASSES \
            else list(support)
        note = (f"The {len(classes)} rarest of {len(support)} classes; all classes: `per_class` in each metrics "
                "file.") if len(classes) < len(support) else ""
        who = "notebook 05 runs" if imb else "main model, the methods of the abstract"
        out.append(b.table(f"Recall per class on {ds} ({inp.data_kind(ds)} data; {who}; first seed; test support "
                           "in brackets).",
                           ["nb", "model", "method", *[f"{c} ({fmt(support[c])})" for c in classes]],
                           [[r.get("notebook", "")[:2], r["model"], r["method"],
                             *[fmt(r["per_class"].get(c, {}).get("recall")) for c in classes]]
                            for r in sorted(use, key=lambda r: r["run"])], [note]))
    return out


def section_sota(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("sota")
    sota = inp.tables.get("sota_comparison")
    if sota is None:
        return out + [{"kind": "text", "text": f"`tables/sota_comparison.csv`: {NOT_RUN}."}] + \
            [b.figure(p) for p in b.key_figures("06")]
    b.used_tables.add("sota_comparison")
    src = sota["source"].astype(str) if "source" in sota.columns else pd.Series(["measured"] * len(sota))
    measured, published = sota[src == "measured"], sota[src != "measured"]
    if len(measured):
        short = {str(m.get("display")): str(m.get("name")) for m in inp.models if m.get("display")}
        m = measured.assign(model=[short.get(str(x), x) for x in measured["model"]])
        out.append(b.df_table("Measured by us, test split (`tables/sota_comparison.csv`, rows with source "
                              "'measured'); one seed: value [95% interval], several: mean ± sd.",
                              wide_metrics(b, m.drop(columns=["source", "note", "comparable"], errors="ignore"))))
    if len(published):
        pub = published.copy()
        keys: list[str] = []
        if "note" in pub.columns:
            notes = [str(n) if not _missing(n) else "" for n in pub["note"]]
            keys = list(dict.fromkeys(n for n in notes if n))
            pub["note"] = [(("NOT COMPARABLE; " if "NOT COMPARABLE" in n else "") + f"n{keys.index(n) + 1}")
                           if n else "" for n in notes]
        out.append(b.df_table("Published numbers, quoted - not our results (sources: References; notes below the "
                              "table). NOT COMPARABLE = different data, sample, split or resolution.",
                              wide_metrics(b, pub.drop(columns=["comparable", "majority_rate"], errors="ignore")),
                              [f"n{i}: {n}" for i, n in enumerate(keys, 1)]))
    for name in sorted(t for t in inp.tables if t.startswith("06_")):
        b.used_tables.add(name)
        df = inp.tables[name]
        out.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for('06')}).", ci_merge(df).head(MAX_ROWS)))
    return out + [b.figure(p) for p in b.key_figures("06")]
