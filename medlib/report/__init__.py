"""The generated report: ``make report`` (``python -m medlib.report --profile <p> [--reports-dir reports]``).

Reads ``reports/<p>/`` alone (manifest.json, metrics/*.json, predictions/*.npz, tables/*.csv, figures/*.png),
builds one data model (:mod:`.model`) and renders it through templates (:mod:`.render`, ``templates/``) into
``report.md``, ``report.html`` (self-contained, print stylesheet) and ``report.pdf`` (Typst), written as a group.
The fixed writing lives in ``text.yaml``, the bibliography in ``bibliography.yaml``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import MedlibError
from .model import build_model, fmt, fmt_diff
from .render import render_html, render_markdown, render_pdf, write_group

__all__ = ["build_model", "build_report", "write_report", "main", "fmt", "fmt_diff"]


def build_report(reports_dir: Path, profile_name: str, pdf: bool = False) -> tuple[str, ...]:
    """(markdown, html) — and the PDF bytes with ``pdf=True`` — for ``reports_dir/<profile>/``; writes nothing."""
    model = build_model(Path(reports_dir), profile_name)
    base = Path(reports_dir) / profile_name
    out: tuple = (render_markdown(model), render_html(model, base))
    return out + (render_pdf(model, base),) if pdf else out


def write_report(reports_dir: Path, profile_name: str) -> list[Path]:
    """Build the report and write report.md, report.html and report.pdf as a group; returns their paths."""
    md_text, html_text, pdf = build_report(reports_dir, profile_name, pdf=True)
    base = Path(reports_dir) / profile_name
    return write_group({base / "report.md": md_text.encode("utf-8"), base / "report.html": html_text.encode("utf-8"),
                        base / "report.pdf": pdf})


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
