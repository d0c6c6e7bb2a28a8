"""Renderers: the data model (:mod:`medlib.report.model`) -> the paper and its appendix as Markdown and HTML
(Jinja2 templates) and PDF (their Typst sources, :mod:`medlib.report.typeset`).

Every value a Markdown template prints goes through :func:`medlib.report.escape.markdown` (the environment's
``finalize``), so text from data is shown as text; the HTML pages are that Markdown converted with raw data never
reaching them as HTML, and only http(s) links, #anchors and embedded images kept (:class:`~.escape.LinkPolicy`).
"""

from __future__ import annotations

import base64
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markdown
from markdown.extensions.toc import slugify
from markupsafe import Markup

from .escape import LinkPolicy, markdown_cell, markdown_code, markdown_url
from .escape import markdown as md_text
from .typeset import APPENDIX, PAPER, appendix_source, compile_pdf, paper_source

_TEMPLATES = resources.files("medlib.report").joinpath("templates")
# Table cells may break after _ / : (long run names wrap instead of widening the table past the printed page).
_CELL = re.compile(r"(<t[dh][^>]*>)(.*?)(</t[dh]>)", re.S)
_BREAK = re.compile(r"([_/:])(?![^<]*>)")  # not inside a tag
TEMPLATE = {"paper": "report.md.j2", "appendix": "appendix.md.j2"}


def _env(html: bool = False) -> jinja2.Environment:
    """The Jinja environment of the Markdown templates (``html=True``: of the HTML page template).

    Markdown: Jinja's autoescape machinery with :func:`~.escape.markdown` as the escape (``finalize``); what the
    templates build themselves (macro output, ``cells``, ``code``, ``img``, ``anchor``) is marked safe. HTML:
    Jinja's HTML autoescape.
    """
    env = jinja2.Environment(loader=jinja2.FunctionLoader(
        lambda name: _TEMPLATES.joinpath(name).read_text(encoding="utf-8")),
        autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined, finalize=None if html else _md_finalize)
    env.filters["cells"] = lambda values: Markup(" | ").join(markdown_cell(v) for v in values)
    env.globals["anchor"] = lambda text: Markup(slugify(str(text), "-"))
    env.globals["code"] = markdown_code
    return env


def _md_finalize(value: Any) -> Markup:
    return value if isinstance(value, Markup) else md_text(value)


def render_markdown(model: dict[str, Any], img=lambda path: path, doc: str = "paper") -> str:
    """report.md (``doc="appendix"``: report-appendix.md): image links relative to reports/<profile>/ (or whatever
    ``img`` returns)."""
    text = _env().get_template(TEMPLATE[doc]).render(**model, img=lambda path: markdown_url(img(path)))
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def render_html(model: dict[str, Any], base: Path, doc: str = "paper") -> str:
    """report.html (or report-appendix.html): self-contained (figures embedded as base64 PNG), print stylesheet."""
    def embed(path: str) -> str:
        return "data:image/png;base64," + base64.b64encode((base / path).read_bytes()).decode()

    body = markdown.markdown(render_markdown(model, embed, doc),
                             extensions=["tables", "fenced_code", "sane_lists", "md_in_html", "toc", LinkPolicy()])
    body = _CELL.sub(lambda m: m.group(1) + _BREAK.sub(r"\1<wbr>", m.group(2)) + m.group(3), body)
    title = model["title"] if doc == "paper" else model["appendix"]["title"]
    return _env(html=True).get_template("report.html.j2").render(title=title, body=Markup(body))


def render_typst(model: dict[str, Any], doc: str = "paper") -> str:
    """report.typ (or report-appendix.typ): the Typst source of the PDF."""
    return paper_source(model) if doc == "paper" else appendix_source(model)


def render_pdf(model: dict[str, Any], base: Path, doc: str = "paper") -> bytes:
    """report.pdf (or report-appendix.pdf) via its Typst source; figure paths resolve against ``base``."""
    return compile_pdf(render_typst(model, doc), base, PAPER if doc == "paper" else APPENDIX)
