import json

import numpy as np
import pytest

from medlib.io import write_json, write_npz, write_text, write_with


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
