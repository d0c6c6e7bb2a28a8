"""A lock file one process holds (``flock``), naming its holder: one run per profile, one preparation per dataset.

The kernel releases a ``flock`` when its holder dies (even by ``kill -9``), so a killed process never leaves a
stale lock; the file itself stays (removing it would let a third process lock a fresh inode while a second still
holds the old one).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from ..errors import MedlibError

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock (the runner's IPC and locking are POSIX features)
    fcntl = None  # type: ignore[assignment]


def pid_alive(pid: int) -> bool:
    """True while a process with this PID exists (signal 0 checks without signalling)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class ProfileLock:
    """``with ProfileLock(path, profile, command):`` -- at most one run per profile (per reports folder)."""

    def __init__(self, path: str | Path, profile: str, command: str):
        self.path, self.profile, self.command = Path(path), profile, command
        self._fd: int | None = None

    def holder(self) -> tuple[str, str]:
        """(pid, command) written by the run that holds the lock ('?' where unreadable)."""
        try:
            lines = self.path.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        return (lines[0].strip() if lines else "?"), (lines[1].strip() if len(lines) > 1 else "?")

    def acquire(self) -> "ProfileLock":
        if fcntl is None:  # pragma: no cover
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES):
                raise
            pid, command = self.holder()
            raise MedlibError(
                f"profile {self.profile!r} is already running in this checkout: PID {pid} ({command}); "
                f"lock {self.path}. Fix: wait for it to finish or stop it (kill {pid}); a different profile "
                "may run side by side") from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n{self.command}\n".encode())
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # an empty lock file = nobody running
        os.close(self._fd)  # closing the descriptor drops the flock
        self._fd = None

    def __enter__(self) -> "ProfileLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
