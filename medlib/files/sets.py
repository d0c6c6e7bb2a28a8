"""A set of files that changes as one (the report): a reader sees the whole old set or the whole new set, even
after ``kill -9`` (:func:`write_set`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Mapping


from ..errors import fail
from .atomic import UMASK


def _no_step(name: str) -> None:
    """Called after each step of :func:`write_set` (tests replace it to kill the process there)."""


_step: Callable[[str], None] = _no_step


def write_set(folder: str | Path, files: Mapping[str, str | bytes], *, links: Mapping[str, str] | None = None,
              expose: bool = True) -> list[Path]:
    """Write ``files`` (file name -> content) as one set: a reader sees the whole old set or the whole new set,
    never a mix, whenever the writer stops (an error, ``kill -9``, a full disk).

    ``folder`` (``reports/<p>/report``) is a relative symbolic link to a hidden version folder beside it
    (``.report.<random>/``) holding the files, plus ``links`` (name -> link target relative to that folder, e.g.
    ``{"figures": "../figures"}`` so relative figure paths of the files resolve). A new set is written and synced
    to a new version folder; then one rename points ``folder`` at it (the only moment the set changes); then the
    old version is deleted. With ``expose`` each file is also reachable beside ``folder`` (``reports/<p>/report.md``
    -> ``report/report.md``: links made before that rename, which never change). Regular files found at those
    paths (written before this layout) are first moved into a version of their own without changing what a reader
    sees.

    Every write starts by deleting what an interrupted one left (``.<folder name>.*`` entries other than the
    current version) and holds a lock on the parent folder meanwhile. Returns the paths a reader opens.
    """
    folder = Path(folder)
    parent, name = folder.parent, folder.name
    for fname in [*files, *(links or {})]:
        if not fname or "/" in fname or fname.startswith(".") or fname == name:
            raise ValueError(f"write_set: {fname!r} is not a plain file name")
    parent.mkdir(parents=True, exist_ok=True)
    if folder.exists() and not folder.is_symlink():
        raise fail(folder, "is a real file or folder, where the link to the current set of files belongs",
                   f"move it away (the files live in hidden {parent}/.{name}.*/ folders behind the link)")
    with _folder_lock(parent):
        _clean(folder)
        _step("clean")
        if expose:
            _adopt(folder, list(files), links or {})
        new = _new_version(folder)
        try:
            for fname, data in files.items():
                _write_synced(new / fname, data)
                _step(f"write {fname}")
            for lname, target in (links or {}).items():
                os.symlink(target, new / lname)
            _fsync(new)
            _step("synced")
            if expose:  # before the swap: a link to a file the old set lacks shows nothing until then, as before
                for fname in files:
                    _link(parent / fname, f"{name}/{fname}", folder)
                    _step(f"expose {fname}")
            _point(folder, new.name)
        except BaseException:  # an error (a full disk, a bad content): the old set stays, the new one goes
            if not (folder.is_symlink() and os.readlink(folder) == new.name):
                shutil.rmtree(new, ignore_errors=True)
            raise
        _step("swap")
        if expose:
            for stale in parent.iterdir():  # exposed files the new set no longer has
                if stale.is_symlink() and os.readlink(stale).startswith(f"{name}/") and not stale.exists():
                    stale.unlink()
        _clean(folder)
        _step("clean old")
    return [(parent if expose else folder) / fname for fname in files]


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` itself (no lock file to leave behind); the kernel drops it on a kill."""
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _clean(folder: Path) -> None:
    """Delete every ``.<name>.*`` entry beside ``folder`` except the version it points at: versions and links an
    interrupted write left, the previous version, and the temporary and backup files of earlier writers."""
    current = os.readlink(folder) if folder.is_symlink() else None
    for entry in folder.parent.iterdir():
        if entry.name.startswith(f".{folder.name}.") and entry.name != current:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()


def _new_version(folder: Path) -> Path:
    new = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    os.chmod(new, 0o777 & ~UMASK)  # mkdtemp makes 0700 folders
    return new


def _write_synced(path: Path, data: str | bytes) -> None:
    with open(path, "xb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link(path: Path, target: str, folder: Path) -> None:
    """Make ``path`` a symbolic link to ``target`` in one rename (a reader finds the old entry or the link)."""
    if path.is_symlink() and os.readlink(path) == target:
        return
    if path.is_dir() and not path.is_symlink():
        raise fail(path, "is a folder, where a link to the report's file belongs", "move it away")
    tmp = folder.parent / f".{folder.name}.{os.urandom(6).hex()}.link"
    os.symlink(target, tmp)
    os.replace(tmp, path)
    _fsync(folder.parent)


def _point(folder: Path, version: str) -> None:
    """Point ``folder`` at ``version``: the commit point of a set (one rename of a link)."""
    _link(folder, version, folder)


def _adopt(folder: Path, names: list[str], links: Mapping[str, str]) -> None:
    """Regular files at the exposed paths (an earlier layout, or a writer that replaced a link) become a version of
    their own, together with what the exposed links show now, and then links to it: each path shows the same bytes
    before and after, so a reader never sees a mix. Interrupted, the next write does it again."""
    parent = folder.parent
    plain = [n for n in names if (parent / n).is_file() and not (parent / n).is_symlink()]
    if not plain:
        return
    shown: dict[str, Path] = {}  # what a reader sees now: the current version's files, the regular files
    if folder.is_dir():
        shown.update((e.name, e) for e in folder.resolve().iterdir() if e.is_file() and not e.is_symlink())
    shown.update((n, (parent / n).resolve()) for n in names if (parent / n).is_file())
    version = _new_version(folder)
    for n, src in shown.items():
        try:
            os.link(src, version / n)
        except OSError:  # no hard links on this file system: a copy
            shutil.copy2(src, version / n)
    for lname, target in links.items():
        os.symlink(target, version / lname)
    _fsync(version)
    _step("adopt")
    _point(folder, version.name)
    _step("adopt swap")
    for n in plain:
        _link(parent / n, f"{folder.name}/{n}", folder)
        _step(f"adopt expose {n}")
