"""The report's data model: everything the paper and its appendix say, collected from ``reports/<profile>/`` alone.

:func:`build_model` reads manifest.json, metrics/*.json, predictions/*.npz (test labels only, for the
majority-class rate), tables/*.csv and figures/*.png and returns one JSON-serialisable dict. The renderers
(:mod:`medlib.report.render`: Jinja2 templates for Markdown/HTML; :mod:`medlib.report.typeset`: the Typst source of
each PDF) only lay it out.

Shape of the model::

    {"title", "subtitle", "run_type" (SMOKE | REHEARSAL | FULL), "banner", "generated", "real", "profile",
     "abstract": {"paragraphs": [str], "words": int, "findings": [paired row]},
     "sections": [section], "references": [{"n", "text"}], "regenerate", "finished",
     "appendix": {"title", "sections": [section]}, "headline_tables": [table]}
    section = {"id", "title", "blocks": [block], "subsections": [{"title", "blocks"}]}
    block   = {"kind": "text", "text"} | {"kind": "list", "items"} |
              {"kind": "table", "number", "caption", "header", "rows", "notes", "widths", "font_pt", "landscape"} |
              {"kind": "figure", "number", "path", "vector", "caption", "width_in"}

The paper's tables and figures are numbered 1, 2, ...; the appendix's A1, A2, ...; cross-references between them
are filled in once both are built. Text is plain, with `code` in backticks and [k] citations. Formatting rule (one
rule, used everywhere): metric values with 3 decimals (``0.853``), intervals ``[0.824, 0.880]``, differences signed
(``+0.120``) with the decimals their sign needs, integers as they are, undefined values ``n/a``. No "best" is
picked on test: the abstract's comparisons are fixed in advance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .appendix import build_appendix
from .blocks import Builder
from .closing import (section_conclusion, section_discussion, section_limitations, section_reproducibility)
from .inputs import Inputs
from .opening import section_abstract, section_data, section_intro_run, section_methods
from .results import section_results

TITLE = "Adapting CLIP to medical images: zero-shot, caption and label fine-tuning"


def build_model(reports_dir: Path, profile_name: str) -> dict[str, Any]:
    """The report's data model for ``reports_dir/<profile_name>/`` (reads only; writes nothing)."""
    inp = Inputs(Path(reports_dir) / profile_name, profile_name)
    b = Builder(inp, f"make report PROFILE={profile_name}")
    return _assemble(b)


def _assemble(b: Builder) -> dict[str, Any]:
    inp = b.inp
    gen = inp.generated()
    real = sorted(d for d, s in inp.synthetic.items() if not s)
    title = TITLE if inp.run_type == "FULL" else f"{inp.run_type} — {TITLE}"
    if gen:
        title += " (GENERATED data only)" if not real else f" (GENERATED data: {', '.join(gen)})"
    kind = {"SMOKE": "SMOKE run", "REHEARSAL": "REHEARSAL run", "FULL": "full run"}[inp.run_type]
    subtitle = f"{kind}, profile `{inp.profile}`" + (f"; real data: {', '.join(real)}" if real else "")
    intro = b.prose("introduction")  # cites first, so references are numbered in reading order
    abstract = section_abstract(b)
    sections = [
        {"id": "introduction", "title": "Introduction", "blocks": intro + section_intro_run(b), "subsections": []},
        {"id": "data", "title": "Data", "blocks": section_data(b), "subsections": []},
        {"id": "methods", "title": "Methods", "blocks": section_methods(b), "subsections": []},
        {"id": "results", "title": "Results", "blocks": [], "subsections": section_results(b)},
        {"id": "discussion", "title": "Discussion", "blocks": section_discussion(b), "subsections": []},
        {"id": "limitations", "title": "Limitations", "blocks": section_limitations(b), "subsections": []},
        {"id": "conclusion", "title": "Conclusion", "blocks": section_conclusion(b), "subsections": []},
        {"id": "reproducibility", "title": "Reproducibility", "blocks": section_reproducibility(b),
         "subsections": []},
    ]
    headline = [blk for s in sections for sub in s["subsections"] for blk in sub["blocks"]
                if blk.get("kind") == "table" and blk.get("number") in (b.labels.get("tab:main", "")[6:],
                                                                         b.labels.get("tab:paired", "")[6:])]
    appendix = build_appendix(b)
    refs = []
    for i, key in enumerate(b.cited, 1):
        e = b.bib[key]
        parts = [str(e.get("authors") or "").strip(), str(e.get("title") or "").strip(),
                 str(e.get("venue") or "").strip(), str(e.get("year") or "").strip()]
        refs.append({"n": i, "key": key, "text": ". ".join(p.rstrip(".") for p in parts if p) + "."})
    model = {"title": title, "subtitle": subtitle, "run_type": inp.run_type, "banner": _banner(inp, gen, real),
             "profile": inp.profile, "generated": gen, "real": real, "abstract": abstract,
             "sections": sections, "references": refs, "regenerate": b.regenerate,
             "finished": str(inp.manifest.get("finished") or ""),
             "appendix": {"title": f"Appendix to: {title}", "sections": appendix},
             "headline_tables": headline}
    return _relative_paths(b.resolve(model), inp)


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
            return {k: (v if k in ("path", "vector") else walk(v)) for k, v in x.items()}
        return x

    return walk(model)


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
