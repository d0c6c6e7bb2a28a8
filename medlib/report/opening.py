"""The report's opening: the abstract (prose of at most :data:`ABSTRACT_WORDS` words: the question, the data and
three to five findings, each with one number and its paired interval), the introduction, the data and the methods."""

from __future__ import annotations

from typing import Any

from ..outputs.names import dataset_name, metric_name, remedy_name
from .blocks import Builder
from .formatting import _cfg, _finite, _value, fmt_interval
from .runs import (COMPARISONS, NOT_RUN, comparison, degenerate_sides, diff_cell, method_name, n_seeds,
                   paired_frame, pooled, verdict)

ABSTRACT_WORDS = 250
MAX_FINDINGS = 5
PRIMARY_BY_COMPARISON = {"remedy - none": ("balanced_acc", "worst_class_recall")}
VERB = {"A higher": "beats", "B higher": "falls behind", "n/a": "has no interval against"}


def words(paragraphs: list[str]) -> int:
    return sum(len(p.split()) for p in paragraphs)


def method_phrase(label: str) -> str:
    """A method for a sentence: 'label fine-tuning'; the chosen remedy as 'the remedy chosen on validation
    (logit adjustment)'."""
    s = method_name(label)
    if s.startswith("best remedy:"):
        return f"the remedy chosen on validation ({remedy_name(s.split(':', 1)[1].split('(')[0].strip())})"
    return {"label fine-tune": "label fine-tuning", "caption fine-tune": "caption fine-tuning",
            "multi-label fine-tune": "multi-label fine-tuning"}.get(s, s)


def finding(b: Builder, row: dict[str, Any], df: Any) -> str:
    """One finding: 'On PneumoniaMNIST, label fine-tuning beats zero-shot in accuracy by +0.229 (95% CI
    [+0.199, +0.261], 2 seeds).' A degenerate model's gain carries the sentence that it is degenerate."""
    ds = str(row["dataset"])
    gen = " (GENERATED)" if b.inp.synthetic.get(ds) else ""
    v = verdict(row)
    k = n_seeds(df, row)
    number = diff_cell(row).replace(" [", " (95% CI [", 1) + f"{', ' + str(k) + ' seeds' if k > 1 else ''})"
    a, b_ = method_phrase(row["method_a"]), method_phrase(row["method_b"])
    metric = metric_name(str(row["metric"]))
    if v == "not resolved":
        text = (f"On {dataset_name(ds)}{gen}, the difference between {a} and {b_} in {metric} is {number}, "
                f"not resolved{why_open(row)}")
    else:
        text = f"On {dataset_name(ds)}{gen}, {a} {VERB.get(v, VERB['n/a'])} {b_} in {metric}: {number}"
    deg = degenerate_sides(b, row)
    if deg:
        who = " and ".join(dict.fromkeys(m for _, m, _ in deg))
        why = "; ".join(dict.fromkeys(w for _, _, w in deg))
        if v == "A higher" and any(side == "a" for side, _, _ in deg):
            text += (f", but {who} {'are' if len(set(m for _, m, _ in deg)) > 1 else 'is'} degenerate ({why}): the gain "
                     "is in ranking, not in decisions")
        else:
            text += f" ({who} degenerate: {why})"
    return text + "."


def why_open(row: dict[str, Any]) -> str:
    """Why a difference whose row-level interval excludes zero is still not resolved: its seed-level interval
    includes zero, or Holm's correction lifts its p-value to 0.05 or more ('' when the row interval includes zero)."""
    lo, hi, slo, shi, p = (row.get(k) for k in ("ci_low", "ci_high", "seed_ci_low", "seed_ci_high", "p_holm"))
    if not (_finite(lo) and _finite(hi)) or lo <= 0 <= hi:
        return ""
    if _finite(slo) and _finite(shi) and slo <= 0 <= shi:
        return f" (the interval over seeds, {fmt_interval(slo, shi)}, includes zero)"
    if _finite(p) and p >= 0.05:
        return f" after Holm's correction for the comparisons reported together (adjusted p = {p:.2g})"
    return ""


def pick_findings(b: Builder, df: Any) -> list[dict[str, Any]]:
    """The abstract's rows, a rule fixed in advance: per comparison (label - zero-shot, caption - zero-shot, label
    - caption, remedy - none) its row on the data set shown first (real data, then the lead data set, then resolved
    before unresolved), on the comparison's main metric (accuracy; AUROC on multi-label sets; balanced accuracy for
    remedies); then the rows left, resolved first, up to :data:`MAX_FINDINGS`."""
    rows = pooled(df).to_dict("records")

    def main_metric(r: dict[str, Any]) -> bool:
        comp = comparison(r)
        if comp in PRIMARY_BY_COMPARISON:
            return str(r["metric"]) == PRIMARY_BY_COMPARISON[comp][0]
        task = b.inp.task_of(str(r["dataset"]))
        return str(r["metric"]) == ("auroc" if task == "multilabel" else "acc")

    def order(r: dict[str, Any]) -> tuple:
        ds = str(r["dataset"])
        return (bool(b.inp.synthetic.get(ds)), ds != b.lead, verdict(r) not in ("A higher", "B higher"),
                -abs(float(r["diff"])) if _finite(r["diff"]) else 0.0, ds)

    main = [r for r in rows if main_metric(r)]
    out: list[dict[str, Any]] = []
    for comp in COMPARISONS:
        cands = sorted((r for r in main if comparison(r) == comp), key=order)
        if cands:
            out.append(cands[0])
    rest = sorted((r for r in main if r not in out), key=order)
    return (out + rest)[:MAX_FINDINGS]


def section_abstract(b: Builder) -> dict[str, Any]:
    """{"paragraphs": [...], "words": n, "findings": [paired rows]}: prose, at most :data:`ABSTRACT_WORDS`."""
    inp = b.inp
    question = " ".join(str(b.text.get("question", "")).split())
    if not inp.runs:
        paras = [question, f"No evaluated runs were found under `metrics/` ({NOT_RUN})."]
        return {"paragraphs": paras, "words": words(paras), "findings": []}
    med = [d for d in dict.fromkeys(r["dataset"] for r in inp.runs) if inp.task_of(d) in ("multiclass", "multilabel")]
    named = ", ".join(dataset_name(d) + (" (GENERATED)" if inp.synthetic.get(d) else "") for d in med)
    model = next((str(m.get("display") or m.get("name")) for m in inp.models if m.get("name") == b.main), b.main)
    paired = paired_frame(b)
    holm = paired is not None and "p_holm" in paired.columns and paired["p_holm"].notna().any()
    method = (f"We adapt {model} to {len(med)} medical data set{'s' if len(med) != 1 else ''} ({named}) and compare "
              "zero-shot classification with contrastive fine-tuning on captions and supervised fine-tuning on "
              "labels, every choice made on validation, with paired bootstrap intervals on the same test images"
              + (" (verdicts Holm-corrected across the comparisons reported together)." if holm else
                 " (not corrected for multiple comparisons)."))
    findings: list[dict[str, Any]] = []
    if paired is None:
        results = ["Paired differences were not computed in this run (`tables/paired_differences.csv` is "
                   "missing), so no comparison here is a claim that one method beats another."]
    else:
        findings = pick_findings(b, paired)
        results = [finding(b, r, paired) for r in findings]
    close = []
    if inp.run_type != "FULL":
        close.append(f"This is a {inp.run_type} run: its numbers test the pipeline, not the method.")
    elif inp.generated():
        close.append("Numbers on GENERATED stand-ins test the code, not the method.")
    stale = inp.stale_note("06", *{str(r.get("notebook", ""))[:2] for r in inp.runs})
    if stale:
        close.append(stale.strip())
    while True:
        paras = [f"{question} {method}", " ".join(results), " ".join(close)]
        if words(paras) <= ABSTRACT_WORDS or len(results) <= 1:
            break
        results, findings = results[:-1], findings[:-1]
    paras = [p for p in paras if p]
    return {"paragraphs": paras, "words": words(paras), "findings": findings}


def section_intro_run(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    if inp.run_type == "FULL":
        return []
    return b.prose("smoke_limitation" if inp.run_type == "SMOKE" else "rehearsal_limitation")


def used_datasets(b: Builder) -> list[str]:
    inp = b.inp
    found = list(dict.fromkeys([r["dataset"] for r in inp.runs]))
    df = inp.tables.get("data_summary")
    if df is not None and "dataset" in df.columns:
        found += [str(d) for d in df["dataset"] if str(d) not in found]
    return found


def section_data(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("data")
    described = []
    specs = {str(d.get("name")): d for d in inp.cfg.get("datasets") or [] if isinstance(d, dict)}
    known = b.text.get("datasets") or {}
    for ds in used_datasets(b):
        spec, entry = specs.get(ds, {}), known.get(ds) or {}
        text = str(spec.get("description") or entry.get("text") or f"{dataset_name(ds)} is a data set of this "
                                                                    "profile's own")
        cites = [b.cite(k) for k in (entry.get("cite") or []) if not spec.get("description")]
        if spec.get("citation"):
            cites.append(b.cite_source(spec["citation"]))
        gen = " Here it is a GENERATED stand-in." if inp.synthetic.get(ds) else ""
        described.append(f"{text}{' ' + ' '.join(c for c in cites if c) if any(cites) else ''}.{gen}")
    if described:
        out.append({"kind": "text", "text": " ".join(described)})
    compact = next((n for n in ("data_summary", "data_splits") if n in inp.tables
                    and {"train", "test"} <= set(inp.tables[n].columns)), None)
    if compact:
        b.used_tables.add(compact)
        df = inp.tables[compact]
        cols = [c for c in ("task", "classes", "train", "val", "test", "license") if c in df.columns]
        rows = [[dataset_name(str(r["dataset"])), inp.data_kind(str(r["dataset"])),
                 *[_value(r[c], c) if c != "license" else str(r[c]).split(" (")[0] for c in cols]]
                for r in df.to_dict("records")]
        out.append(b.table(f"Data sets and images per split (`tables/{compact}.csv`; a multi-label image counts once;"
                           f" GENERATED = a stand-in in the real data set's layout).{inp.stale_note('01')}",
                           ["data set", "data", *[c.replace("license", "licence") for c in cols]], rows,
                           key="tab:data"))
    else:
        out.append({"kind": "text", "text": f"`tables/data_summary.csv`: {NOT_RUN}."})
    out += _class_balance(b)
    if "skipped_datasets" in inp.tables:
        b.used_tables.add("skipped_datasets")
        sk = inp.tables["skipped_datasets"]
        if not sk.empty and {"dataset", "reason"} <= set(sk.columns):
            first = sk.drop_duplicates("dataset")
            out.append({"kind": "text", "text": "Skipped: " + "; ".join(
                f"{dataset_name(str(d))} ({str(r).split('. Fix:')[0].split(': ', 1)[-1]})"
                for d, r in zip(first["dataset"], first["reason"])) + " (`tables/skipped_datasets.csv`)."})
    out.append({"kind": "text", "text": f"Examples per class and sample images of every data set: "
                                        f"{b.ref('sec:figures')} of the appendix."})
    return out


def _class_balance(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    counts = next((n for n in ("01_class_counts", "data_summary") if n in inp.tables
                   and {"class", "n", "split"} <= set(inp.tables[n].columns)), None)
    if not counts:
        return []
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
        items.append(f"{dataset_name(str(ds))}: {desc}")
    return [{"kind": "text", "text": f"Training images per class (`tables/{counts}.csv`): " + "; ".join(items) + "."}] \
        if items else []


def section_methods(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = b.prose("methods")
    if inp.models:
        out.append({"kind": "text", "text": "Models: " + "; ".join(
            f"{m.get('display') or m.get('name')} (`{m.get('name')}`, {m.get('arch')}, "
            f"{'weights ' + str(m.get('pretrained')) if m.get('pretrained') else 'random initialisation'}"
            f"{', the main model' if m.get('name') == b.main else ''})" for m in inp.models) + "."})
    cfg = inp.cfg
    train = (cfg.get("label_finetune") or {}).get("train") if isinstance(cfg.get("label_finetune"), dict) else None
    if isinstance(train, dict):
        keys = [k for k in ("epochs", "batch_size", "lr", "weight_decay") if k in train]
        seeds = cfg.get("seeds")
        out.append({"kind": "text", "text": "Label fine-tuning: " + ", ".join(
            f"{k.replace('_', ' ')} {_cfg(train[k])}" for k in keys) + (f"; seeds {_cfg(seeds)}" if seeds else "")
            + f". Every stage's settings: {b.ref('tab:settings')} of the appendix."})
    out += b.prose("statistics")
    out.append({"kind": "text", "text": " ".join(_statistics(b))})
    return out


def _statistics(b: Builder) -> list[str]:
    """What a verdict's interval carries, multiple comparisons, thresholds and Recall@K, as this run did them."""
    inp = b.inp
    paired = paired_frame(b)
    out = []
    if paired is not None and "variance" in paired.columns:
        sources = sorted({str(v) for v in pooled(paired)["variance"].dropna()})
        if sources:
            out.append("Each verdict's interval carries " + "; or ".join(sources) + " (column `variance` of "
                       "`tables/paired_differences.csv`).")
    else:
        out.append("Each interval resamples the test images of the trained runs, so it carries test-set sampling "
                   "only.")
    seeds = inp.cfg.get("seeds")
    if not isinstance(seeds, list) or len(seeds) <= 1:
        out.append("With one training seed, every interval is conditional on that training run: a second run "
                   "could land elsewhere.")
    if paired is not None and "p_holm" in paired.columns and paired["p_holm"].notna().any():
        m = int(pooled(paired)["p_holm"].notna().sum())
        out.append(f"A verdict (A higher, B higher) also needs its Holm-adjusted p-value {b.cite('holm1979')} below "
                   f"0.05 within the {m} pooled comparisons reported together; otherwise it reads not resolved.")
    else:
        out.append("Verdicts are not corrected for multiple comparisons: a difference reads resolved when its 95% "
                   "interval excludes zero, and otherwise not resolved.")
    ml = [r for r in inp.runs if r.get("task") == "multilabel"]
    if ml:
        tuned = any(r.get("threshold") is not None and "at_0.5" in r for r in ml)
        out.append("Multi-label decisions use per-label thresholds chosen on validation, with the fixed 0.5 kept as "
                   "a second view in each metrics file." if tuned else
                   "Multi-label decisions use the fixed threshold 0.5 on each label's probability.")
    if any(r.get("task") == "retrieval" for r in inp.runs):
        out.append("Recall@K is the share of queries whose correct item ranks among the top K; a candidate scoring "
                   "equal to the correct one counts against the query (ties never help).")
    return out
