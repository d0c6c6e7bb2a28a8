"""The README a newcomer reads in five minutes: short above its first docs/ link, the seven notebooks named as they
are, no number a smoke run does not reproduce, every docs/ page and make target it names present."""

import re
from pathlib import Path

from conftest import REPO

TEXT = (REPO / "README.md").read_text()


def test_the_readme_is_short_above_its_first_docs_link():
    first = re.search(r"\]\(docs/[\w./-]+\.md\)", TEXT)
    assert first, "the README links no docs/ page"
    assert len(TEXT[:first.start()].split()) < 1200


def test_the_readme_names_the_seven_notebooks_as_they_are():
    stems = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert len(stems) == 7
    for stem in stems:
        assert f"`{stem}`" in TEXT
    assert not re.search(r"\bsix (numbered )?notebooks\b|01_(…|\.\.\.)\W+to\W+06_", TEXT)


def test_the_readme_quotes_no_result_numbers():
    assert not re.search(r"\b0\.\d{3}\b|[+-]0\.\d{2,}", TEXT)
    assert "results:begin" not in TEXT


def test_every_docs_page_and_make_target_the_readme_names_exists():
    for page in re.findall(r"\((docs/[\w./-]+\.md)\)", TEXT):
        assert (REPO / page).is_file(), page
    makefile = (REPO / "Makefile").read_text()
    for target in set(re.findall(r"\bmake ([a-z][\w-]*)", TEXT)):
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), target
    assert (REPO / "medlib" / "config" / "profiles" / "examples" / "csv_pairs.yaml").is_file()
