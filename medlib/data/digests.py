"""Content digests of a dataset's input files for the prepared-split cache key, memoized under each file's stat.

The key must change when an input's content changes, also when a replacement keeps the old size and mtime
(``cp -p``, ``rsync -a -I``, a restore from a backup, or ``os.utime`` after a write), and a cache hit must stay
cheap for a dataset that lists 100k images. So each file's digest is the sha256 of its whole content, memoized in
a JSON file (``<cache>/<profile>/<name>.digests.json``) under its stat: size, mtime_ns, ctime_ns, inode, device.

Any write to a file, and any ``utime`` that sets its mtime back afterwards, sets its ctime to the current time
(from the kernel's clock; no call sets a ctime back), and a replacement by rename gives a new inode: a replaced
file misses the memo and is read again. A file whose stat is unchanged is not read at all: a cache hit costs one
``stat`` per file and one JSON read. A metadata-only change (``chmod``, ``touch``, a copy with the same bytes)
costs one re-read and leaves the digest, the key and the prepared splits as they were.

Limits: a digest is memoized only when the file's ctime is at least :data:`RACY_S` seconds older than the
moment it is read, and only when its stat did not change while it was read (a file changed twice within one
tick of the file system's clock could otherwise keep its stat: git's "racily clean" case); such a file is read
again next time. A file system that does not keep ctime (some FUSE or network mounts) defeats the memo for a
same-size, same-mtime replacement; ``get_dataset(..., refresh=True)`` rebuilds regardless.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from ..files import write_text
from .bundle import sha256_file

RACY_S = 2.0  # a file changed this recently is hashed but not memoized (clock ticks, small clock skew)
VERSION = 1


def _stat(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def _read_memo(path: Path) -> dict[str, list]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return doc["files"] if doc.get("version") == VERSION and isinstance(doc.get("files"), dict) else {}
    except (OSError, ValueError, AttributeError, KeyError):
        return {}  # absent or damaged: every file is read again


def file_digests(paths: Sequence[str | Path], memo: Path) -> list[list]:
    """``[absolute path, size, sha256]`` per file (``[path, None, None]`` when absent), in the order given.

    Digests come from ``memo`` where a file's stat is unchanged; the memo is rewritten (atomically, holding just
    these files) only when something was read. A memo that cannot be written is skipped: it only saves time.
    """
    old = _read_memo(memo)
    new: dict[str, list] = {}
    out: list[list] = []
    changed = False
    for p in paths:
        path = os.path.abspath(p)
        try:
            st = os.stat(path)
        except OSError:
            out.append([path, None, None])
            continue
        stat = _stat(st)
        hit = old.get(path)
        if hit is not None and hit[:-1] == stat:
            digest = hit[-1]
        else:
            started = time.time_ns()
            digest = sha256_file(path)
            changed = True
            try:
                after = _stat(os.stat(path))
            except OSError:
                after = None
            if after != stat or started - st.st_ctime_ns < RACY_S * 1e9:
                out.append([path, st.st_size, digest])
                continue  # not memoized: read again next time
        new[path] = stat + [digest]
        out.append([path, st.st_size, digest])
    if changed or new.keys() != old.keys():
        try:
            write_text(memo, json.dumps({"version": VERSION, "files": new}, separators=(",", ":")))
        except OSError:
            pass
    return out
