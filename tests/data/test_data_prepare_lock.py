"""Two preparations of the same dataset at once (two notebooks, two run_all.sh): the second waits for the first,
saying so, and then reads what the first prepared -- it neither decodes the images again nor writes into the
first one's ``.partial`` file; after a timeout it stops with a one-line error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import medlib.data.cache as cache
from medlib.config import DatasetSpec, Profile
from medlib.data import get_dataset, prepare_lock
from medlib.errors import MedlibError

ROOT = Path(__file__).resolve().parents[2]
NIH = dict(name="chestxray14", source="chestxray14", path="chestxray14", size=28, synthetic="always", fixture_n=300)

# One preparation in its own process. Every decoded chunk is counted in <count file>; with a <gate file> given,
# the preparation stops before decoding chunk <gate after> + 1 until the gate file exists (so the test can start
# a second one while the first is surely in the middle of decoding). Prints a checksum of every prepared split.
PREPARE = r"""
import json, sys, time
from pathlib import Path
import numpy as np
from medlib.config import DatasetSpec, Profile
from medlib.data import decode, get_dataset, store
data_dir, count, gate, spec = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
gate_after = int(sys.argv[5])
decode.CHUNK = 16
store.COMMIT_EVERY_S = 0.0  # record progress after every chunk
real = decode._decode_chunk
calls = [0]
def counting(job):
    calls[0] += 1
    if gate and calls[0] > gate_after:
        end = time.monotonic() + 120
        while not Path(gate).exists() and time.monotonic() < end:
            time.sleep(0.05)
    out = real(job)
    with open(count, "a") as fh:
        fh.write(f"{len(job[0])}\n")
    return out
decode._decode_chunk = counting
p = Profile(name="t", kind="smoke", seed=0, data_dir=data_dir, data_workers=1, datasets=[DatasetSpec(**spec)])
b = get_dataset(p, spec["name"])
print("CHECKSUMS " + json.dumps({k: [len(s), int(np.asarray(s.images, np.int64).sum())] for k, s in b.splits.items()}))
"""


def _start(data_dir: Path, count: Path, gate: str, out: Path, gate_after: int = 0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-c", PREPARE, str(data_dir), str(count), gate, json.dumps(NIH),
                             str(gate_after)],
                            stdout=out.open("w"), stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))


def _wait_for(cond, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.05)


def _decoded(count: Path) -> int:
    return sum(int(x) for x in count.read_text().split()) if count.exists() else 0


def _checksums(out: Path) -> dict:
    lines = [ln for ln in out.read_text().splitlines() if ln.startswith("CHECKSUMS ")]
    assert lines, out.read_text()
    return json.loads(lines[-1].split(" ", 1)[1])


def test_a_second_preparation_waits_for_the_first_and_reads_its_splits(tmp_path):
    data = tmp_path / "data"
    gate = tmp_path / "gate"
    a_count, b_count, a_out, b_out = (tmp_path / n for n in ("a.count", "b.count", "a.out", "b.out"))
    a = _start(data, a_count, str(gate), a_out, gate_after=1)
    try:
        _wait_for(lambda: a_count.exists() or a.poll() is not None)  # A holds the lock and is decoding
        assert a.poll() is None, a_out.read_text()
        b = _start(data, b_count, "", b_out)
        try:
            # B either says it is waiting (with the lock) or starts decoding / finishes on its own (without one)
            _wait_for(lambda: "waiting for another preparation" in b_out.read_text() or b_count.exists()
                      or b.poll() is not None)
            gate.touch()  # let A finish
            assert a.wait(180) == 0, a_out.read_text()
            assert b.wait(180) == 0, b_out.read_text()
        finally:
            if b.poll() is None:
                b.kill()
    finally:
        gate.touch()
        if a.poll() is None:
            a.kill()

    folder = cache.paths(Profile(name="t", kind="smoke", seed=0, data_dir=str(data), datasets=[DatasetSpec(**NIH)]),
                         "chestxray14")[0]
    waiting = [ln for ln in b_out.read_text().splitlines() if "waiting for another preparation" in ln]
    assert len(waiting) == 1 and str(folder) in waiting[0] and f"PID {a.pid}" in waiting[0]
    assert _decoded(b_count) == 0  # B decoded nothing: it read A's prepared splits
    sums_a, sums_b = _checksums(a_out), _checksums(b_out)
    total = sum(n for n, _ in sums_a.values())
    assert _decoded(a_count) == total  # A decoded every image once (B did not take over part of its .partial)
    assert sums_b == sums_a
    # ...and A's splits equal an undisturbed preparation's
    fresh = get_dataset(Profile(name="t", kind="smoke", seed=0, data_dir=str(tmp_path / "fresh"), data_workers=1,
                                datasets=[DatasetSpec(**NIH)]), "chestxray14")
    assert {k: [len(s), int(np.asarray(s.images, np.int64).sum())] for k, s in fresh.splits.items()} == sums_a
    assert not list(folder.glob("*.partial"))


def test_a_waiting_preparation_resumes_the_first_ones_work_when_it_is_killed(tmp_path):
    data = tmp_path / "data"
    gate = tmp_path / "gate"  # never created: A blocks before its 4th chunk until killed
    a_count, b_count, a_out, b_out = (tmp_path / n for n in ("a.count", "b.count", "a.out", "b.out"))
    a = _start(data, a_count, str(gate), a_out, gate_after=3)
    try:
        _wait_for(lambda: _decoded(a_count) >= 48 or a.poll() is not None)  # 3 chunks of 16 decoded and recorded
        assert a.poll() is None, a_out.read_text()
        b = _start(data, b_count, "", b_out)
        try:
            _wait_for(lambda: "waiting for another preparation" in b_out.read_text() or b_count.exists()
                      or b.poll() is not None)
            assert "waiting for another preparation" in b_out.read_text(), b_out.read_text()
            a.kill()  # kill -9: the kernel drops A's lock, no stale lock is left
            a.wait(30)
            assert b.wait(180) == 0, b_out.read_text()
        finally:
            if b.poll() is None:
                b.kill()
    finally:
        if a.poll() is None:
            a.kill()
    sums_b = _checksums(b_out)
    total = sum(n for n, _ in sums_b.values())
    assert _decoded(a_count) == 48 and _decoded(b_count) == total - 48  # B went on from A's 48 images
    assert "resuming preparation at image 48" in b_out.read_text()
    fresh = get_dataset(Profile(name="t", kind="smoke", seed=0, data_dir=str(tmp_path / "fresh"), data_workers=1,
                                datasets=[DatasetSpec(**NIH)]), "chestxray14")
    assert {k: [len(s), int(np.asarray(s.images, np.int64).sum())] for k, s in fresh.splits.items()} == sums_b


def test_a_preparation_stops_with_one_line_after_waiting_too_long(tmp_path, monkeypatch, capsys):
    p = Profile(name="t", kind="smoke", seed=0, data_dir=str(tmp_path), data_workers=1, datasets=[DatasetSpec(**NIH)])
    folder = cache.paths(p, "chestxray14")[0]
    monkeypatch.setattr(prepare_lock, "WAIT_S", 0.5)
    with prepare_lock.PrepareLock(folder, "chestxray14"):  # another preparation holds it (a new descriptor
        # conflicts with this one as with another process's: flock locks belong to the open file)
        t0 = time.monotonic()
        with pytest.raises(MedlibError) as e:
            get_dataset(p, "chestxray14")
        assert 0.5 <= time.monotonic() - t0 < 30
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{folder}: another preparation of chestxray14 (PID {os.getpid()}")
    assert "Fix:" in msg and f"kill {os.getpid()}" in msg
    said = [ln for ln in capsys.readouterr().out.splitlines() if "waiting for another preparation" in ln]
    assert len(said) == 1 and str(folder) in said[0]
    assert not folder.exists()  # it prepared nothing
    # once the other one is gone, the preparation goes ahead
    b = get_dataset(p, "chestxray14")
    assert len(b.splits["train"]) > 0 and (folder / "meta.json").is_file()
