"""The report's data model: everything the report says, collected from ``reports/<profile>/`` alone.

:func:`build_model` reads manifest.json, metrics/*.json, predictions/*.npz (test labels only, for the
majority-class rate), tables/*.csv and figures/*.png and returns one JSON-serialisable dict. The renderers
(:mod:`medlib.report.render`: Jinja2 templates for Markdown/HTML, a Typst template for the PDF) only lay it out.

Shape of the model::

    {"title", "subtitle", "run_type" (SMOKE | REHEARSAL | FULL), "banner", "generated", "real",
     "abstract": {"question", "paragraphs", "tables": [table], "points": [str]},
     "sections": [section], "appendix": [section], "references": [{"n", "text"}], ...}
    section = {"id", "title", "blocks": [block], "subsections": [{"title", "blocks"}]}
    block   = {"kind": "text", "text"} | {"kind": "list", "items"} |
              {"kind": "table", "number", "caption", "header", "rows", "notes", "widths", "font_pt", "landscape"} |
              {"kind": "figure", "number", "path", "caption", "width_in"}

Text is plain, with `code` in backticks and [k] citations. Formatting rule (one rule, used everywhere): metric
values with 3 decimals (``0.853``), intervals ``[0.824, 0.880]``, differences signed (``+0.120``), integers as
they are, undefined values ``n/a``. No "best" is picked on test: the abstract's methods are fixed in advance.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .blocks import Builder
from .formatting import METRIC_NAMES, _cfg, _finite, _missing, _value, fmt, fmt_diff, fmt_metric, method_name
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
# Figures that carry each part's point (first match per pattern; {ds} = the lead dataset, {m} = the main model).


def _classification(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in runs if r.get("task") in ("multiclass", "multilabel")]


def _is_sweep(method: str) -> bool:
    return bool(FEW_SHOT.match(method) or WISE.match(method))


def _primary(task: Any) -> str:
    return PRIMARY.get(str(task), "acc")


def _group_seeds(runs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Runs of one (notebook, dataset, model, method) over seeds, first seed first."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in sorted(runs, key=lambda r: (r["run"], r.get("seed") or 0)):
        key = (r.get("notebook"), r["dataset"], r["model"], r["method"], SEED_SUFFIX.sub("", r["run"]))
        groups.setdefault(key, []).append(r)
    return list(groups.values())


def _seed_cell(group: list[dict[str, Any]], metric: str, ci: bool = True) -> str:
    """One seed: 'value [ci]'. Several: 'mean ± sd (min-max, k seeds)'."""
    vals = [float(r["metrics"][metric]) for r in group if _finite(r["metrics"].get(metric))]
    if not vals:
        return "n/a" if any(metric in r["metrics"] for r in group) else ""
    if len(group) == 1:
        return fmt_metric(group[0], metric, ci)
    sd = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return f"{fmt(float(np.mean(vals)))} ± {fmt(sd)} ({fmt(min(vals))}-{fmt(max(vals))}, {len(vals)} seeds)"


def build_model(reports_dir: Path, profile_name: str) -> dict[str, Any]:
    """The report's data model for ``reports_dir/<profile_name>/`` (reads only; writes nothing)."""
    inp = Inputs(Path(reports_dir) / profile_name, profile_name)
    b = Builder(inp, f"make report PROFILE={profile_name}")
    return _assemble(b)


def _assemble(b: Builder) -> dict[str, Any]:
    inp = b.inp
    gen = inp.generated()
    real = sorted(d for d, s in inp.synthetic.items() if not s)
    title = "Adapting CLIP to medical images: zero-shot, caption and label fine-tuning"
    if inp.run_type != "FULL":
        title = f"{inp.run_type} — {title}"
    if gen:
        title += " (GENERATED data only)" if not real else f" (GENERATED data: {', '.join(gen)})"
    kind = {"SMOKE": "SMOKE run", "REHEARSAL": "REHEARSAL run", "FULL": "full run"}[inp.run_type]
    subtitle = f"{kind}, profile `{inp.profile}`" + (f"; real data: {', '.join(real)}" if real else "")
    banner = _banner(inp, gen, real)
    intro = b.prose("introduction")  # cites first, so references are numbered in reading order
    abstract = _abstract(b)
    sections = [
        {"id": "introduction", "title": "Introduction", "blocks": intro + _intro_run(b), "subsections": []},
        {"id": "data", "title": "Data", "blocks": _data(b), "subsections": []},
        {"id": "methods", "title": "Methods", "blocks": _methods(b), "subsections": []},
        {"id": "results", "title": "Results", "blocks": [], "subsections": _results(b)},
        {"id": "imbalance", "title": "Class imbalance", "blocks": _imbalance(b), "subsections": []},
        {"id": "sota", "title": "Comparison with the state of the art", "blocks": _sota(b), "subsections": []},
        {"id": "discussion", "title": "Discussion", "blocks": _discussion(b), "subsections": []},
        {"id": "conclusion", "title": "Conclusion", "blocks": _conclusion(b), "subsections": []},
        {"id": "limitations", "title": "Limitations", "blocks": _limitations(b), "subsections": []},
        {"id": "reproducibility", "title": "Reproducibility", "blocks": _reproducibility(b), "subsections": []},
    ]
    appendix = _appendix(b)
    refs = []
    for i, key in enumerate(b.cited, 1):
        e = b.bib[key]
        parts = [str(e.get("authors") or "").strip(), str(e.get("title") or "").strip(),
                 str(e.get("venue") or "").strip(), str(e.get("year") or "").strip()]
        refs.append({"n": i, "key": key, "text": ". ".join(p.rstrip(".") for p in parts if p) + "."})
    model = {"title": title, "subtitle": subtitle, "run_type": inp.run_type, "banner": banner,
             "profile": inp.profile, "generated": gen, "real": real, "abstract": abstract,
             "sections": sections, "appendix": appendix, "references": refs, "regenerate": b.regenerate,
             "finished": str(inp.manifest.get("finished") or "")}
    return _relative_paths(model, inp)


def _relative_paths(model: Any, inp: Inputs) -> Any:
    """Absolute machine paths -> relative to the repository (the folder holding reports/), or to the data dir."""
    repo = inp.base.resolve().parent.parent
    data_dir = str(inp.manifest.get("data_dir") or "")
    subs = [(str(repo) + "/", "")]
    if data_dir.startswith("/") and not data_dir.startswith(str(repo)):
        subs.insert(0, (data_dir.rstrip("/") + "/", "<data dir>/"))
        subs.insert(1, (data_dir.rstrip("/"), "<data dir>"))
    subs.append((str(repo), "."))
    home = str(Path.home())

    def fix(s: str) -> str:
        for a, z in subs:
            s = s.replace(a, z)
        if len(home) > 1:
            s = s.replace(home + "/", "~/")
        return s

    def walk(x: Any) -> Any:
        if isinstance(x, str):
            return fix(x)
        if isinstance(x, list):
            return [walk(v) for v in x]
        if isinstance(x, dict):
            return {k: (v if k == "path" else walk(v)) for k, v in x.items()}
        return x

    return walk(model)


# ---- sections ----------------------------------------------------------------------------------------------------


def _banner(inp: Inputs, gen: list[str], real: list[str]) -> str:
    data = (f" GENERATED stand-in data: {', '.join(gen)}." if gen else "") + \
        (f" Real data: {', '.join(real)}." if real else "")
    if inp.run_type == "SMOKE":
        return ("SMOKE RUN - not results. A tiny randomly initialised model on small or generated data, run on CPU "
                "to test the pipeline." + data)
    if inp.run_type == "REHEARSAL":
        return ("REHEARSAL - not results. The full profile's code paths with random weights, fixture data and capped "
                "steps." + data)
    return f"Full run, profile `{inp.profile}`." + data


def _paired(b: Builder) -> pd.DataFrame | None:
    df = b.inp.tables.get("paired_differences")
    if df is None or not set(PAIRED_COLUMNS) <= set(df.columns):
        return None
    b.used_tables.add("paired_differences")
    return df.assign(seed=df["seed"].astype(str))


def _pair_label(a: str, c: str) -> str:
    """'A - B' from method ids (label-ft) or the labels the paired table already carries (label FT)."""
    return f"{method_name(a)} - {method_name(c)}"


def _verdict(lo: Any, hi: Any, a: str, c: str) -> str:
    if not (_finite(lo) and _finite(hi)):
        return "n/a"
    if float(lo) > 0:
        return f"{method_name(a)} higher"
    if float(hi) < 0:
        return f"{method_name(c)} higher"
    return "no clear difference"


def _abstract_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows: the comparisons the notebooks fixed in advance (label FT - zero-shot, caption FT - zero-shot,
    label FT - caption FT, the remedy chosen on validation - none), pooled over seeds."""
    return df[df["seed"] == "pooled"].reset_index(drop=True)


def _n_seeds(df: pd.DataFrame, row: dict[str, Any]) -> int:
    same = df[(df["method_a"] == row["method_a"]) & (df["method_b"] == row["method_b"])
              & (df["dataset"] == row["dataset"]) & (df["metric"] == row["metric"]) & (df["seed"] != "pooled")]
    return max(1, len(same))


def _abstract(b: Builder) -> dict[str, Any]:
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
    paired = _paired(b)
    if paired is not None:
        ab = _abstract_pairs(paired)
        rows, answers = [], {}
        for row in ab.to_dict("records"):
            ds = str(row["dataset"])
            k = _n_seeds(paired, row)
            rows.append([ds, inp.data_kind(ds), _pair_label(row["method_a"], row["method_b"]),
                         METRIC_NAMES.get(str(row["metric"]), str(row["metric"])),
                         f"{fmt_diff(row['diff'])} [{fmt_diff(row['ci_low'])}, {fmt_diff(row['ci_high'])}]",
                         _value(row["n"], "n"), str(k),
                         _verdict(row["ci_low"], row["ci_high"], row["method_a"], row["method_b"])])
            answers.setdefault(ds, []).append(
                f"{_pair_label(row['method_a'], row['method_b'])} in "
                f"{METRIC_NAMES.get(str(row['metric']), row['metric'])} {fmt_diff(row['diff'])} "
                f"[{fmt_diff(row['ci_low'])}, {fmt_diff(row['ci_high'])}] "
                f"({_verdict(row['ci_low'], row['ci_high'], row['method_a'], row['method_b'])}"
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
    for ds in sorted({r["dataset"] for r in _classification(inp.runs_of("02") + inp.runs_of("03")
                                                            + inp.runs_of("04")) if r["model"] == main}):
        cells = [_pick(inp, "02", ["zero-shot"], ds, main), _pick(inp, "03", ["caption-ft-plain"], ds, main),
                 _pick(inp, "04", ["label-ft", "multilabel-ft"], ds, main),
                 _pick(inp, "06", ["supervised"], ds, "resnet18")]
        ref = next((g[0] for g in cells if g), None)
        if ref is None:
            continue
        key = _primary(ref.get("task"))
        maj = inp.majority_rate(ds) if key == "acc" else None
        shown = []
        for g in cells:
            if not g or key not in g[0]["metrics"]:
                shown.append(NOT_RUN)
                continue
            low = key == "auroc" and any(_finite(r["metrics"].get(key)) and float(r["metrics"][key]) < 0.5 for r in g)
            shown.append(_seed_cell(g, key) + (" †" if low else ""))
            low_any = low_any or low
        rows.append([ds, inp.data_kind(ds), f"{METRIC_NAMES.get(key, key)}", fmt(ref.get("n")),
                     fmt(maj) if maj is not None else ("0.500 (AUROC)" if key == "auroc" else "n/a"), *shown])
    if rows:
        out["tables"].append(b.table(
            "Each method's main metric on the test split with its 95% bootstrap interval (several seeds: mean ± sd). "
            "Chance: the majority-class rate (accuracy of always answering the most frequent class) or AUROC 0.5.",
            ["dataset", "data", "metric", "n (test)", "chance", "zero-shot", "caption FT", "label FT", "ResNet-18"],
            rows, [_auroc_note(low_any)]))
    return out


def _pick(inp: Inputs, nn: str, methods: Sequence[str], ds: str, model: str | None) -> list[dict[str, Any]]:
    for m in methods:
        runs = [r for r in _classification(inp.runs_of(nn)) if r["dataset"] == ds and r["method"] == m
                and (model is None or r["model"] == model)]
        if runs:
            return _group_seeds(runs)[0]
    return []


def _intro_run(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    if inp.run_type != "FULL":
        out += b.prose("smoke_limitation" if inp.run_type == "SMOKE" else "rehearsal_limitation")
    return out


def _data(b: Builder) -> list[dict[str, Any]]:
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


def _methods(b: Builder) -> list[dict[str, Any]]:
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


# ---- results -----------------------------------------------------------------------------------------------------


def _auroc_note(rows_have_low: bool) -> str:
    return ("† AUROC below 0.5: the scores rank the classes worse than chance (with a randomly initialised model "
            "the class-text directions are arbitrary, so this is expected).") if rows_have_low else ""


def _runs_table(b: Builder, runs: list[dict[str, Any]], caption: str) -> dict[str, Any] | None:
    """One row per (dataset, model, method), seeds aggregated; a majority-class reference row per multiclass dataset;
    element-wise accuracy is left out for multi-label sets; AUROC below 0.5 is marked."""
    groups = _group_seeds(runs)
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
                cell = _seed_cell(g, m, ci=m in ("acc", "auroc"))
                if m == "auroc" and _finite(r["metrics"].get("auroc")) and float(r["metrics"]["auroc"]) < 0.5:
                    cell += " †"
                    low = True
                cells.append(cell)
            rows.append([ds, data, r["model"], r["method"], fmt(r.get("n")), *cells])
    notes = ["Intervals: 95% bootstrap over test rows (accuracy and AUROC; every other interval, top-3 accuracy and "
             "ECE are in the metrics files). Several seeds: mean ± sd (min-max).",
             "Multi-label sets: element-wise accuracy is left out (it rewards predicting 'absent' everywhere)."
             if ml else "", _auroc_note(low)]
    header = ["dataset", "data", "model", "method", "n", *[METRIC_NAMES.get(m, m) for m in metrics]]
    return b.table(caption, header, rows, notes)


def _sweep_table(b: Builder, runs: list[dict[str, Any]], pattern: re.Pattern, key: str, label: str,
                 caption: str) -> dict[str, Any] | None:
    groups: dict[tuple, dict[str, list[dict[str, Any]]]] = {}
    for g in _group_seeds(runs):
        m = pattern.match(str(g[0].get("method", "")))
        if m:
            r = g[0]
            groups.setdefault((r["dataset"], r["model"], m.group("base"), _primary(r.get("task"))), {})[
                m.group(key)] = g
    if not groups:
        return None
    cols = sorted({v for g in groups.values() for v in g}, key=float)
    rows = [[ds, model, base, METRIC_NAMES.get(metric, metric),
             *[_seed_cell(g[c], metric, False) if c in g else "" for c in cols]]
            for (ds, model, base, metric), g in sorted(groups.items())]
    return b.table(caption, ["dataset", "model", "method", "metric", *[f"{label}={c}" for c in cols]], rows)


def _retrieval_table(b: Builder, runs: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = list(dict.fromkeys(k for r in runs for k in r["metrics"]))
    return b.table("Retrieval runs, Recall@K on the test split (`metrics/*.json`).",
                   ["dataset", "data", "model", "method", "n", *metrics],
                   [[r["dataset"], b.inp.data_kind(r["dataset"]), r["model"], r["method"], fmt(r.get("n")),
                     *[fmt_metric(r, m, False) if m in r["metrics"] else "" for m in metrics]]
                    for r in sorted(runs, key=lambda r: r["run"])])


def _results(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    subs = []
    for nn in ("02", "03", "04", "07"):
        runs = inp.runs_of(nn)
        if nn == "07" and not runs and not any(p.name.startswith("07_") for p in inp.figures):
            continue  # notebook 07 is optional
        blocks: list[dict[str, Any]] = []
        cls = [r for r in _classification(runs) if not _is_sweep(r["method"])]
        t = _runs_table(b, cls, f"Runs of notebook {inp.names_for(nn)} on the test split (`metrics/*.json`).")
        if t:
            blocks.append(t)
        tables07 = [n for n in inp.tables if n.startswith("07_")] if nn == "07" else []
        for name in tables07[:2]:  # notebook 07's summary tables (its runs are many small retrieval runs)
            b.used_tables.add(name)
            blocks.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for('07')}).",
                                     _ci_merge(inp.tables[name]).head(MAX_ROWS)))
        if nn == "04":
            shots = any(n.startswith("04_") and "shots_per_class" in d.columns for n, d in inp.tables.items())
            few = None if shots else _sweep_table(b, _classification(runs), FEW_SHOT, "k", "shots",
                                                  "Few-shot runs: training examples per class (test split).")
            wise = _sweep_table(b, _classification(runs), WISE, "alpha", "alpha",
                                "WiSE-FT: weights interpolated between the zero-shot model (alpha=0) and the "
                                "fine-tuned model (alpha=1); test split, descriptive (no alpha is picked on test).")
            blocks += [x for x in (few, wise) if x]
        ret = [r for r in runs if r.get("task") == "retrieval"]
        if ret and nn != "07":  # 07: dozens of small runs, summarised by its own tables
            blocks.append(_retrieval_table(b, ret))
        blocks += [b.figure(p) for p in b.key_figures(nn)]
        if not blocks:
            blocks = [{"kind": "text", "text": f"Notebook {inp.names_for(nn)}: {NOT_RUN}."}]
        subs.append({"title": f"{TITLES[nn]} (notebook {inp.names_for(nn)})", "blocks": blocks})
    paired = _paired(b)
    if paired is not None:
        pooled = paired[paired["seed"] == "pooled"]
        if len(pooled):
            subs.append({"title": "Paired differences", "blocks": [b.table(
                "Every paired difference A - B, pooled over seeds (per-seed rows: appendix and "
                "`tables/paired_differences.csv`).",
                ["dataset", "data", "A - B", "metric", "difference [95% CI]", "n", "reading"],
                [[r["dataset"], inp.data_kind(str(r["dataset"])), _pair_label(r["method_a"], r["method_b"]),
                  METRIC_NAMES.get(str(r["metric"]), str(r["metric"])),
                  f"{fmt_diff(r['diff'])} [{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]",
                  _value(r["n"], "n"), _verdict(r["ci_low"], r["ci_high"], r["method_a"], r["method_b"])]
                 for r in pooled.to_dict("records")]), *[b.figure(p) for p in b.key_figures("paired")]]})
    return subs


# ---- class imbalance, SOTA ---------------------------------------------------------------------------------------


def _imbalance(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("imbalance")
    runs = [r for r in inp.runs_of("05") if r.get("task") in ("multiclass", "multilabel")]
    t = _runs_table(b, runs, f"Runs of notebook {inp.names_for('05')} on the test split (`metrics/*.json`); each "
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
        if _covered(b, name, df):
            continue  # repeats the runs table above (listed in the appendix)
        b.used_tables.add(name)
        ds = name.split("__", 1)[1]
        out.append(b.df_table(f"Remedies on {ds} ({inp.data_kind(ds)} data), test split (`tables/{name}.csv`); "
                              "descriptive, no remedy is picked on test.", _ci_merge(df),
                              [_auroc_note(bool((df.get("auroc", pd.Series(dtype=float)) < 0.5).any()))]))
    out += _per_class_recall(b)
    out += [b.figure(p) for p in b.key_figures("05")]
    if len(out) == len(b.prose("imbalance")):
        out.append({"kind": "text", "text": f"Notebook {inp.names_for('05')}: {NOT_RUN}."})
    return out


def _ci_merge(df: pd.DataFrame) -> pd.DataFrame:
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


def _per_class_recall(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    cls = _classification(inp.runs)
    for ds in sorted({r["dataset"] for r in cls}):
        runs = [r for r in cls if r["dataset"] == ds and r.get("per_class") and not _is_sweep(r["method"])
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


def _sota(b: Builder) -> list[dict[str, Any]]:
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
                              _wide_metrics(b, m.drop(columns=["source", "note", "comparable"], errors="ignore"))))
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
                              _wide_metrics(b, pub.drop(columns=["comparable", "majority_rate"], errors="ignore")),
                              [f"n{i}: {n}" for i, n in enumerate(keys, 1)]))
    for name in sorted(t for t in inp.tables if t.startswith("06_")):
        b.used_tables.add(name)
        df = inp.tables[name]
        out.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for('06')}).", _ci_merge(df).head(MAX_ROWS)))
    return out + [b.figure(p) for p in b.key_figures("06")]


SOTA_INDEX = ("dataset", "model", "method", "resolution", "split", "source", "note")


def _sota_cell(row: dict[str, Any]) -> str:
    """'0.853 [0.824, 0.881]' (one seed or published) or '0.853 ± 0.010 (2 seeds)'."""
    v = row.get("value")
    if not _finite(v):
        return "n/a"
    seeds = row.get("n_seeds")
    if _finite(seeds) and float(seeds) > 1 and _finite(row.get("sd")):
        return f"{fmt(float(v))} ± {fmt(float(row['sd']))} ({int(float(seeds))} seeds)"
    lo, hi = row.get("ci_low"), row.get("ci_high")
    return fmt(float(v)) + (f" [{fmt(float(lo))}, {fmt(float(hi))}]" if _finite(lo) and _finite(hi) else "")


def _wide_metrics(b: Builder, df: pd.DataFrame) -> pd.DataFrame:
    """Long comparison rows (metric, value, interval or spread over seeds) -> one column per metric, one row per
    model/method; sources -> [k]; the majority-class rate becomes one column."""
    if not {"metric", "value"} <= set(df.columns):
        return _ci_merge(df.dropna(axis=1, how="all"))
    df = df.copy()
    if "source" in df.columns:
        df["source"] = [b.cite_source(x) for x in df["source"]]
    index = [c for c in SOTA_INDEX if c in df.columns and not df[c].isna().all()]
    df["cell"] = [_sota_cell(r) for r in df.to_dict("records")]
    df["metric"] = [METRIC_NAMES.get(str(m), str(m)) for m in df["metric"]]
    for c in index:
        df[c] = ["" if _missing(v) else str(v) for v in df[c]]
    wide = df.pivot_table(index=index, columns="metric", values="cell", aggfunc="first", sort=False).reset_index()
    wide.columns.name = None
    if "majority_rate" in df.columns and df["majority_rate"].notna().any() and "dataset" in index:
        rates = df.dropna(subset=["majority_rate"]).groupby("dataset")["majority_rate"].first()
        wide["majority class"] = [fmt(float(rates[d])) if d in rates else "" for d in wide["dataset"]]
    return wide.fillna("")


# ---- discussion, conclusion, limitations, reproducibility --------------------------------------------------------


def _diff_rows(b: Builder) -> list[dict[str, Any]]:
    paired = b.inp.tables.get("paired_differences")
    if paired is None or not set(PAIRED_COLUMNS) <= set(paired.columns):
        return []
    return _abstract_pairs(paired.assign(seed=paired["seed"].astype(str))).to_dict("records")


def _discussion(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out: list[dict[str, Any]] = []
    rows = _diff_rows(b)
    clear = [r for r in rows if _finite(r["ci_low"]) and (float(r["ci_low"]) > 0 or float(r["ci_high"]) < 0)]
    unclear = [r for r in rows if r not in clear]
    if rows:
        out.append({"kind": "text", "text": (
            f"Of the {len(rows)} comparisons fixed in advance, {len(clear)} have a paired 95% interval that excludes "
            f"zero and {len(unclear)} do not. An interval that contains zero does not show that two methods are "
            "equal; it shows that this test set cannot tell them apart at this sample size.")})
        items = [f"{r['dataset']} ({inp.data_kind(str(r['dataset']))}): {_pair_label(r['method_a'], r['method_b'])}"
                 f", {METRIC_NAMES.get(str(r['metric']), r['metric'])} {fmt_diff(r['diff'])} "
                 f"[{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]" for r in clear]
        if items:
            out.append({"kind": "list", "items": items})
    else:
        out.append({"kind": "text", "text": "Without paired differences (`tables/paired_differences.csv` missing) no "
                                            "comparison in this report is a claim that one method beats another."})
    gen = inp.generated()
    if gen:
        out.append({"kind": "text", "text": f"Numbers on generated stand-ins ({', '.join(gen)}) test the code, not "
                                            "the method: the generated images carry a signal built into the "
                                            "generator, so differences there say nothing about real images."})
    low = sorted({r["dataset"] for r in _classification(inp.runs) if _finite(r["metrics"].get("auroc"))
                  and float(r["metrics"]["auroc"]) < 0.5})
    if low:
        out.append({"kind": "text", "text": f"Some runs have AUROC below 0.5 ({', '.join(low)}): their scores rank "
                                            "the classes the wrong way round, which for a randomly initialised or "
                                            "zero-shot model means its class texts carry no usable signal."})
    if inp.run_type != "FULL":
        out.append({"kind": "text", "text": "Because this is not a full run, none of the above is a finding about "
                                            "CLIP; it is a check that the comparison machinery works."})
    return out


def _conclusion(b: Builder) -> list[dict[str, Any]]:
    rows = _diff_rows(b)
    inp = b.inp
    if not rows:
        return [{"kind": "text", "text": "No conclusion is drawn: the paired differences were not computed in this "
                                         "run."}]
    items = []
    for r in rows:
        a, c = method_name(r["method_a"]), method_name(r["method_b"])
        v = _verdict(r["ci_low"], r["ci_high"], r["method_a"], r["method_b"])
        what = {f"{a} higher": f"{a} is better than {c}", f"{c} higher": f"{c} is better than {a}"}.get(
            v, f"{a} and {c} cannot be told apart")
        items.append(f"{r['dataset']} ({inp.data_kind(str(r['dataset']))} data): {what} in "
                     f"{METRIC_NAMES.get(str(r['metric']), r['metric'])} ({fmt_diff(r['diff'])} "
                     f"[{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]).")
    lead = "On this run's data:" if inp.run_type == "FULL" else \
        f"On this {inp.run_type} run (a test of the pipeline, not results):"
    return [{"kind": "text", "text": lead}, {"kind": "list", "items": items}]


def _limitations(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    items = []
    if inp.run_type != "FULL":
        items += [p["text"] for p in b.prose("smoke_limitation" if inp.run_type == "SMOKE" else "rehearsal_limitation")]
    gen = inp.generated()
    if gen:
        items.append(f"Generated stand-in data (not the real data set) was used for: {', '.join(gen)}.")
    items += [" ".join(str(x).split()) for x in b.text.get("limitations") or []]
    ci = [(r["run"], m, v[1] - v[0]) for r in inp.runs for m, v in (r.get("ci95") or {}).items()
          if v and _finite(v[0]) and _finite(v[1])]
    if ci:
        run, m, width = max(ci, key=lambda t: t[2])
        items.append(f"Widest 95% interval: {METRIC_NAMES.get(m, m)} of `{run}` spans {fmt(width)}.")
    missing = [f"{nn} ({name})" for nn, name in sorted(inp.notebooks.items())
               if not inp.runs_of(nn) and not any(p.name.startswith(nn + "_") for p in inp.figures)
               and not any(inp.nn_of(t) == nn for t in inp.tables)]
    if missing:
        items.append(f"Notebooks with no outputs in this folder ({NOT_RUN}): {', '.join(missing)}.")
    return [{"kind": "list", "items": items}]


def _reproducibility(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    m = inp.manifest
    out: list[dict[str, Any]] = []
    if not m:
        return [{"kind": "text", "text": f"`manifest.json`: {NOT_RUN}. Regenerate this report: `{b.regenerate}`."}]
    git = m.get("git") or {}
    dev = m.get("device") or {}
    rows = [("git commit", git.get("commit")), ("uncommitted changes (dirty)", git.get("dirty")),
            ("profile", m.get("profile", inp.profile)), ("profile hash", m.get("profile_hash")),
            ("seed", m.get("seed")), ("seeds", inp.cfg.get("seeds")),
            ("device", ", ".join(f"{k}: {v}" for k, v in dev.items()) if isinstance(dev, dict) else dev),
            ("data dir", m.get("data_dir")), ("started", m.get("started")), ("finished", m.get("finished")),
            ("total notebook wall time (s)", m.get("wall_time_s")), ("command", m.get("command"))]
    out.append(b.table("Run record (`manifest.json`).", ["item", "value"],
                       [[k, _cfg(v)] for k, v in rows if v is not None]))
    nbs = m.get("notebooks") or {}
    if nbs:
        out.append(b.table("Wall time per notebook (executed copies: `executed/NN_*.ipynb`).",
                           ["notebook", "seconds", "status"],
                           [[k, _cfg(v.get("seconds")) if isinstance(v, dict) else _cfg(v),
                             v.get("status", "") if isinstance(v, dict) else ""] for k, v in sorted(nbs.items())]))
    if inp.projection is not None and len(inp.projection):
        out.append(b.df_table("Rehearsal projection: wall time and peak memory per notebook on the device it ran on "
                              "(`projection.csv`).", inp.projection))
    pk = m.get("packages") or m.get("versions") or {}
    if pk:
        out.append({"kind": "text", "text": "Package versions: " + ", ".join(f"{k} {_cfg(v)}" for k, v in pk.items())
                                            + "."})
    out.append({"kind": "text", "text": f"Regenerate this report from the files above: `{b.regenerate}`. Re-run "
                                        f"everything: `{m.get('command') or './run_all.sh --profile ' + inp.profile}`."})
    return out


# ---- appendix ----------------------------------------------------------------------------------------------------


def _appendix(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    paired = _paired(b)
    if paired is not None:
        per_seed = paired[paired["seed"] != "pooled"]
        if len(per_seed):
            out.append({"id": "appendix-paired", "title": "Paired differences per seed", "subsections": [], "blocks": [
                b.table("Paired differences A - B per seed (`tables/paired_differences.csv`).",
                        ["dataset", "A - B", "metric", "seed", "difference [95% CI]", "n"],
                        [[r["dataset"], _pair_label(r["method_a"], r["method_b"]),
                          METRIC_NAMES.get(str(r["metric"]), str(r["metric"])), r["seed"],
                          f"{fmt_diff(r['diff'])} [{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]",
                          _value(r["n"], "n")] for r in per_seed.to_dict("records")])]})
    rest = [n for n in inp.tables if n not in b.used_tables and not _covered(b, n, inp.tables[n])]
    blocks = []
    for name in rest:
        df = _ci_merge(inp.tables[name])
        more = f" First {MAX_ROWS} of {len(df)} rows." if len(df) > MAX_ROWS else ""
        blocks.append(b.df_table(f"`tables/{name}.csv` (notebook {inp.names_for(inp.nn_of(name))}).{more}",
                                 df.head(MAX_ROWS)))
    covered = [n for n in inp.tables if n not in b.used_tables and n not in rest]
    if covered:
        blocks.append({"kind": "text", "text": "Also written, repeating numbers shown above: "
                                               + ", ".join(f"`tables/{n}.csv`" for n in covered) + "."})
    if blocks:
        out.append({"id": "appendix-tables", "title": "Further tables", "blocks": blocks, "subsections": []})
    figs = [p for p in inp.figures if p.name not in b.shown_figures]
    if figs:
        subs = []
        for nn in sorted({inp.nn_of(p.stem) or "other" for p in figs}):
            these = [p for p in figs if (inp.nn_of(p.stem) or "other") == nn]
            subs.append({"title": f"Notebook {inp.names_for(nn)}" if nn != "other" else "Other figures",
                         "blocks": [b.figure(p) for p in these]})
        out.append({"id": "appendix-figures", "title": "Further figures (learning curves, per-class bars, "
                                                      "confusion matrices, samples)", "blocks": [],
                    "subsections": subs})
    return out


def _close(a: Any, c: Any) -> bool:
    try:
        return math.isclose(float(a), float(c), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _covered(b: Builder, name: str, df: pd.DataFrame) -> bool:
    """True when every row of a table repeats numbers of a run shown in the report (its metrics file)."""
    inp = b.inp
    runs = [r for r in inp.runs if r.get("task") == "retrieval" or not _is_sweep(str(r.get("method")))]
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
            if all(not _missing(v) and k in r["metrics"] and _close(r["metrics"][k], v) for k, v in checks.items()
                   if not (_missing(v) and k not in r["metrics"])):
                ok = True
                break
        if not ok:
            return False
    return True
