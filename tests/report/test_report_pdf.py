"""The typeset report: report.pdf exists, has a sane page count, and carries every number of the abstract."""

import json
import re

import pytest

from medlib.report import write_report
from test_report import _folder, _paired  # the hand-made reports folder of test_report.py

pypdf = pytest.importorskip("pypdf")


def _text(path):
    return " ".join((page.extract_text() or "") for page in pypdf.PdfReader(str(path)).pages)


def test_pdf_pages_and_every_abstract_number(tmp_path):
    base = _folder(tmp_path)
    _paired(base)
    write_report(tmp_path, "smoke")
    pdf = base / "report.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-"
    pages = len(pypdf.PdfReader(str(pdf)).pages)
    assert 3 <= pages <= 12, pages
    md = (base / "report.md").read_text()
    abstract = md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0]
    numbers = set(re.findall(r"[+-]?\d+\.\d+|\b\d{2,}\b", abstract))
    assert {"+0.229", "+0.199", "+0.261", "-0.012", "-0.057", "+0.030"} <= numbers
    text = re.sub(r"\s+", " ", _text(pdf)).replace("\u2212", "-").replace("\u200b", "")
    missing = sorted(n for n in numbers if n not in text)
    assert not missing, missing
    for word in ("Abstract", "Introduction", "Limitations", "References", "GENERATED", "SMOKE RUN"):
        assert word in text, word
    assert "Figure 1" in text and "Table 1" in text


def test_pdf_tables_wrap_long_cells_instead_of_running_off_the_page(tmp_path):
    """A table with very long cells still fits: every text line of the PDF lies inside the page."""
    base = _folder(tmp_path)
    import pandas as pd

    long = "__".join(["02_zero_shot_baseline", "pneumoniamnist_at_224_pixels", "a_model_with_a_very_long_name"] * 3)
    pd.DataFrame({"run": [long] * 3, "a": [1.0, 2.0, 3.0], "note": ["x " * 80] * 3}).to_csv(
        base / "tables" / "07_long_cells.csv", index=False)
    write_report(tmp_path, "smoke")
    for name in ("report.pdf", "report-appendix.pdf"):  # the long table is in the appendix
        for page in pypdf.PdfReader(str(base / name)).pages:
            width = float(page.mediabox.width)  # a wide table goes on a landscape page
            ends = []

            def visit(text, cm, tm, font, size):
                if text.strip():  # a lower bound of the run's width: 0.4 em per character
                    ends.append(tm[4] * cm[0] + cm[4] + 0.4 * size * abs(tm[0] * cm[0] or 1) * len(text.strip()))

            page.extract_text(visitor_text=visit)
            assert not ends or max(ends) < width, name  # no line runs off the page


def test_every_page_of_a_rehearsal_pdf_says_rehearsal(tmp_path):
    base = _folder(tmp_path, smoke=False).rename(tmp_path / "full-rehearsal")
    manifest = json.loads((base / "manifest.json").read_text())
    (base / "manifest.json").write_text(json.dumps({**manifest, "kind": "rehearsal"}))  # as the rehearsal's runner writes
    write_report(tmp_path, "full-rehearsal")
    pages = [re.sub(r"\s+", " ", p.extract_text() or "") for name in ("report.pdf", "report-appendix.pdf")
             for p in pypdf.PdfReader(str(base / name)).pages]
    assert len(pages) >= 3
    assert all("REHEARSAL" in p for p in pages), [i for i, p in enumerate(pages) if "REHEARSAL" not in p]
    assert "REHEARSAL - not results" in pages[0] or "REHEARSAL — not results" in pages[0]
