"""Text from data shown as text: the one mapping per output format.

The report model's strings are plain text whose only markup is `code` in backticks (the model's own writing puts
them there). Data (class labels, dataset/model/method names, table cells, the manifest, file names) enters the
model through :func:`from_data` (in :mod:`.inputs`), which turns each backtick of data into :data:`DATA_TICK`, so
data can never open or close a code span. Each renderer then shows the model's text literally:

* Markdown (report.md, and through it report.html): :func:`markdown` escapes everything a Markdown renderer would
  read as markup (raw HTML, links, emphasis, headings, list markers, entities), applied to every ``{{ value }}`` of
  the Jinja templates (:func:`medlib.report.render._env`); :class:`LinkPolicy` then keeps in report.html only
  http(s) links, the report's own ``#anchors`` and embedded images.
* HTML page template: Jinja's HTML autoescape.
* Typst (report.typ -> report.pdf): :func:`typst` writes the text as Typst markup with every character Typst
  would read as markup escaped (``#``, ``*``, ``_``, ``$``, ``@``, ``<``, ``[``, comments, list and heading starts,
  dash and ellipsis shorthands), and each code span as a ``#raw("...")`` string; :func:`typst_string` is a Typst
  string literal.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pandas as pd
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup

DATA_TICK = "\ue000"  # a backtick that came from data: shown as "`", never a code-span delimiter

_LINE_BREAKS = re.compile(r"[\r\n\t\f\v\u2028\u2029]+")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_UNDERSCORES = re.compile(r"_+")
_LINK_BRACKET = re.compile(r"\](?=[(\[:])")  # ](url)  ][ref]  [ref]: url
_LEADING = re.compile(r"^(?:[#>=~[]|[-+*](?=\s|$)|\d+(?=[.)](?:\s|$)))")


def from_data(value: Any) -> Any:
    """``value`` read from data with every backtick of its strings (dict keys, list items, table cells and column
    names too) turned into :data:`DATA_TICK`; everything else as it is."""
    if isinstance(value, str):
        return value.replace("`", DATA_TICK)
    if isinstance(value, dict):
        return {from_data(k): from_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_data(v) for v in value]
    if isinstance(value, pd.DataFrame):
        out = value.rename(columns=lambda c: from_data(c) if isinstance(c, str) else c)
        for c in out.columns:
            if not (pd.api.types.is_numeric_dtype(out[c]) or pd.api.types.is_bool_dtype(out[c])):
                out[c] = out[c].map(from_data)
        return out
    return value


def markdown(text: Any, line_start: bool = True) -> Markup:
    """Plain text with `code` spans -> Markdown that any renderer (python-markdown, CommonMark, GitHub) shows as
    exactly that text: no raw HTML, link, image, emphasis, heading or list can come out of it. ``line_start``:
    the text may open a line (escape what would start a block there)."""
    parts = str(text).split("`")
    out = [_code(p) if i % 2 else _plain(p, first=line_start and i == 0) for i, p in enumerate(parts)]
    return Markup("".join(out))


def markdown_cell(text: Any) -> Markup:
    """:func:`markdown` for a table cell (inline only: no block starts there), ``|`` escaped."""
    return Markup(markdown(text, line_start=False).replace("|", "\\|"))


def markdown_code(text: Any) -> Markup:
    """``text`` as one code span, shown literally (a fence longer than any backtick run inside)."""
    return Markup(_code(str(text)))


def markdown_url(path: str) -> Markup:
    """A relative file path (or a data: URI the report made) as a link target: percent-encoded, no spaces or
    brackets to end the link early."""
    if path.startswith("data:"):
        return Markup(path)
    return Markup(quote(path, safe="/"))


def _plain(text: str, first: bool) -> str:
    t = _LINE_BREAKS.sub(" ", text).replace(DATA_TICK, "`")
    t = t.replace("\\", "\\\\").replace("`", "\\`").replace("*", "\\*")
    t = _ENTITY.sub("&amp;", t).replace("<", "&lt;")
    t = _UNDERSCORES.sub(lambda m: m.group() if _inside_word(t, m) else m.group().replace("_", "\\_"), t)
    t = _LINK_BRACKET.sub("\\\\]", t)
    if first:  # the value may open a line: no heading, quote, list item, rule, code fence or link definition
        t = _LEADING.sub(lambda m: _lead(m.group()), t, count=1)
    return t


def _lead(s: str) -> str:
    if s.isdigit():
        return s + "\\"  # 1. -> 1\.
    return {"=": "&#61;", "~": "&#126;"}.get(s, "\\" + s)


def _inside_word(t: str, m: re.Match) -> bool:
    """An underscore run between two letters/digits (snake_case) is never emphasis: kept as it is, readable."""
    a, z = m.start() - 1, m.end()
    return a >= 0 and z < len(t) and t[a].isalnum() and t[z].isalnum()


def _code(text: str) -> str:
    t = _LINE_BREAKS.sub(" ", text).replace(DATA_TICK, "`")
    if not t:
        return ""
    fence = "`" * (max((len(r) for r in re.findall(r"`+", t)), default=0) + 1)
    pad = " " if t.startswith(("`", " ")) or t.endswith(("`", " ")) else ""
    return f"{fence}{pad}{t}{pad}{fence}"


# ---- Typst: report.typ and report-appendix.typ ------------------------------------------------------------------

_TYPST_ALWAYS = set("\\#*_$@<>[]`~")
_TYPST_BREAK = "\u200b"  # a zero-width space: a table cell may break a long identifier there


def typst(text: Any, cell: bool = False) -> str:
    """Plain text with `code` spans -> Typst markup that typesets as exactly that text: nothing in it is read as
    markup, code, math, a label, a reference or a comment. ``cell``: a long identifier may break after ``_ / :``."""
    parts = _LINE_BREAKS.sub(" ", str(text)).split("`")
    out = []
    for i, part in enumerate(parts):
        if i % 2:
            if part:
                out.append(f"#raw({typst_string(part.replace(DATA_TICK, '`'))})")
            continue
        out.append(_typst_plain(part.replace(DATA_TICK, "`"), start=i == 0, cell=cell))
    return "".join(out)


def typst_string(text: Any) -> str:
    """A Typst string literal holding ``text`` (for code: file names, raw text)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _typst_plain(t: str, start: bool, cell: bool) -> str:
    lead = len(t) - len(t.lstrip()) if start else -1  # where a line of markup would start
    enum = re.match(r"\s*\d+\.(?=\s|$)", t) if start else None  # "1. " opening a line: a numbered list
    out = []
    for j, ch in enumerate(t):
        nxt, prev = t[j + 1: j + 2], t[j - 1: j] if j else ""
        esc = (ch in _TYPST_ALWAYS
               or (ch == "-" and (j == lead or nxt in ("-", "?") or nxt.isdigit() or prev == "-"))  # list, dashes, minus
               or (ch == "/" and (j == lead or nxt in ("/", "*") or prev == "/"))  # term list, comments
               or (ch in "=+" and j == lead)  # heading, numbered list
               or (ch == "." and (nxt == "." or prev == "." or (enum is not None and j == enum.end() - 1))))
        out.append(("\\" + ch) if esc else ch)
        if cell and ch in "_/:":
            out.append(_TYPST_BREAK)
    return "".join(out)


# ---- report.html: the links python-markdown may emit -------------------------------------------------------------

_IMAGE_DATA = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/=]*\Z")


def allowed_url(tag: str, attr: str, url: str) -> bool:
    """report.html keeps only http(s) links, its own #anchors, and images embedded as data (self-contained)."""
    if tag == "img" and attr == "src":
        return bool(_IMAGE_DATA.match(url))
    return attr == "href" and (url.startswith("#") or bool(re.match(r"https?://", url, re.I)))


class _LinkTree(Treeprocessor):
    def run(self, root):
        for el in root.iter():
            for attr in ("href", "src"):
                url = el.get(attr)
                if url is not None and not allowed_url(el.tag, attr, url.strip()):
                    del el.attrib[attr]


class LinkPolicy(Extension):
    """python-markdown extension applying :func:`allowed_url` to every element it builds."""

    def extendMarkdown(self, md):
        md.treeprocessors.register(_LinkTree(md), "medlib_link_policy", 15)  # after the inline links exist
