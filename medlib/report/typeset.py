"""The Typst sources of the paper and its appendix (``report.typ``, ``report-appendix.typ``) written from the data
model, and their PDFs compiled by the ``typst`` package (no system libraries, no LaTeX).

Each source is complete on its own: the preamble of ``templates/report.typ`` (page, fonts, the ``tbl`` and ``fig``
functions), then the text as plain Typst markup a student can edit, every value escaped so that it shows as the text
it is (:func:`medlib.report.escape.typst`). Figures are read as ``figures/<name>.pdf`` (vector) where the notebook
wrote one. The sources are written beside the PDFs, where ``typst compile report.typ`` reproduces the same PDF.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import fail
from .escape import typst as ty
from .escape import typst_string

_STYLE = resources.files("medlib.report").joinpath("templates", "report.typ")
PAPER, APPENDIX = "report.typ", "report-appendix.typ"


def _content(text: Any, cell: bool = False) -> str:
    return f"[{ty(text, cell=cell)}]"


def _tuple(items: list[str]) -> str:
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def _table(b: dict[str, Any]) -> str:
    rows = ",\n".join("    " + _tuple([_content(c, cell=True) for c in row]) for row in b["rows"])
    return (f"#tbl(number: {typst_string(b['number'])}, font: {b['font_pt']}pt, landscape: "
            f"{'true' if b['landscape'] else 'false'},\n"
            f"  caption: {_content(b['caption'])},\n"
            f"  widths: {_tuple([str(w) for w in b['widths']])},\n"
            f"  header: {_tuple([_content(h, cell=True) for h in b['header']])},\n"
            f"  rows: (\n{rows}{',' if len(b['rows']) == 1 else ''}\n  ),\n"
            f"  notes: {_tuple([_content(n, cell=True) for n in b['notes']])},\n)")


def _figure(b: dict[str, Any]) -> str:
    return (f"#fig(number: {typst_string(b['number'])}, path: {typst_string(b.get('vector') or b['path'])}, "
            f"width: {b['width_in']}in,\n  caption: {_content(b['caption'])})")


def _blocks(blocks: list[dict[str, Any]]) -> str:
    out = []
    for b in blocks:
        if b["kind"] == "text":
            out.append(ty(b["text"]))
        elif b["kind"] == "list":
            out.append("\n".join(f"- {ty(i)}" for i in b["items"]))
        elif b["kind"] == "table":
            out.append(_table(b))
        elif b["kind"] == "figure":
            out.append(_figure(b))
    return "\n\n".join(out)


def _sections(sections: list[dict[str, Any]]) -> str:
    out = []
    for s in sections:
        out.append(f"= {ty(s['title'])}")
        if s["blocks"]:
            out.append(_blocks(s["blocks"]))
        for sub in s["subsections"]:
            out.append(f"== {ty(sub['title'])}")
            out.append(_blocks(sub["blocks"]))
    return "\n\n".join(out)


def _head(model: dict[str, Any], title: str, what: str, regenerate: str) -> str:
    style = _STYLE.read_text(encoding="utf-8")
    header = f"{model['run_type']} run, profile {model['profile']}" if model["run_type"] != "FULL" else \
        f"profile {model['profile']}"
    return (f"// {what} of reports/{model['profile']}/, written by `{regenerate}` (medlib/report/typeset.py).\n"
            "// Edit the text below and recompile in this folder: `typst compile "
            f"{PAPER if what == 'The paper' else APPENDIX}` (figures/ lies beside it).\n"
            "// The look (page, fonts, tables, figures) is the preamble up to the line '---- the text ----'.\n\n"
            f"{style}\n// ---- the text ----\n\n"
            f"#set document(title: {typst_string(title)}, date: none)\n"
            f"#header-text.update({typst_string(header)})\n\n"
            "#align(center)[\n  #set par(justify: false)\n"
            f"  #text(15pt, weight: \"bold\", hyphenate: false)[{ty(title)}] \\\n"
            f"  #v(0.15em)\n  #text(10.5pt)[{ty(model['subtitle'])}]\n]\n\n"
            f"#banner[{ty(model['banner'])}]\n\n")


def paper_source(model: dict[str, Any]) -> str:
    """report.typ: title, banner, abstract, the numbered sections and the references."""
    out = [_head(model, model["title"], "The paper", model["regenerate"]),
           "#heading(level: 1, numbering: none, outlined: false)[Abstract]\n\n"
           + "\n\n".join(ty(p) for p in model["abstract"]["paragraphs"]),
           "#set heading(numbering: \"1.1\")", _sections(model["sections"]),
           "#heading(level: 1, numbering: none)[References]\n\n#set par(justify: false)\n#set text(size: 8.5pt)\n\n"
           + "\n".join(f"#block(spacing: 0.45em)[\\[{r['n']}\\] {ty(r['text'])}]" for r in model["references"])]
    return "\n\n".join(out) + "\n"


def appendix_source(model: dict[str, Any]) -> str:
    """report-appendix.typ: the appendix's lettered sections (A, A.1, ...) with tables and figures A1, A2, ..."""
    app = model["appendix"]
    intro = ("Tables and figures here are numbered A1, A2, ...; the paper (`report.pdf`) refers to them.")
    out = [_head(model, app["title"], "The appendix", model["regenerate"]), ty(intro),
           "#outline(title: [Contents], depth: 1)", "#set heading(numbering: \"A.1\")", _sections(app["sections"])]
    return "\n\n".join(out) + "\n"


def compile_pdf(source: str, root: Path, name: str) -> bytes:
    """The PDF of a Typst ``source`` whose figure paths resolve against ``root`` (reports/<profile>/)."""
    try:
        import typst
    except ImportError:
        raise fail(Path(root) / name, "the typst package is not installed",
                   "pip install 'typst>=0.14' (a dependency of medlib; `make test` sets up .venv with it)") from None
    try:
        return typst.compile(source.encode("utf-8"), root=str(root))
    except RuntimeError as exc:  # typst.TypstError: a template or figure problem, named in the message
        raise fail(Path(root) / name, f"typst could not typeset the report ({str(exc).splitlines()[0]})",
                   "check medlib/report/templates/report.typ and the figures folder") from None
