"""The generated report: ``make report`` (``python -m medlib.report --profile <p> [--reports-dir reports]``).

Reads ``reports/<p>/`` alone (manifest.json, metrics/*.json, predictions/*.npz, tables/*.csv, figures/*.png), builds
one data model (:mod:`.model`) and renders a paper of about ten pages and its appendix, a file of its own:
``report.md``, ``report.html`` (self-contained, print stylesheet), ``report.pdf`` and the Typst source it was
compiled from, ``report.typ``; the same four for ``report-appendix``. They are written as one set into ``report/``
(all old or all new, whenever the writer stops) and reachable as ``reports/<p>/report.*``; ``typst compile
report.typ`` there reproduces ``report.pdf`` (docs/report.md). The fixed writing lives in ``text.yaml``, the
bibliography in ``bibliography.yaml``, the PDFs' look in ``templates/report.typ``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import MedlibError
from ..files import write_set
from .formatting import fmt, fmt_diff
from .model import build_model
from .render import render_html, render_markdown, render_pdf, render_typst

__all__ = ["build_model", "build_report", "build_files", "write_report", "write_report_files", "main", "fmt",
           "fmt_diff", "FILES"]
REPORT_FOLDER = "report"  # reports/<profile>/report/ holds the current set; report.md etc. beside it link into it
FILES = ("report.md", "report.html", "report.pdf", "report.typ", "report-appendix.md", "report-appendix.html",
         "report-appendix.pdf", "report-appendix.typ")


def build_report(reports_dir: Path, profile_name: str, pdf: bool = False) -> tuple[str, ...]:
    """The paper's (markdown, html) — and its PDF bytes with ``pdf=True`` — for ``reports_dir/<profile>/``; writes
    nothing."""
    model = build_model(Path(reports_dir), profile_name)
    base = Path(reports_dir) / profile_name
    out: tuple = (render_markdown(model), render_html(model, base))
    return out + (render_pdf(model, base),) if pdf else out


def build_files(reports_dir: Path, profile_name: str) -> dict[str, str | bytes]:
    """Every file of the report (:data:`FILES`: the paper and the appendix as .md, .html, .pdf and .typ), name ->
    content; writes nothing."""
    model = build_model(Path(reports_dir), profile_name)
    base = Path(reports_dir) / profile_name
    files: dict[str, str | bytes] = {}
    for doc, stem in (("paper", "report"), ("appendix", "report-appendix")):
        files[f"{stem}.md"] = render_markdown(model, doc=doc)
        files[f"{stem}.html"] = render_html(model, base, doc)
        files[f"{stem}.pdf"] = render_pdf(model, base, doc)
        files[f"{stem}.typ"] = render_typst(model, doc)
    return {name: files[name] for name in FILES}


def write_report(reports_dir: Path, profile_name: str) -> list[Path]:
    """Build the report and write its files (:data:`FILES`) as one set; returns their paths."""
    return write_report_files(Path(reports_dir) / profile_name, build_files(reports_dir, profile_name))


def write_report_files(base: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write the report's files (name -> content) into ``base/report/`` as one set (:func:`medlib.files.write_set`:
    a reader, even after a ``kill -9``, finds the whole old or the whole new set), each also at ``base/<name>``
    (a link into report/). report/figures and report/tables link to ``base/figures`` and ``base/tables``, so the
    Markdown's relative links and the Typst sources' figure paths resolve from either place. Returns
    ``base/<name>`` for each file."""
    return write_set(Path(base) / REPORT_FOLDER, files, links={"figures": "../figures", "tables": "../tables"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.report", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full", help="profile name (reports/<profile>/)")
    ap.add_argument("--reports-dir", default="reports", help="folder holding <profile>/ (default: reports)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        paths = write_report(Path(args.reports_dir), args.profile)
    except MedlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {', '.join(str(p) for p in paths)} ({time.perf_counter() - t0:.1f} s)")
    return 0
