"""Text that comes from data (class labels, dataset/model/method names, table cells, the manifest) is shown as
text in the report's Markdown, HTML, PDF and Typst files: never markup, never a script or a link it did not ask for."""

import json
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from medlib.config import load_profile
from medlib.report import write_report
from medlib.outputs.records import save_run, save_table

pypdf = pytest.importorskip("pypdf")

# Two class labels carrying HTML, Markdown and Typst markup.
LABELS = ["<script>alert(1)</script><b>bold</b>*strong*",
          "[x](javascript:alert(3)) #sys.exit() $x$ @ref <label>"]
DATASET = "evil<i>set</i>"
METHOD = "zero-shot"
MODEL = "tiny"
DISPLAY = "<img src=x onerror=alert(2)> `tick` [y](javascript:alert(4))"
CELL = "<iframe src=https://example.org></iframe> _under_ &amp; | pipe"
OWN_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "strong", "em", "blockquote",
            "ul", "ol", "li", "table", "thead", "tbody", "tr", "th", "td", "a", "code", "figure", "figcaption", "img",
            "hr", "wbr", "div"}


def _reports(tmp_path):
    """A smoke reports folder whose data carry markup: one two-class dataset, evaluated twice (zero-shot, label FT)."""
    prof = load_profile("smoke", {"reports_dir": str(tmp_path)})
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    for nb, method in (("02_zero_shot_baseline", METHOD), ("04_label_finetune", "label-ft")):
        score = rng.dirichlet([1, 1], len(y))
        save_run(prof, notebook=nb, dataset=DATASET, model=MODEL, method=method, task="multiclass", split="test",
                 y_true=y, y_score=score, class_names=LABELS, n_boot=20)
    save_table(prof, "01_class_counts", pd.DataFrame({"dataset": [DATASET] * 2, "task": ["multiclass"] * 2,
                                                      "split": ["train"] * 2, "class": LABELS, "n": [30, 12]}))
    save_table(prof, "07_notes", pd.DataFrame({"caption": [CELL, LABELS[1]], "value": [0.5, 0.25]}))
    base = prof.reports_path
    manifest = {"profile": "smoke", "kind": "smoke", "command": "./run_all.sh --profile smoke <b>x</b>",
                "profile_config": {"name": "smoke", "kind": "smoke",
                                   "models": [{"name": MODEL, "arch": "medclip-tiny", "role": "clip",
                                               "display": DISPLAY}]}}
    (base / "manifest.json").write_text(json.dumps(manifest))
    return base


class _Html(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text, self.style = [], [], [], []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.style if self._in_style else self.text).append(data)


def _squash(s):
    return re.sub(r"[\s\u200b]+", "", s.replace("\u2212", "-"))


def test_markup_in_data_is_shown_as_text_in_every_format(tmp_path):
    base = _reports(tmp_path)
    write_report(tmp_path, "smoke")

    text = ""
    for name in ("report.html", "report-appendix.html"):
        page = _Html()
        page.feed((base / name).read_text(encoding="utf-8"))
        assert set(page.tags) <= OWN_TAGS, set(page.tags) - OWN_TAGS  # no script, b, i, label, iframe element
        for tag, key, value in page.attrs:
            assert not key.startswith("on"), (tag, key, value)
            if key in ("href", "src"):
                ok = (re.match(r"https?://|#", value) if key == "href"
                      else tag == "img" and value.startswith("data:image/png;base64,"))
                assert ok, (tag, key, value[:80])  # no javascript: URL; figures embedded; no external loads
        assert not any(re.search(r"url\(|@import", s) for s in page.style)
        ids = {v for _, k, v in page.attrs if k == "id"}
        anchors = [v[1:] for _, k, v in page.attrs if k == "href" and v.startswith("#")]
        assert anchors and set(anchors) <= ids, set(anchors) - ids  # the contents' links reach their headings
        text += "".join(page.text)
    for s in (*LABELS, DATASET, DISPLAY, "_under_ &amp; | pipe", "<b>x</b>"):
        assert s in text, s  # ... and each shows as the literal text it is

    inline = ""
    for name in ("report.md", "report-appendix.md"):
        md = (base / name).read_text(encoding="utf-8")
        mdit = pytest.importorskip("markdown_it")
        tokens = mdit.MarkdownIt("commonmark").enable("table").parse(md)  # raw HTML allowed, as on most viewers
        flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
        assert not [t.content for t in flat if t.type.startswith("html")]  # no raw HTML anywhere in the Markdown
        links = [t.attrGet("href") for t in flat if t.type == "link_open"]
        assert links and all(h.startswith("#") for h in links), links  # only the contents' own anchors
        inline += "".join(t.content for t in flat if t.type in ("text", "code_inline"))
    for s in (*LABELS, DATASET, "_under_ &amp; | pipe"):
        assert s in inline, s

    pdf_text = _squash(" ".join(p.extract_text() or "" for name in ("report.pdf", "report-appendix.pdf")
                                for p in pypdf.PdfReader(str(base / name)).pages))
    for s in (*LABELS, DATASET, CELL, DISPLAY):
        assert _squash(s) in pdf_text, s
    typ = (base / "report.typ").read_text() + (base / "report-appendix.typ").read_text()
    assert not re.search(r"(?<!\\)#sys\.exit|(?<!\\)\$x", typ)  # the Typst sources carry data only escaped


NASTY = ["<script>alert(1)</script>", "[x](javascript:alert(3))", "![i](http://example.org/i.png)", "<b>bold</b>",
         "*strong* _em_ __b__ snake_case_name", "# heading", "> quote", "- item", "+ item", "1. item", "2) item",
         "=== ---", "~~~ fence", "```py", "a\\`b\\", "&amp; &#60; &lt;", "<http://example.org>", "[r]: https://e.x",
         "[r][x] ]( ](", "a | b", "line\nbreak", "#sys.exit() $x$ @ref <label>", "{attr} !x"]


@pytest.mark.parametrize("context", ["{}", "x {} y", "- {}", "# {}", "| h |\n|---|\n| {} |", "> **{}**"])
def test_markdown_escape_shows_any_text_literally_wherever_it_stands(context):
    """A value put anywhere a template puts one renders (python-markdown, and a CommonMark renderer) to exactly
    its text: no element, link or entity of its own."""
    import markdown

    from medlib.report.escape import from_data, markdown as md_text, markdown_cell

    esc = markdown_cell if context.startswith("|") else md_text
    for s in NASTY:
        source = context.format(esc(from_data(s)))  # data enters the model through from_data
        want = " ".join(s.split())
        page = _Html()
        page.feed(markdown.markdown(source, extensions=["tables", "fenced_code", "sane_lists", "md_in_html", "toc"]))
        assert set(page.tags) <= {"p", "ul", "li", "h1", "table", "thead", "tbody", "tr", "th", "td", "blockquote",
                                  "strong"}, (s, source, page.tags)
        assert want in " ".join("".join(page.text).split()), (s, source)
        mdit = pytest.importorskip("markdown_it")
        tokens = mdit.MarkdownIt("commonmark").enable("table").parse(source)
        flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
        assert not [t for t in flat if t.type.startswith(("html", "link", "image", "em_", "fence", "code_block"))]
        assert want in " ".join("".join(t.content for t in flat if t.type in ("text", "softbreak")).split()), source


def test_code_spans_keep_data_backticks_literal():
    import markdown

    from medlib.report.escape import from_data, markdown as md_text

    model_text = f"run `{from_data('a`b')}` of {from_data('x`y')}"  # the model's own code span around data
    page = _Html()
    page.feed(markdown.markdown(md_text(model_text)))
    assert page.tags == ["p", "code"] and "".join(page.text) == "run a`b of x`y"


def test_typst_escape_shows_any_text_literally():
    """Every nasty string, written into Typst markup by the report's escape, typesets as exactly its text."""
    import io

    import typst

    from medlib.report.escape import from_data, typst as ty

    more = ["a -- b --- c ... d -1 -? x/*y*/ // z", "/ term: x", "= h", "12. x", "\\", '#raw("x")', "x <y> @z"]
    src = "#set page(width: 30cm, height: auto)\n" + "\n\n".join(ty(from_data(s)) for s in NASTY + more)
    text = " ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(typst.compile(src.encode()))).pages)
    flat = _squash(text.replace("\u2019", "'").replace("\u201c", '"').replace("\u201d", '"'))
    for s in NASTY + more:
        assert _squash(s) in flat, s
