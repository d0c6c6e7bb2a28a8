"""The generated report: ``make report`` (``python -m medlib.report --profile <p> [--reports-dir reports]``).

Reads ``reports/<p>/`` alone (manifest.json, metrics/*.json, predictions/*.npz, tables/*.csv, figures/*.png),
builds one data model (:mod:`.model`) and renders it through templates (:mod:`.render`, ``templates/``) into
``report.md``, ``report.html`` (self-contained, print stylesheet) and ``report.pdf`` (Typst), written as one set
into ``report/`` (all old or all new, whenever the writer stops) and reachable as ``reports/<p>/report.*``.
The fixed writing lives in ``text.yaml``, the bibliography in ``bibliography.yaml``.
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
from .render import render_html, render_markdown, render_pdf

__all__ = ["build_model", "build_report", "write_report", "write_report_files", "main", "fmt", "fmt_diff"]
REPORT_FOLDER = "report"  # reports/<profile>/report/ holds the current set; report.md etc. beside it link into it


def build_report(reports_dir: Path, profile_name: str, pdf: bool = False) -> tuple[str, ...]:
    """(markdown, html) — and the PDF bytes with ``pdf=True`` — for ``reports_dir/<profile>/``; writes nothing."""
    model = build_model(Path(reports_dir), profile_name)
    base = Path(reports_dir) / profile_name
    out: tuple = (render_markdown(model), render_html(model, base))
    return out + (render_pdf(model, base),) if pdf else out


def write_report(reports_dir: Path, profile_name: str) -> list[Path]:
    """Build the report and write report.md, report.html and report.pdf as one set; returns their paths."""
    md_text, html_text, pdf = build_report(reports_dir, profile_name, pdf=True)
    return write_report_files(Path(reports_dir) / profile_name,
                              {"report.md": md_text, "report.html": html_text, "report.pdf": pdf})


def write_report_files(base: Path, files: dict[str, str | bytes]) -> list[Path]:
    """Write the report's files (name -> content) into ``base/report/`` as one set (:func:`medlib.files.write_set`:
    a reader, even after a ``kill -9``, finds the whole old or the whole new set), each also at ``base/<name>``
    (a link into report/). report/figures links to ``base/figures``, so the Markdown's relative figure links
    resolve from either place. Returns ``base/<name>`` for each file."""
    return write_set(Path(base) / REPORT_FOLDER, files, links={"figures": "../figures"})


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
