"""``make readme-results``: rewrite the README's marked results block from ``reports/<profile>/``.

The block between ``<!-- results:begin -->`` and ``<!-- results:end -->`` is replaced by the paper's abstract and
its two headline tables (each method's main metric; the paired differences) from the report data model (the same
numbers as report.md), with the run it came from; nothing else in the file changes. The README therefore never
carries a number that no command regenerates.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import MedlibError, fail
from ..files import write_text
from .escape import from_data
from .model import build_model
from .render import _env

BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


def results_block(reports_dir: Path, profile: str) -> str:
    model = build_model(Path(reports_dir), profile)
    tpl = _env().from_string(  # every {{ value }} is shown as text (escaped for Markdown)
        '{% from "macros.md.j2" import table %}'
        "*{{ banner }}* {{ line }}\n\n"
        "{% for p in paragraphs %}{{ p }}\n\n{% endfor %}"
        "{% for t in tables %}{{ table(t) }}\n{% endfor %}")
    sha = ""
    base = Path(reports_dir) / profile
    try:
        import json

        man = json.loads((base / "manifest.json").read_text(encoding="utf-8"))
        git = man.get("git") or {}
        sha = f", commit `{from_data(str(git.get('commit', ''))[:7])}`{' (dirty)' if git.get('dirty') else ''}"
    except (OSError, ValueError):
        pass
    name = from_data(profile)
    line = (f"From `reports/{name}/`{sha}; regenerate with `make readme-results PROFILE={name}` after a run. "
            f"The full write-up is `reports/{name}/report.pdf` (appendix: `report-appendix.pdf`).")
    body = tpl.render(banner=model["banner"], line=line, tables=model["headline_tables"],
                      paragraphs=model["abstract"]["paragraphs"])
    while "\n\n\n" in body:
        body = body.replace("\n\n\n", "\n\n")
    return body.strip()


def update_readme(readme: Path, reports_dir: Path, profile: str) -> Path:
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if BEGIN not in text or END not in text or text.index(BEGIN) > text.index(END):
        raise fail(readme, f"no results block ({BEGIN} ... {END})",
                   "put the two marker lines where the results belong, then re-run make readme-results")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return write_text(readme, f"{head}{BEGIN}\n{results_block(reports_dir, profile)}\n{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.report.readme", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--reports-dir", default="reports")
    ap.add_argument("--readme", default="README.md")
    args = ap.parse_args(argv)
    try:
        path = update_readme(Path(args.readme), Path(args.reports_dir), args.profile)
    except MedlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"updated the results block of {path} from {args.reports_dir}/{args.profile}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
