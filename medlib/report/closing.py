"""The report's closing: discussion, conclusion, limitations, reproducibility and the appendix."""

from __future__ import annotations

from typing import Any


from .blocks import Builder
from .formatting import METRIC_NAMES, _cfg, _finite, _value, fmt, fmt_diff, method_name
from .runs import MAX_ROWS, NOT_RUN, classification, paired_frame, pair_label, verdict, ci_merge, diff_rows, repeats_shown


def section_discussion(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out: list[dict[str, Any]] = []
    rows = diff_rows(b)
    clear = [r for r in rows if _finite(r["ci_low"]) and (float(r["ci_low"]) > 0 or float(r["ci_high"]) < 0)]
    unclear = [r for r in rows if r not in clear]
    if rows:
        out.append({"kind": "text", "text": (
            f"Of the {len(rows)} comparisons fixed in advance, {len(clear)} have a paired 95% interval that excludes "
            f"zero and {len(unclear)} do not. An interval that contains zero does not show that two methods are "
            "equal; it shows that this test set cannot tell them apart at this sample size.")})
        items = [f"{r['dataset']} ({inp.data_kind(str(r['dataset']))}): {pair_label(r['method_a'], r['method_b'])}"
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
    low = sorted({r["dataset"] for r in classification(inp.runs) if _finite(r["metrics"].get("auroc"))
                  and float(r["metrics"]["auroc"]) < 0.5})
    if low:
        out.append({"kind": "text", "text": f"Some runs have AUROC below 0.5 ({', '.join(low)}): their scores rank "
                                            "the classes the wrong way round, which for a randomly initialised or "
                                            "zero-shot model means its class texts carry no usable signal."})
    if inp.run_type != "FULL":
        out.append({"kind": "text", "text": "Because this is not a full run, none of the above is a finding about "
                                            "CLIP; it is a check that the comparison machinery works."})
    return out


def section_conclusion(b: Builder) -> list[dict[str, Any]]:
    rows = diff_rows(b)
    inp = b.inp
    if not rows:
        return [{"kind": "text", "text": "No conclusion is drawn: the paired differences were not computed in this "
                                         "run."}]
    items = []
    for r in rows:
        a, c = method_name(r["method_a"]), method_name(r["method_b"])
        v = verdict(r["ci_low"], r["ci_high"], r["method_a"], r["method_b"])
        what = {f"{a} higher": f"{a} is better than {c}", f"{c} higher": f"{c} is better than {a}"}.get(
            v, f"{a} and {c} cannot be told apart")
        items.append(f"{r['dataset']} ({inp.data_kind(str(r['dataset']))} data): {what} in "
                     f"{METRIC_NAMES.get(str(r['metric']), r['metric'])} ({fmt_diff(r['diff'])} "
                     f"[{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]).")
    lead = "On this run's data:" if inp.run_type == "FULL" else \
        f"On this {inp.run_type} run (a test of the pipeline, not results):"
    return [{"kind": "text", "text": lead}, {"kind": "list", "items": items}]


def section_limitations(b: Builder) -> list[dict[str, Any]]:
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


def section_reproducibility(b: Builder) -> list[dict[str, Any]]:
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


def section_appendix(b: Builder) -> list[dict[str, Any]]:
    inp = b.inp
    out = []
    paired = paired_frame(b)
    if paired is not None:
        per_seed = paired[paired["seed"] != "pooled"]
        if len(per_seed):
            out.append({"id": "appendix-paired", "title": "Paired differences per seed", "subsections": [], "blocks": [
                b.table("Paired differences A - B per seed (`tables/paired_differences.csv`).",
                        ["dataset", "A - B", "metric", "seed", "difference [95% CI]", "n"],
                        [[r["dataset"], pair_label(r["method_a"], r["method_b"]),
                          METRIC_NAMES.get(str(r["metric"]), str(r["metric"])), r["seed"],
                          f"{fmt_diff(r['diff'])} [{fmt_diff(r['ci_low'])}, {fmt_diff(r['ci_high'])}]",
                          _value(r["n"], "n")] for r in per_seed.to_dict("records")])]})
    rest = [n for n in inp.tables if n not in b.used_tables and not repeats_shown(b, n, inp.tables[n])]
    blocks = []
    for name in rest:
        df = ci_merge(inp.tables[name])
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
