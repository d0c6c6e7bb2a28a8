import json
import os
from pathlib import Path

import numpy as np
import pytest

from medlib.errors import MedlibError
from medlib.files import write_files, write_json, write_npz, write_set, write_text, write_with

from helpers import killed_write, seen_by_reader, steps_of


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    target = tmp_path / "sub" / "m.json"
    write_json(target, {"a": np.float32(0.5), "b": np.arange(3)})
    assert json.loads(target.read_text()) == {"a": 0.5, "b": [0, 1, 2]}
    write_text(target, "{}")
    assert target.read_text() == "{}"
    assert [p.name for p in target.parent.iterdir()] == ["m.json"]


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "ckpt.bin"
    target.write_bytes(b"good")

    def broken(path):
        path.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.bin"]


def test_npz_keeps_its_name(tmp_path):
    target = tmp_path / "pred.npz"
    write_npz(target, y=np.arange(4))
    assert np.load(target)["y"].tolist() == [0, 1, 2, 3]


def test_write_files_changes_all_or_none_when_a_rename_fails(tmp_path, monkeypatch):
    import medlib.files as mio

    md, html = tmp_path / "report.md", tmp_path / "report.html"
    md.write_text("old md")
    html.write_text("old html")
    real_replace, calls = mio.atomic.os.replace, []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if Path(dst) == html:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(mio.atomic.os, "replace", second_rename_fails)
    with pytest.raises(OSError):
        write_files({md: "new md", html: "new html"})
    assert md.read_text() == "old md" and html.read_text() == "old html"  # the first file was put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.md"]


def test_write_files_failing_while_writing_touches_nothing(tmp_path):
    md = tmp_path / "report.md"
    md.write_text("old md")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with pytest.raises(OSError):
        write_files({md: "new md", blocker / "report.html": b"new html"})
    assert md.read_text() == "old md"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder", "report.md"]


def test_write_files_writes_every_file(tmp_path):
    paths = write_files({tmp_path / "a.md": "A", tmp_path / "sub" / "b.bin": b"\x00B"})
    assert [p.read_bytes() for p in paths] == [b"A", b"\x00B"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.md", "b.bin", "sub"]


# ---- write_set: a set of files that changes as one, even under kill -9 -------------------------------------------

OLD = {"report.md": "old md", "report.html": "old html", "report.pdf": b"old pdf"}
NEW = {"report.md": "new md", "report.html": "new html", "report.pdf": b"new pdf \x00"}
LINKS = {"figures": "../figures"}


def _as_bytes(files):
    return {n: v.encode() if isinstance(v, str) else v for n, v in files.items()}


def _start(base, state):
    """reports/<p>/ in one of three states: no report yet, a set written by write_set, loose files of the old
    layout (with the temporary and backup files its interrupted writes left)."""
    (base / "figures").mkdir(parents=True)
    (base / "figures" / "f.png").write_bytes(b"png")
    if state == "set":
        write_set(base / "report", OLD, links=LINKS)
    elif state == "loose":
        for n, v in _as_bytes(OLD).items():
            (base / n).write_bytes(v)
        (base / ".report.pdf.k2j3h4.tmp").write_bytes(b"x" * 1000)
        (base / ".report.pdf.k2j3h4.tmp.old").write_bytes(b"y" * 1000)
    return {n: None for n in OLD} if state == "none" else _as_bytes(OLD)


@pytest.mark.parametrize("state", ["none", "set", "loose"])
def test_write_set_killed_at_any_step_leaves_old_or_new_and_the_next_write_cleans_up(tmp_path, state,
                                                                                    monkeypatch):
    _start(tmp_path / "probe", state)  # the steps depend on the starting state: list them on a copy of it
    steps = steps_of(tmp_path / "probe" / "report", NEW, LINKS, monkeypatch)
    assert steps[0] == "clean" and "swap" in steps and steps[-1] == "clean old"
    assert ("adopt swap" in steps) == (state == "loose")
    for i, at in enumerate(steps):
        base = tmp_path / f"k{i}"
        old = _start(base, state)
        killed_write(base / "report", NEW, LINKS, at)
        seen = seen_by_reader(base, NEW)
        assert seen in (old, _as_bytes(NEW)), (at, seen)  # never a mix
        assert seen == (_as_bytes(NEW) if steps.index(at) >= steps.index("swap") else old), at
        paths = write_set(base / "report", {"report.md": "next", "report.html": "next", "report.pdf": b"next"},
                          links=LINKS)
        assert [p.read_bytes() for p in paths] == [b"next"] * 3
        hidden = [p.name for p in base.iterdir() if p.name.startswith(".")]
        assert hidden == [os.readlink(base / "report")], (at, hidden)  # every leftover is gone
        assert sorted(p.name for p in base.iterdir() if not p.name.startswith(".")) == \
            ["figures", "report", "report.html", "report.md", "report.pdf"]
        assert (base / "report" / "figures" / "f.png").read_bytes() == b"png"  # relative figure paths resolve


def test_write_set_replaces_links_only_and_drops_a_file_the_new_set_lacks(tmp_path):
    base = tmp_path / "p"
    _start(base, "set")
    extra = write_set(base / "report", {**OLD, "appendix.md": "A"}, links=LINKS)
    assert (base / "appendix.md").read_text() == "A" and len(extra) == 4
    for n in extra:
        assert n.is_symlink() and os.readlink(n) == f"report/{n.name}"  # relative: the folder can move
    write_set(base / "report", NEW, links=LINKS)
    assert not (base / "appendix.md").is_symlink() and not (base / "appendix.md").exists()
    moved = tmp_path / "moved"
    base.rename(moved)
    assert seen_by_reader(moved, NEW) == _as_bytes(NEW)


def test_write_set_error_while_writing_keeps_the_old_set(tmp_path):
    base = tmp_path / "p"
    old = _start(base, "set")
    with pytest.raises(TypeError):
        write_set(base / "report", {"report.md": "new", "report.html": 12345}, links=LINKS)
    assert seen_by_reader(base, OLD) == old
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == [os.readlink(base / "report")]
    with pytest.raises(MedlibError, match="real file or folder"):
        (tmp_path / "q" / "report").mkdir(parents=True)
        write_set(tmp_path / "q" / "report", NEW)


def test_write_set_keeps_a_regular_file_written_over_its_link_until_the_swap(tmp_path, monkeypatch):
    """A writer that replaced an exposed link with a regular file (the view a reader has then: that file and the
    set's other files) is adopted: at every step a reader sees that view or the new set."""
    import medlib.files as mio

    base = tmp_path / "p"
    _start(base, "set")
    (base / "report.md").unlink()
    (base / "report.md").write_text("edited md")
    before = {**_as_bytes(OLD), "report.md": b"edited md"}
    views = []

    def look(step):
        seen = {n: (base / n).read_bytes() if (base / n).is_file() else None for n in NEW}
        assert seen in (before, _as_bytes(NEW)), (step, seen)
        views.append(step)

    monkeypatch.setattr(mio.sets, "_step", look)
    write_set(base / "report", NEW, links=LINKS)
    assert "adopt swap" in views and seen_by_reader(base, NEW) == _as_bytes(NEW)
    assert [p.name for p in base.iterdir() if p.name.startswith(".")] == [os.readlink(base / "report")]
