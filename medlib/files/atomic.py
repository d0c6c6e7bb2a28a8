"""Atomic file writes: write to a temporary name in the same folder, then rename into place.

A crash or a bad input halfway through never leaves a half-written metrics file, checkpoint or table behind,
and never destroys the previous good copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


UMASK = os.umask(0)
os.umask(UMASK)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp makes 0600 files; give the result the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_npz(path: str | Path, **arrays: Any) -> Path:
    # np.savez appends ".npz" to names without it, so write through a file object.
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path)


def write_with(path: str | Path, writer: Callable[[Path], None]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result into place (for torch.save, savefig, ...)."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_files(contents: dict[str | Path, str | bytes]) -> list[Path]:
    """Write several files so that they change together: all of them, or (on any error) none.

    Every new content goes to a temporary file beside its target first (a full disk fails here, with every
    target untouched); then each target is renamed into place. Should a rename fail halfway, the targets
    already replaced are put back from hard-linked backups of their old versions. Temporary files and backups
    are removed in every case. (Not in a library: POSIX offers atomic renames of one file only.)
    """
    targets = [Path(p) for p in contents]
    temps: dict[Path, Path] = {}
    backups: dict[Path, Path] = {}
    done: list[Path] = []
    try:
        for target, data in zip(targets, contents.values()):
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
            temps[target] = Path(tmp)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            os.chmod(tmp, 0o666 & ~UMASK)
        for target in targets:
            if target.exists():
                backup = Path(f"{temps[target]}.old")
                try:
                    os.link(target, backup)
                    backups[target] = backup
                except OSError:  # no hard links here: that target cannot be put back, the rest still can
                    pass
        for target in targets:
            os.replace(temps[target], target)
            done.append(target)
    except BaseException:
        for target in reversed(done):  # put back what was already replaced
            with contextlib.suppress(OSError):
                if target in backups:
                    os.replace(backups.pop(target), target)
                else:
                    target.unlink()
        raise
    finally:
        for leftover in [*temps.values(), *backups.values()]:
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
    return targets
