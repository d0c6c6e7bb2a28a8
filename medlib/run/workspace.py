"""What one run holds in the checkout while it runs, so that two runs never share it.

* A per-profile lock, ``reports/<profile>/.run.lock`` (:class:`medlib.files.lock.ProfileLock`): a second run of
  the same profile stops at once naming the process that holds it.
* A private folder for the kernels' IPC socket files, ``$TMPDIR/medclip-<pid>-XXXX`` (short, because a Unix
  socket path is limited to ~100 bytes), removed on exit; folders of runs that no longer exist are removed
  when the next run starts.
* Temporary executed-notebook names carry the PID (``executed/.NN_name.<pid>.running.ipynb``); ones left by
  a run that no longer exists are removed when the next run of that profile starts.
* The run's Ctrl-C handler (:class:`CtrlC`): it remembers the press and interrupts the running kernel as well as
  raising KeyboardInterrupt, so a press is never lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from ..files.lock import pid_alive
from .kernel import interrupt_kernels


LOCK_NAME = ".run.lock"
KERNEL_DIR_PREFIX = "medclip-"
_KERNEL_DIR = re.compile(r"^medclip-(\d+)-")
_RUNNING = re.compile(r"^\.(?P<stem>.+?)(?:\.(?P<pid>\d+))?\.running\.ipynb$")


def remove_stale_kernel_dirs(tmp: str | Path | None = None) -> list[Path]:
    """Remove ``$TMPDIR/medclip-<pid>-*`` folders whose run no longer exists; returns what was removed."""
    removed = []
    base = Path(tmp or tempfile.gettempdir())
    for d in base.glob(f"{KERNEL_DIR_PREFIX}*"):
        m = _KERNEL_DIR.match(d.name)
        if m and d.is_dir() and not pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextlib.contextmanager
def kernel_dir() -> Iterator[Path]:
    """A private folder for this run's kernel socket files; stale ones of dead runs are removed first."""
    base = tempfile.gettempdir()
    if len(base) > 60 and os.path.isdir("/tmp"):  # a socket path must stay under ~100 bytes
        base = "/tmp"
    remove_stale_kernel_dirs(base)
    d = Path(tempfile.mkdtemp(prefix=f"{KERNEL_DIR_PREFIX}{os.getpid()}-", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def running_path(executed_dir: Path, stem: str) -> Path:
    """This run's temporary name for the executed copy of notebook ``stem``."""
    return executed_dir / f".{stem}.{os.getpid()}.running.ipynb"


def remove_stale_running(executed_dir: Path) -> list[Path]:
    """Remove temporary executed copies left by runs that no longer exist (or by older, PID-less versions).

    Called while holding the profile's lock, so no live run of this profile writes here.
    """
    removed = []
    if not executed_dir.is_dir():
        return removed
    for p in executed_dir.glob(".*.running.ipynb"):
        m = _RUNNING.match(p.name)
        if not m:
            continue
        pid = m.group("pid")
        if pid is None or (int(pid) != os.getpid() and not pid_alive(int(pid))):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
            removed.append(p)
    return removed


class CtrlC:
    """A run's SIGINT handler: ``with ctrl_c.installed(): ...``.

    A press sets :attr:`pressed`, interrupts the kernels whose PIDs are in :attr:`kernels` (the notebook's running
    cell stops) and raises KeyboardInterrupt. The KeyboardInterrupt alone can be lost: raised while a finalizer
    (``__del__``, a weakref callback) or a bare ``except:`` runs, it is swallowed there and the run would go on;
    the interrupted cell and :attr:`pressed` still end the run. Python reports a KeyboardInterrupt swallowed by a
    finalizer as "Exception ignored in ..." with a traceback; while installed, that report is dropped.
    """

    def __init__(self) -> None:
        self.pressed = False
        self.kernels: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.pressed = True
        interrupt_kernels(self.kernels)
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def installed(self) -> Iterator["CtrlC"]:
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous, hook = signal.signal(signal.SIGINT, self), sys.unraisablehook

        def unraisable(info) -> None:
            if not issubclass(info.exc_type, KeyboardInterrupt):
                hook(info)

        sys.unraisablehook = unraisable
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = hook
