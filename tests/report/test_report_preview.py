"""`make report-preview`: the paper's first page as a PNG and its forest plot, for the README."""

from medlib.report.preview import FIGURE, main

PNG = b"\x89PNG\r\n\x1a\n"


def _folder(tmp_path, figure: bool):
    base = tmp_path / "reports" / "smoke"
    (base / "figures").mkdir(parents=True)
    (base / "report.typ").write_text("= A title\n\nFirst page.\n#pagebreak()\nSecond page.\n")
    if figure:
        (base / "figures" / f"{FIGURE}.png").write_bytes(PNG + b"forest")
    return tmp_path / "reports"


def test_preview_writes_the_first_page_and_copies_the_forest_plot(tmp_path):
    reports = _folder(tmp_path, figure=True)
    out, fig = tmp_path / "docs" / "first.png", tmp_path / "docs" / "figure.png"
    assert main(["--reports-dir", str(reports), "--out", str(out), "--figure", str(fig)]) == 0
    assert out.read_bytes().startswith(PNG) and len(out.read_bytes()) > 1000  # a rendered page, not a stub
    assert fig.read_bytes() == PNG + b"forest"


def test_preview_without_the_forest_plot_is_one_line_naming_it(tmp_path, capsys):
    reports = _folder(tmp_path, figure=False)
    fig = tmp_path / "docs" / "figure.png"
    assert main(["--reports-dir", str(reports), "--out", str(tmp_path / "first.png"), "--figure", str(fig)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{FIGURE}.png" in err[0] and "notebook 06" in err[0]
    assert not fig.exists()
