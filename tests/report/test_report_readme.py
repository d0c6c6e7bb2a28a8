"""`make readme-results`: the README's numbers come from a command, and the README names only files a user has."""

import re
from pathlib import Path

import pytest

from medlib.errors import MedlibError
from medlib.report.readme import BEGIN, END, main, update_readme
from test_report import _folder, _paired

REPO = Path(__file__).resolve().parents[2]


def test_results_block_is_rewritten_from_the_reports_folder(tmp_path):
    base = _folder(tmp_path)
    _paired(base)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nintro 0.999\n\n{BEGIN}\nold 0.111\n{END}\n\nafter\n")
    update_readme(readme, tmp_path, "smoke")
    text = readme.read_text()
    block = text.split(BEGIN, 1)[1].split(END, 1)[0]
    assert "old 0.111" not in text and text.startswith("# x\n\nintro 0.999\n\n") and text.endswith(f"{END}\n\nafter\n")
    assert "+0.229 [+0.199, +0.261]" in block  # the pooled paired difference
    assert "0.853 [0.824, 0.881]" in block and "| PneumoniaMNIST | real |" in block
    assert "label fine-tuning beats zero-shot" in block  # the abstract
    assert "SMOKE RUN" in block and "a8eac29" in block and "make readme-results" in block
    update_readme(readme, tmp_path, "smoke")
    assert readme.read_text() == text  # idempotent


def test_missing_markers_is_a_one_line_error(tmp_path, capsys):
    _folder(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# no block\n")
    with pytest.raises(MedlibError, match="results block"):
        update_readme(readme, tmp_path, "smoke")
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path), "--readme", str(readme)]) == 1
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert readme.read_text() == "# no block\n"


def test_readme_names_only_files_the_repository_has():
    text = (REPO / "README.md").read_text()
    assert BEGIN in text and END in text
    assert "make report" in text and "make data" in text and "python -m medlib.report" not in text
    outside = text.split(BEGIN, 1)[0] + text.split(END, 1)[1]
    assert not re.search(r"\b0\.\d{3}\b", outside)  # no hand-typed metric outside the generated block
    assert "../shared" not in text
    generated = ("reports/", "runs/", "data/", ".venv")
    for path in re.findall(r"`([A-Za-z0-9_.\-/]+\.(?:py|yaml|yml|ipynb|j2|typ|toml|sh|md)|\.ci/run)`", text):
        if path.startswith(generated) or "/" not in path and not (REPO / path).exists() and path.endswith(".md"):
            continue
        candidates = [REPO / path, REPO / "medlib" / path, REPO / "medlib" / "report" / path]  # as the README says
        assert any(c.exists() for c in candidates), path
