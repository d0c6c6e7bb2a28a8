"""Renderers: the data model (:mod:`medlib.report.model`) -> report.md and report.html (Jinja2 templates) and
report.pdf (a Typst template, compiled by the ``typst`` package: no system libraries, no LaTeX).

Every value a Markdown template prints goes through :func:`medlib.report.escape.markdown` (the environment's
``finalize``), so text from data is shown as text; report.html is that Markdown converted with raw data never
reaching it as HTML, and only http(s) links, #anchors and embedded images kept (:class:`~.escape.LinkPolicy`).
"""

from __future__ import annotations

import base64
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import markdown
from markdown.extensions.toc import slugify
from markupsafe import Markup

from ..errors import fail
from .escape import LinkPolicy, markdown_cell, markdown_code, markdown_url
from .escape import markdown as md_text

_TEMPLATES = resources.files("medlib.report").joinpath("templates")
# Table cells may break after _ / : (long run names wrap instead of widening the table past the printed page).
_CELL = re.compile(r"(<t[dh][^>]*>)(.*?)(</t[dh]>)", re.S)
_BREAK = re.compile(r"([_/:])(?![^<]*>)")  # not inside a tag


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


def render_markdown(model: dict[str, Any], img=lambda path: path) -> str:
    """report.md: image links relative to reports/<profile>/ (or whatever ``img`` returns)."""
    text = _env().get_template("report.md.j2").render(**model, img=lambda path: markdown_url(img(path)))
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip() + "\n"


def render_html(model: dict[str, Any], base: Path) -> str:
    """report.html: self-contained (figures embedded as base64 PNG), with a print stylesheet."""
    def embed(path: str) -> str:
        return "data:image/png;base64," + base64.b64encode((base / path).read_bytes()).decode()

    body = markdown.markdown(render_markdown(model, embed),
                             extensions=["tables", "fenced_code", "sane_lists", "md_in_html", "toc", LinkPolicy()])
    body = _CELL.sub(lambda m: m.group(1) + _BREAK.sub(r"\1<wbr>", m.group(2)) + m.group(3), body)
    return _env(html=True).get_template("report.html.j2").render(**model, body=Markup(body))


def render_pdf(model: dict[str, Any], base: Path) -> bytes:
    """report.pdf via Typst; figure paths resolve against ``base`` (reports/<profile>/)."""
    try:
        import typst
    except ImportError:
        raise fail(base / "report.pdf", "the typst package is not installed",
                   "pip install 'typst>=0.14' (a dependency of medlib; `make test` sets up .venv with it)") from None
    source = _TEMPLATES.joinpath("report.typ").read_bytes()
    try:
        return typst.compile(source, root=str(base), sys_inputs={"model": json.dumps(model)})
    except RuntimeError as exc:  # typst.TypstError: a template or figure problem, named in the message
        raise fail(base / "report.pdf", f"typst could not typeset the report ({str(exc).splitlines()[0]})",
                   "check medlib/report/templates/report.typ and the figures folder") from None
