"""The one exception type a user can cause.

Every error that comes from bad input (a missing file, a wrong schema, an offline download,
an unknown profile key) is raised as :class:`MedlibError` with a one-line message that names the
file (or key) and the fix. ``run_all.sh`` and ``python -m medlib ...`` print that line, not a
traceback, and exit non-zero.
"""

from __future__ import annotations

from pathlib import Path


class MedlibError(RuntimeError):
    """A problem the user can fix; the message says which file/key and how."""


def fail(what: str | Path, problem: str, fix: str) -> MedlibError:
    """Build a MedlibError with the house style: ``<what>: <problem>. Fix: <fix>``.

    Usage: ``raise fail(path, "missing column 'caption'", "add a caption column")``.
    """
    return MedlibError(f"{what}: {problem}. Fix: {fix}")
