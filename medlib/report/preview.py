"""``make report-preview``: the first page of a written paper as a PNG (``docs/report-first-page.png`` for the
README), rendered by Typst from the ``report.typ`` beside the PDF (no PDF renderer needed), and the paper's forest
plot of paired differences copied beside it (``--figure``, ``docs/report-figure.png``).

    python -m medlib.report.preview [--profile smoke] [--reports-dir reports] [--out docs/report-first-page.png]
                                    [--figure docs/report-figure.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import MedlibError, fail
from ..files import write_bytes


def first_page_png(source: Path, ppi: float = 110.0) -> bytes:
    """The first page of the Typst file ``source`` as PNG bytes (figures resolve beside it)."""
    import typst

    source = Path(source)
    if not source.is_file():
        raise fail(source, "no written report here", "run `make report PROFILE=<profile>` first")
    folder = source.resolve().parent
    try:
        pages = typst.compile(str(folder / source.name), root=str(folder), format="png", ppi=ppi)
    except RuntimeError as exc:
        raise fail(source, f"typst could not render it ({str(exc).splitlines()[0]})",
                   "rewrite it with `make report`") from None
    return pages[0] if isinstance(pages, list) else pages


FIGURE = "06_paired_differences"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.report.preview", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--reports-dir", default="reports")
    ap.add_argument("--out", default="docs/report-first-page.png")
    ap.add_argument("--figure", default=None, help="also copy figures/%s.png here" % FIGURE)
    ap.add_argument("--ppi", type=float, default=110.0, help="pixels per inch (default 110)")
    args = ap.parse_args(argv)
    try:
        png = first_page_png(Path(args.reports_dir) / args.profile / "report.typ", args.ppi)
        out = write_bytes(Path(args.out), png)
        if args.figure:
            figure = Path(args.reports_dir) / args.profile / "figures" / f"{FIGURE}.png"
            if not figure.is_file():
                raise fail(figure, "no forest plot here", "run notebook 06 of the profile first")
            print(f"wrote {write_bytes(Path(args.figure), figure.read_bytes())} (from {figure})")
    except MedlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} (first page of {args.reports_dir}/{args.profile}/report.pdf)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
