"""The report's opening: abstract, introduction (the run's own paragraph), data and methods."""

from __future__ import annotations

import json
from typing import Any


from .blocks import Builder
from .formatting import METRIC_NAMES, _cfg, _finite, _value, fmt, fmt_diff
from .runs import (NOT_RUN, FEW_SHOT, WISE, abstract_pairs, classification, primary, seed_cell, paired_frame,
                   pair_label, verdict, n_seeds, pick, auroc_note)


def section_abstract(b: Builder) -> dict[str, Any]:
    inp = b.inp
    out: dict[str, Any] = {"question": " ".join(str(b.text.get("question", "")).split()), "paragraphs": [],
                           "tables": [], "points": []}
    if not inp.runs:
        out["paragraphs"].append(f"No evaluated runs were found under `metrics/` ({NOT_RUN}).")
        return out
    main = b.main
    out["paragraphs"].append(
        f"For the main model, {inp.display(main) if main else NOT_RUN}, we compare zero-shot classification with "
        "contrastive fine-tuning on captions and supervised fine-tuning on labels, on each dataset's test split, "
        "with a ResNet-18 as a plain-CNN reference. The methods are fixed in advance; nothing is chosen on test.")
    gen, real = inp.generated(), sorted(d for d, v in inp.synthetic.items() if not v)
    if gen or real:
        out["paragraphs"].append(
            "Data: " + "; ".join(p for p in (f"real {', '.join(real)}" if real else "",
                                             f"GENERATED stand-ins for {', '.join(gen)} (numbers there test the code, "
                                             "not the method)" if gen else "") if p) + ".")
    paired = paired_frame(b)
    if paired is not None:
        ab = abstract_pairs(paired)
        rows, answers = [], {}
        for row in ab.to_dict("records"):
            ds = str(row["dataset"])
            k = n_seeds(paired, row)
            rows.append([ds, inp.data_kind(ds), pair_label(row["method_a"], row["method_b"]),
                         METRIC_NAMES.get(str(row["metric"]), str(row["metric"])),
                         f"{fmt_diff(row['diff'])} [{fmt_diff(row['ci_low'])}, {fmt_diff(row['ci_high'])}]",
                         _value(row["n"], "n"), str(k),
                         verdict(row["ci_low"], row["ci_high"], row["method_a"], row["method_b"])])
            answers.setdefault(ds, []).append(
                f"{pair_label(row['method_a'], row['method_b'])} in "
                f"{METRIC_NAMES.get(str(row['metric']), row['metric'])} {fmt_diff(row['diff'])} "
                f"[{fmt_diff(row['ci_low'])}, {fmt_diff(row['ci_high'])}] "
                f"({verdict(row['ci_low'], row['ci_high'], row['method_a'], row['method_b'])}"
                f"{', ' + str(k) + ' seeds pooled' if k > 1 else ''})")
        for ds, parts in answers.items():  # the question answered per dataset
            out["points"].append(f"{ds} ({inp.data_kind(ds)} data): " + "; ".join(parts) + ".")
        if rows:
            out["tables"].append(b.table(
                "Paired differences A - B on the same test rows (paired bootstrap, 95% interval; pooled over seeds). "
                "From `tables/paired_differences.csv`.",
                ["dataset", "data", "A - B", "metric", "difference [95% CI]", "n (test)", "seeds", "reading"], rows))
    else:
        out["paragraphs"].append(
            "Paired differences: not available, `tables/paired_differences.csv` is missing from this run, so the "
            "methods below are shown side by side only, each with its own interval; two overlapping intervals do "
            "not show that two methods are equal.")
    rows, low_any = [], False
    for ds in sorted({r["dataset"] for r in classification(inp.runs_of("02") + inp.runs_of("03")
                                                            + inp.runs_of("04")) if r["model"] == main}):
        cells = [pick(inp, "02", ["zero-shot"], ds, main), pick(inp, "03", ["caption-ft-plain"], ds, main),
                 pick(inp, "04", ["label-ft", "multilabel-ft"], ds, main),
                 pick(inp, "06", ["supervised"], ds, "resnet18")]
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
            shown.append(seed_cell(g, key) + (" †" if low else ""))
            low_any = low_any or low
        rows.append([ds, inp.data_kind(ds), f"{METRIC_NAMES.get(key, key)}", fmt(ref.get("n")),
                     fmt(maj) if maj is not None else ("0.500 (AUROC)" if key == "auroc" else "n/a"), *shown])
    if rows:
        out["tables"].append(b.table(
            "Each method's main metric on the test split with its 95% bootstrap interval (several seeds: mean ± sd). "
            "Chance: the majority-class rate (accuracy of always answering the most frequent class) or AUROC 0.5.",
            ["dataset", "data", "metric", "n (test)", "chance", "zero-shot", "caption FT", "label FT", "ResNet-18"],
            rows, [auroc_note(low_any)]))
    return out


def section_intro_run(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    if inp.run_type != "FULL":
        out += b.prose("smoke_limitation" if inp.run_type == "SMOKE" else "rehearsal_limitation")
    return out


def section_data(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("data")
    b.cite("yang2023")
    compact = next((n for n in ("data_summary", "data_splits") if n in inp.tables
                    and {"train", "test"} <= set(inp.tables[n].columns)), None)
    if compact:
        b.used_tables.add(compact)
        df = inp.tables[compact]
        cols = [c for c in ("dataset", "task", "classes", "train", "val", "test", "license") if c in df.columns]
        rows = [[inp.data_kind(str(r["dataset"])), *[_value(r[c], c) for c in cols]] for r in df.to_dict("records")]
        out.append(b.table(f"Datasets and images per split (`tables/{compact}.csv`; a multi-label image counts once). "
                           "GENERATED = a stand-in generated in the real data set's layout.",
                           ["data", *cols], rows))
    else:
        out.append({"kind": "text", "text": f"`tables/data_summary.csv`: {NOT_RUN}."})
    counts = next((n for n in ("01_class_counts", "data_summary") if n in inp.tables
                   and {"class", "n", "split"} <= set(inp.tables[n].columns)), None)
    if counts:
        b.used_tables.add(counts)
        df = inp.tables[counts]
        items = []
        for ds, g in df[df["split"] == "train"].groupby("dataset", sort=False):
            g = g[g["class"].astype(str) != "(pairs)"].sort_values("n", ascending=False)
            if g.empty:
                continue
            if len(g) <= 4:
                desc = ", ".join(f"{c} {_value(n, 'n')}" for c, n in zip(g["class"], g["n"]))
            else:
                desc = (f"{len(g)} classes, most frequent {g['class'].iloc[0]} {_value(g['n'].iloc[0], 'n')}, "
                        f"rarest {g['class'].iloc[-1]} {_value(g['n'].iloc[-1], 'n')}")
            items.append(f"{ds}: {desc}.")
        if items:
            out += [{"kind": "text", "text": f"Training examples per class (`tables/{counts}.csv`):"},
                    {"kind": "list", "items": items}]
    if "skipped_datasets" in inp.tables:
        b.used_tables.add("skipped_datasets")
        sk = inp.tables["skipped_datasets"]
        if not sk.empty and {"dataset", "reason"} <= set(sk.columns):
            out += [{"kind": "text", "text": "Skipped datasets (`tables/skipped_datasets.csv`):"},
                    {"kind": "list", "items": [f"{d}: {reason}" for d, reason in zip(sk["dataset"], sk["reason"])]}]
    cites = [b.cite(k) for k in ("kermany2018", "wang2017", "chen2024")]
    out.append({"kind": "text", "text": f"Sources: MedMNIST v2 {b.cite('yang2023')} (PneumoniaMNIST from Kermany "
                                        f"et al. {cites[0]}, ChestMNIST from ChestX-ray14 {cites[1]}); "
                                        f"PubMedVision {cites[2]}."})
    return out + [b.figure(p) for p in b.key_figures("01")]


def section_methods(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("methods")
    if inp.models:
        out.append(b.table("Models (from the profile recorded in `manifest.json`).",
                           ["model", "architecture", "weights", "role", "description"],
                           [[m.get("name", ""), m.get("arch", ""), m.get("pretrained") or "random init",
                             m.get("role", ""), m.get("display", "")] for m in inp.models]))
    by_nb: dict[str, list[str]] = {}
    for r in inp.runs:
        m = FEW_SHOT.sub(r"\g<base>-Nshot", str(r.get("method")))
        m = WISE.sub(r"\g<base>-a*", m)
        nb = str(r.get("notebook", "?"))
        by_nb.setdefault(nb, [])
        if m not in by_nb[nb]:
            by_nb[nb].append(m)
    if by_nb:
        out += [{"kind": "text", "text": "Methods evaluated per notebook (`-Nshot`: few-shot sizes; `-a*`: WiSE-FT "
                                         "mixing weights):"},
                {"kind": "list", "items": [f"{nb}: {', '.join(sorted(ms))}" for nb, ms in sorted(by_nb.items())]}]
    cfg = inp.cfg
    seeds = cfg.get("seeds")
    if seeds:
        out.append({"kind": "text", "text": f"Seeds of trained runs: {_cfg(seeds)}."})
    stages = {f"{sec}.{k}": v for sec in ("caption_finetune", "label_finetune", "imbalance")
              if isinstance(cfg.get(sec), dict) for k, v in cfg[sec].items() if isinstance(v, dict)}
    keys = list(dict.fromkeys(k for v in stages.values() for k in v))
    varying = [k for k in keys if len({json.dumps(v.get(k)) for v in stages.values()}) > 1
               or k in ("epochs", "batch_size", "lr")]
    same = [k for k in keys if k not in varying]
    if stages:
        out.append(b.table("Training settings per stage (profile recorded in `manifest.json`).",
                           ["stage", *varying], [[s, *[_cfg(v.get(k)) for k in varying]] for s, v in stages.items()],
                           ["Same in every stage: " + "; ".join(f"{k} {_cfg(next(iter(stages.values())).get(k))}"
                                                                for k in same) + "." if same else ""]))
    return out
