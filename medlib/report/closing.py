"""The report's closing: a discussion written from rules over the results (where a gain is large or not resolved,
where methods or metrics disagree, which models are degenerate, what is not comparable and why, what generated data
and low AUROC mean), the limitations, the conclusion and how to reproduce the run. The discussion interprets; it
does not restate the numbers of the paired table."""

from __future__ import annotations

from typing import Any

from ..outputs.names import dataset_name, metric_name
from .blocks import Builder
from .formatting import _cfg, _finite, _missing, fmt
from .opening import method_phrase
from .runs import (classification, comparison, degenerate_groups, degenerate_of, diff_rows, is_sweep, method_name,
                   reading, row_runs, verdict)

LARGE = 0.05  # a resolved difference at least this large (in the metric's own units) is called large


def _who(r: dict[str, Any]) -> str:
    return f"{method_phrase(r['method_a'])} against {method_phrase(r['method_b'])} on {dataset_name(str(r['dataset']))}"


def section_discussion(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    rows = diff_rows(b)
    out: list[dict[str, Any]] = []
    if not rows:
        out.append({"kind": "text", "text": "Without paired differences (`tables/paired_differences.csv` missing) "
                                            "no comparison in this report is a claim that one method beats another; "
                                            "the side-by-side numbers are descriptive."})
    resolved = [r for r in rows if verdict(r) in ("A higher", "B higher")]
    unresolved = [r for r in rows if verdict(r) == "not resolved"]
    large = [r for r in resolved if _finite(r["diff"]) and abs(float(r["diff"])) >= LARGE and not degenerate_of(b, r)]
    if large:
        out.append({"kind": "text", "text": "Where the evidence is clear: " + "; ".join(
            f"the {'gain' if verdict(r) == 'A higher' else 'loss'} of {_who(r)} in {metric_name(str(r['metric']))}"
            for r in large[:4])
            + f". These gains are large relative to their intervals ({b.ref('tab:paired')}), so the comparison's "
              "direction would survive a different draw of test images."})
    if unresolved:
        seeds = inp.cfg.get("seeds")
        one = not isinstance(seeds, list) or len(seeds) <= 1
        out.append({"kind": "text", "text": f"{len(unresolved)} of {len(rows)} comparisons are not resolved: their "
                                            "intervals include zero, which does not show that the methods are equal, "
                                            "only that this test set cannot tell them apart. A larger test split"
                                            + (" or more training seeds (with one seed, each interval is conditional "
                                               "on that training run)" if one else "")
                                            + " would be needed to settle them."})
    out += _disagreements(b, rows)
    deg = degenerate_groups(b, [x for r in rows for side in ("a", "b") for x in row_runs(b, r, side)[:1]])
    if deg:
        out.append({"kind": "text", "text": "Degenerate models: " + "; ".join(deg) + ". A gain such a model shows in AUROC comes from how it ranks images, "
                                            "not from decisions anyone could use; at its threshold it is no "
                                            "classifier, and its recall and F1 are 0 by construction. Choosing "
                                            "thresholds on validation, or a loss that rewards positives, is the "
                                            "remedy to try before reading its gain as progress."})
    out += _not_comparable(b)
    gen = inp.generated()
    if gen:
        out.append({"kind": "text", "text": f"Numbers on generated stand-ins ({', '.join(dataset_name(d) for d in gen)})"
                                            " test the code, not the method: the generated images carry a signal "
                                            "built into the generator, so differences there say nothing about real "
                                            "images."})
    low = sorted({dataset_name(r["dataset"]) for r in classification(inp.runs) if _finite(r["metrics"].get("auroc"))
                  and float(r["metrics"]["auroc"]) < 0.5})
    if low:
        out.append({"kind": "text", "text": f"Some runs have AUROC below 0.5 ({', '.join(low)}): their scores rank "
                                            "the classes the wrong way round, which for a randomly initialised or "
                                            "zero-shot model means its class texts carry no usable signal."})
    if inp.run_type != "FULL":
        out.append({"kind": "text", "text": "Because this is not a full run, none of the above is a finding about "
                                            "CLIP; it is a check that the comparison machinery works."})
    return out


def _disagreements(b: Builder, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Where one comparison reads differently across metrics of one data set, or across data sets."""
    by_key: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        by_key.setdefault((comparison(r), str(r["dataset"])), []).append(r)
    said = []
    for (comp, ds), rs in by_key.items():
        if len({verdict(r) for r in rs} - {"n/a"}) > 1:
            said.append(f"on {dataset_name(ds)}, {method_phrase(rs[0]['method_a'])} against "
                        f"{method_phrase(rs[0]['method_b'])} reads "
                        + ", ".join(f"{reading(r)} in {metric_name(str(r['metric']))}" for r in rs))
    across: dict[str, set[str]] = {}
    for (comp, _), rs in by_key.items():
        across.setdefault(comp, set()).update(verdict(r) for r in rs)
    for comp, vs in across.items():
        if {"A higher", "B higher"} <= vs:
            said.append(f"the {comp.replace(' - ', ' against ')} comparison goes one way on some data sets and the "
                        "other way on others")
    if not said:
        return []
    return [{"kind": "text", "text": "Where methods or metrics disagree: " + "; ".join(said) + ". Accuracy rewards "
                                     "the majority class while AUROC and balanced accuracy do not, so a method can "
                                     "gain on one and lose on another; such a split is a property of the data set's "
                                     "balance as much as of the method."}]


def _not_comparable(b: Builder) -> list[dict[str, Any]]:
    sota = b.inp.tables.get("sota_comparison")
    if sota is None or "note" not in sota.columns:
        return []
    notes = [str(n) for n in sota["note"] if not _missing(n) and "NOT COMPARABLE" in str(n)]
    if not notes:
        return []
    reasons = {"resolution": "a different image resolution", " px": "a different image resolution", "split": "a different split",
               "sample": "a different sample", "generated": "generated data", "chestmnist": "a different data set"}
    why = sorted({w for n in notes for k, w in reasons.items() if k in n.lower()})
    return [{"kind": "text", "text": f"{len(notes)} published numbers are NOT COMPARABLE with ours"
                                     + (f" ({', '.join(why)})" if why else "")
                                     + f". They are quoted for orientation ({b.ref('tab:published')}); a gap to them "
                                       "is not a gap in method until data, split, resolution and metric agree."}]


def section_conclusion(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    rows = diff_rows(b)
    if not rows:
        return [{"kind": "text", "text": "No conclusion is drawn: the paired differences were not computed in this "
                                         "run."}]
    parts = []
    for comp in ("label - zero-shot", "caption - zero-shot", "label - caption", "remedy - none"):
        these = [r for r in rows if comparison(r) == comp]
        if not these:
            continue
        won = sorted({dataset_name(str(r["dataset"])) for r in these if verdict(r) == "A higher"
                      and not degenerate_of(b, r)})
        lost = sorted({dataset_name(str(r["dataset"])) for r in these if verdict(r) == "B higher"})
        a, c = method_phrase(these[0]["method_a"]), method_phrase(these[0]["method_b"])
        if comp == "remedy - none":
            a = "the remedy chosen on validation"
        bits = ([f"helps on {', '.join(won)}"] if won else []) + ([f"hurts on {', '.join(lost)}"] if lost else [])
        parts.append(f"{a[0].upper() + a[1:]} against {c}: " + ("; ".join(bits) if bits else "not resolved on any data "
                                                                                              "set") + ".")
    lead = "On this run's data" if inp.run_type == "FULL" else f"On this {inp.run_type} run (a test of the pipeline)"
    return [{"kind": "text", "text": f"{lead}: " + " ".join(parts) + " Where a comparison is not resolved, the honest "
                                     "answer is that this test set cannot tell; the paired table says by how much it "
                                     "could go either way."}]


def section_limitations(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    items = []
    gen = inp.generated()
    if gen:
        items.append(f"Generated stand-in data (not the real data set) was used for: "
                     f"{', '.join(dataset_name(d) for d in gen)}.")
    items += [" ".join(str(x).split()) for x in b.text.get("limitations") or []]
    ci = [(r, m, v[1] - v[0]) for r in inp.runs for m, v in (r.get("ci95") or {}).items()
          if v and _finite(v[0]) and _finite(v[1]) and not is_sweep(str(r.get("method")))]
    if ci:
        r, m, width = max(ci, key=lambda t: t[2])
        items.append(f"The widest 95% interval, {metric_name(m)} of {method_name(r['method'])} on "
                     f"{dataset_name(r['dataset'])}, spans {fmt(width)}: at this test size such differences are "
                     "invisible.")
    missing = [f"{nn} ({name})" for nn, name in sorted(inp.notebooks.items())
               if not inp.runs_of(nn) and not any(p.name.startswith(nn + "_") for p in inp.figures)
               and not any(inp.nn_of(t) == nn for t in inp.tables)]
    if missing:
        items.append(f"Notebooks with no outputs in this folder (not run): {', '.join(missing)}.")
    if inp.stale:
        items.append("Outputs of notebooks " + ", ".join(sorted(inp.stale)) + " are STALE (their code or profile "
                     f"changed after they ran); refresh them with `{inp.refresh or b.regenerate}`.")
    return [{"kind": "list", "items": items}]


def section_reproducibility(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    m = inp.manifest
    if not m:
        return [{"kind": "text", "text": f"`manifest.json`: not run. Regenerate this report: `{b.regenerate}`."}]
    git = m.get("git") or {}
    commit = str(git.get("commit") or "unknown")
    command = str(m.get("command") or f"./run_all.sh --profile {inp.profile}")
    return [{"kind": "text", "text": (
        f"Reproduce the run with `{command}` at commit `{commit[:12]}`"
        + (" (with uncommitted changes)" if git.get("dirty") else "")
        + f", profile `{m.get('profile', inp.profile)}` (hash `{_cfg(m.get('profile_hash'))}`); regenerate this report "
          f"from `reports/{inp.profile}/` alone with `{b.regenerate}`. The Typst sources `report.typ` and "
          "`report-appendix.typ` lie beside the PDFs: edit them and run `typst compile report.typ`. Figures are also "
          "written as vector PDF and SVG, tables as LaTeX (`tables/*.tex`). The full run record (device, packages, "
          f"wall time per notebook): {b.ref('sec:record')} of the appendix.")}]
