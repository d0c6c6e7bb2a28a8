"""The decode pool spreads a small set over every worker too (a pool of 2 given 48 images used one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medlib.data import decode
from medlib.data.decode import ImageFiles


def _files(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        p = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(p)
        out.append(p)
    return out


def test_a_small_set_is_spread_over_every_worker_in_several_chunks(tmp_path, monkeypatch):
    paths = _files(tmp_path / "img", 48)  # fewer than one CHUNK: before, one chunk went to one worker of two
    monkeypatch.setattr(decode, "PARALLEL_MIN", 0)
    done: list[int] = []
    two = ImageFiles(paths, 16, False, tmp_path / "index.csv", workers=2).decode(on_chunk=done.append)
    one = ImageFiles(paths, 16, False, tmp_path / "index.csv", workers=1).decode()
    np.testing.assert_array_equal(two, one)
    assert done == sorted(done) and done[-1] == 48  # a growing prefix, resumable at each step
    assert len(done) >= 2 * 2  # at least two chunks per worker (a busy core is evened out)
