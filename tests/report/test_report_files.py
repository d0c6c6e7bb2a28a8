"""The report's files (paper and appendix as .md, .html, .pdf, .typ) change as one set: a kill -9 at any step of the write leaves the whole
old report or the whole new one, and the next write clears what the killed one left."""

import re
import shutil

import medlib.report as rep
from medlib.report import build_files, write_report
from helpers import killed_write, seen_by_reader, steps_of
from test_report import _folder, _paired

NAMES = ("report.md", "report.html", "report.pdf", "report.typ", "report-appendix.md", "report-appendix.html",
         "report-appendix.pdf", "report-appendix.typ")


def _files(tmp_path):
    return build_files(tmp_path, "smoke")


def _bytes(files):
    return {n: v.encode() if isinstance(v, str) else v for n, v in files.items()}


def _image_links_resolve(base):
    md = (base / "report.md").read_text() + (base / "report-appendix.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert links
    for place in (base, base / "report", (base / "report.md").resolve().parent):  # the link, the folder, the file
        missing = [x for x in links if not (place / x).is_file()]
        assert not missing, (place, missing)


def test_report_killed_at_any_step_is_old_or_new_and_the_next_write_cleans_up(tmp_path, monkeypatch):
    base = _folder(tmp_path)
    old = _files(tmp_path)  # the report as the previous layout wrote it: loose files, leftovers of killed writes
    for n, v in _bytes(old).items():
        (base / n).write_bytes(v)
    (base / ".report.pdf.a8k2m1.tmp").write_bytes(b"%PDF- half")
    (base / ".report.pdf.a8k2m1.tmp.old").write_bytes(old["report.pdf"])
    _paired(base)
    new = _files(tmp_path)
    assert new["report.md"] != old["report.md"]
    calls = []
    monkeypatch.setattr(rep, "write_set", lambda folder, files, **kw: calls.append((folder, files, kw)) or [])
    rep.write_report_files(base, new)  # the exact call the report makes, replayed below under kill -9
    monkeypatch.undo()
    (folder, files, kw), = calls
    assert folder == base / "report" and set(files) == set(NAMES)
    template = tmp_path / "template"
    shutil.copytree(base, template, symlinks=True)
    steps = steps_of(folder, files, kw["links"], monkeypatch)
    assert "adopt swap" in steps and "swap" in steps
    for at in steps:
        shutil.rmtree(base)
        shutil.copytree(template, base, symlinks=True)
        killed_write(folder, files, kw["links"], at)
        seen = seen_by_reader(base, NAMES)
        assert seen in (_bytes(old), _bytes(new)), at  # never a mix of the two reports
        if (base / "report").exists():
            _image_links_resolve(base)
        paths = rep.write_report_files(base, new)  # the next write (as write_report makes it, rendered once)
        assert paths == [base / n for n in NAMES] and all(p.stat().st_size > 0 for p in paths)  # `test -s` works
        assert [p.name for p in base.iterdir() if p.name.startswith(".report")] == \
            [str((base / "report").readlink())], at  # the killed write's leftovers are gone
        _image_links_resolve(base)
    assert write_report(tmp_path, "smoke") == [base / n for n in NAMES]
    assert seen_by_reader(base, NAMES)["report.md"].decode() == new["report.md"]
    assert (base / "report.pdf").read_bytes()[:5] == b"%PDF-"
