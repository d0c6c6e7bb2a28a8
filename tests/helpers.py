"""What several test modules share: a small learnable two-class dataset and training settings, and the harness that
kills a file-set write at each of its steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medlib.config import TrainConfig
from medlib.data.base import DatasetBundle, Split
from medlib.files import write_set

REPO = Path(__file__).resolve().parents[1]


CLASS_TEXTS = [["a chest X-ray showing normal lungs.", "a normal chest radiograph."],
               ["a chest X-ray showing pneumonia.", "a chest radiograph with pneumonia."]]


CFG = TrainConfig(epochs=2, batch_size=64, lr=1e-3, weight_decay=0.05, warmup_steps=2, patience=0)


def _images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """28x28 gray images: class 1 has a bright disc at a random place; learnable in a few steps."""
    n = len(labels)
    img = rng.normal(60, 20, (n, 28, 28))
    yy, xx = np.mgrid[:28, :28]
    for i in np.flatnonzero(labels == 1):
        cy, cx = rng.integers(8, 20, 2)
        img[i][(yy - cy) ** 2 + (xx - cx) ** 2 < 25] += 120
    return np.clip(img, 0, 255).astype(np.uint8)


def make_data(n_train=256, n_val=64, multilabel=False, seed=0) -> DatasetBundle:
    rng = np.random.default_rng(seed)
    splits = {}
    for name, n in (("train", n_train), ("val", n_val), ("test", 64)):
        y = (rng.random(n) < 0.35).astype(np.int64)
        labels = np.stack([y, (rng.random(n) < 0.3).astype(np.int64)], 1) if multilabel else y
        splits[name] = Split(images=_images(y, rng), labels=labels)
    return DatasetBundle(name="toy", task="multilabel" if multilabel else "multiclass",
                         class_names=["normal", "pneumonia"], splits=splits, source="(generated in test)",
                         synthetic=True, domain="chest_xray")


KILLER = """
import os, pickle, signal, sys
import medlib.files as mio
args = pickle.loads(open(sys.argv[1], "rb").read())
mio.sets._step = lambda name: os.kill(os.getpid(), signal.SIGKILL) if name == args["at"] else None
mio.write_set(args["folder"], args["files"], links=args["links"], expose=args["expose"])
"""


def killed_write(folder, files, links, at, expose=True):
    """Run write_set in a new process that SIGKILLs itself right after step ``at``."""
    import os
    import pickle
    import signal
    import subprocess
    import sys

    job = Path(folder).parent.parent / f"kill-{os.getpid()}.pkl"
    job.write_bytes(pickle.dumps({"folder": str(folder), "files": files, "links": links, "at": at,
                                  "expose": expose}))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(job)], env=env, capture_output=True, text=True)
    job.unlink()
    assert proc.returncode == -signal.SIGKILL, (at, proc.returncode, proc.stderr[-2000:])


def steps_of(folder, files, links, monkeypatch):
    """The step names of one write_set call on ``folder`` (run here, in this process)."""
    import medlib.files as mio

    seen = []
    monkeypatch.setattr(mio.sets, "_step", seen.append)
    write_set(folder, files, links=links)
    monkeypatch.undo()
    return seen


def seen_by_reader(base, names, via="report"):
    """What a reader finds: each file's bytes at base/<name> and at base/report/<name> (None: absent; the old
    layout had no report/)."""
    out = {}
    for n in names:
        a, b = base / n, base / via / n
        got = [p.read_bytes() if p.is_file() else None for p in (a, b)]
        assert got[0] == got[1] or not (base / via).exists(), (n, got)  # the two ways in agree
        out[n] = got[0]
    return out


def rebuilt(p, name, monkeypatch) -> bool:
    """Whether loading dataset ``name`` under profile ``p`` rebuilt its prepared splits (read the raw index)."""
    from medlib.data import cache, get_dataset

    calls = []
    real = cache.load_index
    monkeypatch.setattr(cache, "load_index", lambda *a: calls.append(1) or real(*a))
    get_dataset(p, name)
    monkeypatch.setattr(cache, "load_index", real)
    return bool(calls)
