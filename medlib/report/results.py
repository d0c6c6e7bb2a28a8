"""The report's results, one part per question in notebook order: does fine-tuning help (02-04, with the one table
of paired differences and its forest plot), captions or labels (03), how many labels are needed (04), which classes
fail and what fixes them (05), how the numbers compare with published ones (06), and what adapting costs outside
medicine (06, 07). Each paired difference appears once (its table and the forest plot); per-run tables, per-class
tables, curves and samples are in the appendix, cross-referenced."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..outputs.names import dataset_name, metric_name, remedy_name
from .blocks import Builder
from .opening import method_phrase
from .formatting import _finite, _missing, fmt, fmt_diff
from .runs import (NOT_RUN, SEED_SUFFIX as SEED, auroc_note, classification, comparison, degenerate_groups,
                   degenerate_sides, diff_cell, method_name, n_seeds, paired_frame, pick, pooled, primary, reading,
                   row_runs, seed_cell, short_method, sota_cell, verdict)

PAPER_ROWS = 12  # a longer table in the paper is cut (first N of M rows; all rows in the appendix and the CSV)
RARE = 3  # rarest classes per data set in the paper's per-class table
PUBLISHED_PER_SET = 4  # published rows per data set in the paper (comparable first); all of them in the appendix


def section_results(b: Builder) -> list[dict[str, Any]]:
    return [s for s in (_help(b), _captions(b), _labels(b), _classes(b), _published(b), _outside(b)) if s]


def _sub(title: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": title, "blocks": blocks}


def _main_table(b: Builder) -> dict[str, Any] | None:
    """Each data set's main metric for the fixed methods (zero-shot, caption FT, label FT, ResNet-18) with its
    interval, the chance level beside them; degenerate runs marked ‡."""
    inp, main = b.inp, b.main
    rows, low_any, deg_runs = [], False, []
    sets = {r["dataset"] for r in classification(inp.runs_of("02") + inp.runs_of("03") + inp.runs_of("04"))
            if r["model"] == main}
    for ds in sorted(sets, key=lambda d: (bool(inp.synthetic.get(d)), d)):
        cells = [pick(inp, "02", ["zero-shot"], ds, main), pick(inp, "03", ["caption-ft-plain"], ds, main),
                 pick(inp, "04", ["label-ft", "multilabel-ft"], ds, main), pick(inp, "06", ["supervised"], ds, None)]
        ref = next((g[0] for g in cells if g), None)
        if ref is None:
            continue
        key = primary(ref.get("task"))
        maj = inp.majority_rate(ds) if key == "acc" else None
        shown = []
        for g in cells:
            if not g or key not in g[0]["metrics"]:
                shown.append(NOT_RUN)
                continue
            low = key == "auroc" and any(_finite(r["metrics"].get(key)) and float(r["metrics"][key]) < 0.5 for r in g)
            deg = inp.degenerate(g[0])
            if deg:
                deg_runs.append(g[0])
            shown.append(seed_cell(g, key) + (" †" if low else "") + (" ‡" if deg else ""))
            low_any = low_any or low
        rows.append([dataset_name(ds), inp.data_kind(ds), metric_name(key), fmt(ref.get("n")),
                     fmt(maj) if maj is not None else ("0.500" if key == "auroc" else "n/a"), *shown])
    if not rows:
        return None
    stale = inp.stale_note("02", "03", "04", "06")
    return b.table("Main metric of each fixed method on the test split, 95% bootstrap interval (several seeds: mean ± "
                   "sd). Chance: the majority-class rate (accuracy) or 0.5 (AUROC). All metrics of every run: "
                   f"{b.ref('tab:runs-02')}-{b.ref('tab:runs-05')} of the appendix.{stale}",
                   ["data set", "data", "metric", "n (test)", "chance", "zero-shot", "caption FT", "label FT",
                    "ResNet-18"], rows, [auroc_note(low_any)] + ([f"‡ Degenerate (decisions that ignore the image): "
                                                                  f"{'; '.join(degenerate_groups(b, deg_runs))}."]
                                                                 if deg_runs else []), key="tab:main")


def _paired_table(b: Builder) -> list[dict[str, Any]]:
    """The one table of paired differences (every pooled row, once) and its forest plot."""
    paired = paired_frame(b)
    if paired is None:
        return [{"kind": "text", "text": "Paired differences: not available (`tables/paired_differences.csv` is "
                                         "missing), so the methods are shown side by side only; two overlapping "
                                         "intervals do not show that two methods are equal."}]
    rows_in = pooled(paired).to_dict("records")
    if not rows_in:
        return []
    inp = b.inp
    holm = "p_holm" in paired.columns and paired["p_holm"].notna().any()
    rows = []
    for r in rows_in:
        deg = degenerate_sides(b, r)
        row = [dataset_name(str(r["dataset"])), inp.data_kind(str(r["dataset"])),
               f"{short_method(r['method_a'])} - {short_method(r['method_b'])}" + (" ‡" if deg else ""),
               metric_name(str(r["metric"])), diff_cell(r), str(n_seeds(paired, r))]
        if holm:
            row.append(fmt(float(r["p_holm"])) if _finite(r.get("p_holm")) else "")
        v = verdict(r)
        rows.append(row + [{"A higher": f"{short_method(r['method_a'])} higher",
                            "B higher": f"{short_method(r['method_b'])} higher"}.get(v, v)])
    degen = degenerate_groups(b, [x for r in rows_in for side in ("a", "b") for x in row_runs(b, r, side)[:1]])
    notes = [f"‡ Degenerate (decisions that ignore the image): {'; '.join(degen)}."] if degen else []
    header = ["data set", "data", "A - B", "metric", "difference [95% CI]", "seeds"] + (["p (Holm)"] if holm else []) \
        + ["verdict"]
    stale = inp.stale_note("06")
    out = [b.table("Every paired difference A - B on the same test images, pooled over seeds (the one place each "
                   "appears; per-seed rows: " + b.ref("tab:paired-seeds") + " of the appendix). Verdict: "
                   + ("from the table's own statistics." if "verdict" in paired.columns else
                      "A or B higher when the 95% interval excludes zero, else not resolved.") + stale,
                   header, rows, notes, key="tab:paired")]
    out += b.key_figure("06_paired_differences", "*paired_differences*", key="fig:paired")
    return out


def _help(b: Builder) -> dict[str, Any] | None:
    blocks: list[dict[str, Any]] = []
    t = _main_table(b)
    paired = _paired_table(b)
    if t:
        compare = " and ".join(b.ref(k) for k in ("tab:paired", "fig:paired") if k in b.labels)
        blocks.append({"kind": "text", "text": f"{b.ref('tab:main')} gives each method's main metric"
                                               + (f"; {compare} compare them pairwise on the same test images, which "
                                                  "is what a claim that one method beats another needs." if compare
                                                  else ".")})
        blocks.append(t)
    blocks += paired
    return _sub("Does fine-tuning help?", blocks) if blocks else None


def _verdict_sentence(b: Builder, comp: str, what: str) -> str:
    """'Label fine-tuning against caption fine-tuning: label FT higher on PneumoniaMNIST (accuracy); not resolved on
    X (AUROC)' from the pooled rows of one comparison (numbers: the paired table)."""
    rows = [r for r in _rows(b) if comparison(r) == comp]
    if not rows:
        return ""
    groups: dict[str, list[str]] = {}
    for r in rows:
        groups.setdefault(reading(r), []).append(f"{dataset_name(str(r['dataset']))} ({metric_name(str(r['metric']))})")
    parts = [f"{v} on {', '.join(ds)}" for v, ds in groups.items()]
    return f"{what}: " + "; ".join(parts) + f" ({b.ref('tab:paired')})."


def _rows(b: Builder) -> list[dict[str, Any]]:
    paired = paired_frame(b)
    return [] if paired is None else pooled(paired).to_dict("records")


def _captions(b: Builder) -> dict[str, Any] | None:
    inp = b.inp
    if not inp.runs_of("03"):
        return None
    blocks = [{"kind": "text", "text": " ".join(s for s in (
        _verdict_sentence(b, "caption - zero-shot", "Caption fine-tuning against zero-shot"),
        _verdict_sentence(b, "label - caption", "Label fine-tuning against caption fine-tuning"),
        f"Caption variants (label-aware captions, no augmentation) and image-text retrieval after caption "
        f"fine-tuning: {b.ref('tab:runs-03')} of the appendix.") if s)}]
    blocks += b.key_figure("03_accuracy__{ds}__*", "03_accuracy__*", key="fig:captions")
    return _sub("Captions or labels?", blocks)


def _labels(b: Builder) -> dict[str, Any] | None:
    inp = b.inp
    eff = inp.tables.get("04_label_efficiency_summary")
    blocks: list[dict[str, Any]] = []
    if eff is not None and {"dataset", "method", "shots_per_class", "mean"} <= set(eff.columns) and len(eff):
        b.used_tables.add("04_label_efficiency_summary")
        parts = []
        for ds, g in eff.groupby("dataset", sort=False):
            shots = g["shots_per_class"].astype(str)
            numeric = g[shots.str.fullmatch(r"\d+")]
            if numeric.empty:
                continue
            few = numeric[numeric["shots_per_class"].astype(int) == numeric["shots_per_class"].astype(int).max()]
            few = few.sort_values("method", key=lambda m: m.astype(str) != "label-ft").iloc[0]
            full = g[(shots == "all") & (g["method"].astype(str) == str(few["method"]))]
            zs = pick(inp, "02", ["zero-shot"], str(ds), b.main)
            key = primary(zs[0].get("task")) if zs else "acc"
            sd = f" ± {fmt(float(few['sd']))}" if _finite(few.get("sd")) else ""
            refs = ([f"{fmt(float(full['mean'].iloc[0]))} with every label"] if len(full) else []) + \
                ([f"{fmt(float(zs[0]['metrics'][key]))} zero-shot"] if zs and key in zs[0]["metrics"] else [])
            parts.append(f"on {dataset_name(str(ds))}, {method_phrase(str(few['method']))} with "
                         f"{int(few['shots_per_class'])} images per class reaches {fmt(float(few['mean']))}{sd} "
                         f"(mean over draws){', against ' + ' and '.join(refs) if refs else ''}")
        blocks.append({"kind": "text", "text": "With few labels, " + "; ".join(parts) + ". Every size and draw: "
                                               f"{b.ref('tab:few-shot')} of the appendix; WiSE-FT interpolation: "
                                               f"{b.ref('tab:wise')}." + inp.stale_note("04")})
    elif inp.runs_of("04"):
        blocks.append({"kind": "text", "text": "The label-efficiency study did not run in this profile "
                                               "(`tables/04_label_efficiency_summary.csv` is missing)."})
    blocks += b.key_figure("04_label_efficiency__{ds}__*", "04_label_efficiency__*", key="fig:labels")
    return _sub("How many labels are needed?", blocks) if blocks else None


def _classes(b: Builder) -> dict[str, Any] | None:
    inp = b.inp
    blocks = [*b.prose("imbalance")]
    t = _rare_classes(b)
    if t:
        blocks.append(t)
    chosen, chosen_ids = [], []
    for name in sorted(n for n in inp.tables if n.startswith("05_remedies__")):
        df = inp.tables[name]
        if {"remedy", "chosen"} <= set(df.columns):
            pick_ = df[df["chosen"].astype(str).str.lower().isin(["true", "1", "yes"])]
            if len(pick_):
                chosen.append(f"{remedy_name(str(pick_['remedy'].iloc[0]))} on {dataset_name(name.split('__', 1)[1])}")
                chosen_ids.append(f"{pick_['remedy'].iloc[0]} on {name.split('__', 1)[1]}")
    if chosen:
        verdicts = _verdict_sentence(b, "remedy - none", "Against no remedy")
        blocks.append({"kind": "text", "text": "The remedy chosen on the validation split is " + "; ".join(chosen)
                                               + f". {verdicts + ' ' if verdicts else ''}Every remedy on every metric: "
                                               f"{b.ref('tab:remedies')} of the appendix." + inp.stale_note("05")})
    fixed = {"zero-shot", "caption-ft-plain", "label-ft", "multilabel-ft"} | {f"remedy-{c.split(' on ')[0]}"
                                                                             for c in chosen_ids}
    deg = degenerate_groups(b, [r for r in classification(inp.runs) if r["model"] == b.main
                                and r["method"] in fixed and not SEED.search(r["run"])])
    if deg:
        blocks.append({"kind": "text", "text": "Degenerate models: " + "; ".join(deg) + ". Their decisions ignore "
                                               "the image, so their recall and F1 say nothing about the classes, and "
                                               "a gain in AUROC is a gain in ranking only."})
    blocks += b.key_figure("05_tradeoff__{ds}__*", "05_tradeoff__*", key="fig:tradeoff")
    return _sub("Which classes fail, and what fixes them?", blocks) if len(blocks) > 1 else None


def _rare_classes(b: Builder) -> dict[str, Any] | None:
    """Recall on the rarest test classes of each data set: zero-shot, the fine-tuned model, the chosen remedy."""
    inp = b.inp
    rows = []
    for ds in sorted({r["dataset"] for r in classification(inp.runs)}, key=lambda d: (bool(inp.synthetic.get(d)), d)):
        cols = [pick(inp, "02", ["zero-shot"], ds, b.main), pick(inp, "04", ["label-ft", "multilabel-ft"], ds, b.main)]
        rem = inp.tables.get(f"05_remedies__{ds}")
        chosen = None
        if rem is not None and {"remedy", "chosen"} <= set(rem.columns):
            hit = rem[rem["chosen"].astype(str).str.lower().isin(["true", "1", "yes"])]
            chosen = str(hit["remedy"].iloc[0]) if len(hit) else None
        cols.append(pick(inp, "05", [f"remedy-{chosen}"], ds, b.main) if chosen else [])
        ref = next((g[0] for g in cols if g and g[0].get("per_class")), None)
        if ref is None:
            continue
        support = {k: float(v.get("support") or 0) for k, v in ref["per_class"].items()
                   if isinstance(v, dict) and float(v.get("support") or 0) > 0}
        for c in sorted(support, key=lambda c: (support[c], c))[:RARE]:
            rows.append([dataset_name(ds), f"{c} ({int(support[c])})",
                         *[fmt((g[0].get("per_class") or {}).get(c, {}).get("recall")) if g else NOT_RUN
                           for g in cols]])
    if not rows:
        return None
    return b.table(f"Recall on the {RARE} rarest test classes of each data set (test support in brackets; first "
                   f"seed). Every class: {b.ref('tab:per-class')} of the appendix.",
                   ["data set", "class", "zero-shot", "fine-tuned", "chosen remedy"], rows, key="tab:rare")


def _published(b: Builder) -> dict[str, Any] | None:
    """Per data set, on its main metric: our zero-shot, fine-tuned and ResNet-18 rows beside the published ones
    (comparable first), with their notes; every row in the appendix."""
    inp = b.inp
    sota = inp.tables.get("sota_comparison")
    if sota is None:
        return _sub("How do the numbers compare with published ones?",
                    [{"kind": "text", "text": f"`tables/sota_comparison.csv`: {NOT_RUN}."}]) if inp.runs_of("06") \
            else None
    b.used_tables.add("sota_comparison")
    if not {"dataset", "metric", "value", "model"} <= set(sota.columns):
        return None
    if "method" not in sota.columns:
        sota = sota.assign(method="")
    src = sota["source"].astype(str) if "source" in sota.columns else pd.Series(["measured"] * len(sota))
    ours_names = {str(b.main)} | {str(m.get("display")) for m in inp.models if m.get("name") == b.main}
    rows, notes, total = [], [], 0
    for ds in sorted(sota["dataset"].astype(str).unique(), key=lambda d: (bool(inp.synthetic.get(d)), d != b.lead, d)):
        d = sota[sota["dataset"].astype(str) == ds]
        metric = "auroc" if inp.task_of(ds) == "multilabel" else "acc"
        if not (d["metric"].astype(str) == metric).any():
            metric = str(d["metric"].iloc[0])
        d = d[d["metric"].astype(str) == metric]
        total += len(d)
        mine = d[(src[d.index] == "measured") & (d["model"].astype(str).isin(ours_names)
                                                   | d["method"].astype(str).isin(["supervised"]))]
        mine = mine[mine["method"].astype(str).isin(["zero-shot", "label-ft", "multilabel-ft", "supervised", ""])]
        pub = d[src[d.index] != "measured"]
        if "comparable" in pub.columns:
            pub = pub.assign(_c=pub["comparable"].astype(str).str.lower() != "true").sort_values("_c", kind="stable")
        for _, r in pd.concat([mine, pub.head(PUBLISHED_PER_SET)]).iterrows():
            note = "" if _missing(r.get("note")) else str(r.get("note"))
            key = ""
            if note:
                if note not in notes:
                    notes.append(note)
                key = ("NOT COMPARABLE; " if "NOT COMPARABLE" in note else "") + f"n{notes.index(note) + 1}"
            mark = " (GENERATED)" if inp.synthetic.get(ds) else ""
            rows.append([dataset_name(ds) + mark, str(r["model"]), method_name(str(r["method"])),
                         "" if _missing(r.get("resolution")) else str(r["resolution"]), metric_name(metric),
                         sota_cell(r.to_dict()), "ours" if src[r.name] == "measured" else b.cite_source(r["source"]),
                         key])
    if not rows:
        return None
    blocks = [*b.prose("sota")]
    blocks.append(b.table(f"Our runs beside published numbers on each data set's main metric ({len(rows)} of "
                          f"{len(sota)} rows of `tables/sota_comparison.csv`; every row: {b.ref('tab:sota')} of the "
                          "appendix). Published rows are quoted, not our results; sources in References, notes below."
                          + inp.stale_note("06"),
                          ["data set", "model", "method", "resolution", "metric", "value", "source", "note"], rows,
                          [f"n{i}: {n}" for i, n in enumerate(notes, 1)], key="tab:published"))
    blocks += b.key_figure("06_sota__{ds}__acc", "06_sota__{ds}__auroc", "06_sota__*", key="fig:sota")
    return _sub("How do the numbers compare with published ones?", blocks)


def _outside(b: Builder) -> dict[str, Any] | None:
    inp = b.inp
    blocks: list[dict[str, Any]] = []
    cost = inp.tables.get("06_general_domain_cost")
    if cost is not None and {"alpha", "medical_acc"} <= set(cost.columns) and len(cost):
        b.used_tables.add("06_general_domain_cost")
        c = cost.sort_values("alpha")
        first, last = c.iloc[0], c.iloc[-1]
        recall = next((k for k in ("general_R@5", "general_R@1") if k in c.columns), None)
        general = next((d for d in inp.synthetic if inp.task_of(d) == "retrieval"), "the general-domain set")
        gen = " (GENERATED)" if inp.synthetic.get(general) else ""
        text = (f"Along WiSE-FT from the zero-shot (α={first['alpha']:g}) to the fine-tuned weights "
                f"(α={last['alpha']:g}), medical accuracy moves from {fmt(float(first['medical_acc']))} to "
                f"{fmt(float(last['medical_acc']))}")
        if recall:
            text += (f" while {metric_name(recall.split('_', 1)[1])} on {dataset_name(general)}{gen} moves from "
                     f"{fmt(float(first[recall]))} to {fmt(float(last[recall]))} "
                     f"({fmt_diff(float(last[recall]) - float(first[recall]))})")
        blocks.append({"kind": "text", "text": text + " (`tables/06_general_domain_cost.csv`; single runs, no "
                                                      "interval)." + inp.stale_note("06")})
        blocks += b.key_figure("06_general_vs_medical__*", "06_general_domain_cost__*", key="fig:general")
    summary = inp.tables.get("07_retrieval_summary")
    if summary is not None and len(summary):
        b.used_tables.add("07_retrieval_summary")
        df = summary.copy()
        if "n_train" in df.columns and "method" in df.columns:
            top = df.groupby("dataset")["n_train"].transform("max") if "dataset" in df.columns else df["n_train"].max()
            df = df[(df["n_train"] == top) | df["method"].astype(str).str.startswith("zero-shot")]
        cols = [c for c in ("dataset", "method", "n_train", "i2t_R@5", "t2i_R@5", "mean_recall", "seeds")
                if c in df.columns]
        df = df[cols].assign(**({"dataset": [dataset_name(str(d)) + (" (GENERATED)" if inp.synthetic.get(str(d))
                                                                      else "") for d in df["dataset"]]}
                                if "dataset" in cols else {}))
        blocks.append(b.df_table(f"Image-text retrieval on general data after fine-tuning on it: zero-shot and the "
                                 f"runs on the most training images ({len(df)} of {len(summary)} rows of "
                                 f"`tables/07_retrieval_summary.csv`; every size: {b.ref('tab:retrieval07')} of the "
                                 f"appendix). Recall@K as defined in Methods.{inp.stale_note('07')}", df,
                                 key="tab:outside", limit=PAPER_ROWS, csv="07_retrieval_summary"))
        blocks += b.key_figure("07_recall_vs_train_size__*", key="fig:retrieval07")
    return _sub("What does adapting cost outside medicine?", blocks) if blocks else None
