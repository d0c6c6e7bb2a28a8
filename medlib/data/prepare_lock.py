"""One preparation of a dataset's prepared splits at a time, across processes (two notebooks, two ``run_all.sh``).

The lock is ``<data_dir>/cache/<profile>/<name>.lock``, beside the dataset's folder of prepared splits (not in it:
``refresh`` removes that folder, and a lock file removed while held would let a third process lock a new inode).
It is the same exclusive ``flock`` as the runner's per-profile lock (:class:`medlib.files.lock.ProfileLock`, whose
holder record and release this reuses): the kernel drops it when its holder dies, even by ``kill -9``, so a killed
preparation never leaves a stale lock, and the next one resumes from its ``.partial`` file. Unlike the runner's
lock, a second preparation waits for the first (saying so in one line) instead of stopping at once, and then reads
the prepared splits the first one wrote; it stops with a one-line error after :data:`WAIT_S` seconds.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import fail
from ..files.lock import ProfileLock, fcntl

WAIT_S = 6 * 3600.0  # how long a second preparation waits for the first (MIMIC-CXR on 2 cores takes hours)
POLL_S = 0.25  # how often a waiting preparation tries the lock again


def lock_path(folder: Path) -> Path:
    """The lock of the prepared splits in ``folder``: ``<folder>.lock`` beside it."""
    return folder.with_name(folder.name + ".lock")


class PrepareLock(ProfileLock):
    """``with PrepareLock(folder, name):`` -- at most one preparation of ``folder``; a second one waits.

    ``waited`` is True after :meth:`acquire` had to wait (the other preparation may have finished the splits).
    """

    def __init__(self, folder: Path, name: str, timeout_s: float | None = None,
                 log: Callable[[str], Any] = print):
        command = " ".join([Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]])
        super().__init__(lock_path(Path(folder)), name, command[:200])
        self.folder, self.name, self.timeout_s, self.log = Path(folder), name, timeout_s, log
        self.waited = False

    def acquire(self) -> "PrepareLock":
        if fcntl is None:  # pragma: no cover - not POSIX: no lock
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        timeout = WAIT_S if self.timeout_s is None else self.timeout_s
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                        raise
                pid, command = self.holder()
                if not self.waited:
                    self.waited = True
                    self.log(f"{self.name}: waiting for another preparation of it (PID {pid}: {command}) to finish "
                             f"in {self.folder}")
                if time.monotonic() >= deadline:
                    raise fail(self.folder, f"another preparation of {self.name} (PID {pid}: {command}) still holds "
                                            f"{self.path} after {timeout:.0f} s",
                               f"let it finish, or stop it (kill {pid}; the next preparation resumes where it "
                               "stopped), then run again") from None
                time.sleep(POLL_S)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n{self.command}\n".encode())
        except BaseException:
            os.close(fd)  # closing drops the lock if it was taken
            raise
        self._fd = fd
        return self

    def __enter__(self) -> "PrepareLock":
        return self.acquire()
