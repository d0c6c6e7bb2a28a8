"""Which notebooks a run executes, and what the console shows while one runs.

:func:`select`: ``--only 03`` / ``--only 04,05`` / ``--from 04``, and ``--downstream`` (also every notebook that
reads a selected one, :data:`medlib.run.manifest.READS`). (A notebook whose study the profile leaves out is
skipped with one line: :func:`medlib.config.notebooks.left_out`.) :class:`ProgressTail`: the kernel's
progress events (:mod:`medlib.progress`) printed as console lines while the notebook runs.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from pathlib import Path
from typing import TextIO

from .. import progress
from ..config import Profile
from ..errors import MedlibError
from .manifest import READS


def discover_notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def downstream_of(numbers: set[str]) -> set[str]:
    """Every notebook number that reads one of ``numbers``, directly or through another."""
    out = set(numbers)
    while True:
        more = {nn for nn, ups in READS.items() if nn not in out and out & set(ups)}
        if not more:
            return out
        out |= more


def select(notebooks: list[Path], only: list[str] | None, start: str | None, downstream: bool = False) -> list[Path]:
    """The notebooks to run: ``only`` (numbers; each may be a comma list ``04,05``), from ``start`` on, and with
    ``downstream`` every notebook that reads one of them."""
    def num(p: Path) -> str:
        return p.name[:2]

    every, known = list(notebooks), {num(p) for p in notebooks}
    only = [n.strip() for item in (only or []) for n in str(item).split(",") if n.strip()]
    for n in only + ([start] if start else []):
        if n.zfill(2) not in known:
            raise MedlibError(f"notebooks/: no notebook numbered {n!r}. Fix: use one of {sorted(known)}")
    if only:
        wanted = {n.zfill(2) for n in only}
        notebooks = [p for p in notebooks if num(p) in wanted]
    if start:
        notebooks = [p for p in notebooks if num(p) >= start.zfill(2)]
    if downstream:
        wanted = downstream_of({num(p) for p in notebooks})
        notebooks = [p for p in every if num(p) in wanted]
    return notebooks


class ProgressTail:
    """``with ProgressTail(path): ...``: while the block runs, print each progress event appended to ``path`` (by
    the notebook's kernel) as one console line, with the time; the rest when the block ends."""

    def __init__(self, path: Path, out: TextIO | None = None, every: float = 0.5):
        self.path, self.out, self.every, self.offset = Path(path), out or sys.stdout, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.drain()

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
            end = chunk.rfind(b"\n") + 1  # complete lines only: the kernel may be writing the next one
            self.offset += end
            for raw in chunk[:end].splitlines():
                try:
                    line = progress.describe(json.loads(raw))
                except (ValueError, AttributeError):
                    continue
                if line:
                    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=self.out, flush=True)

    def __enter__(self) -> "ProgressTail":
        self.path.unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.drain()


def say_stale(profile: Profile) -> None:
    """After a partial run: the notebooks whose outputs it left stale, and the one command that refreshes them."""
    from .manifest import read_manifest, refresh_command, stale

    manifest = read_manifest(profile)
    old = stale(manifest)
    if old:
        print("STALE (the report marks what they made): " + "; ".join(f"{k}: {v}" for k, v in old.items()),
              flush=True)
        print(f"refresh them: {refresh_command(manifest)}", flush=True)
