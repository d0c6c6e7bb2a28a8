import json
from pathlib import Path

import numpy as np
import pytest

from medlib.io import write_files, write_json, write_npz, write_text, write_with


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
    import medlib.io as mio

    md, html = tmp_path / "report.md", tmp_path / "report.html"
    md.write_text("old md")
    html.write_text("old html")
    real_replace, calls = mio.os.replace, []

    def second_rename_fails(src, dst):
        calls.append(dst)
        if Path(dst) == html:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(mio.os, "replace", second_rename_fails)
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
