"""Where a source's files are: paths under the data dir, the source-selection ladder every loader follows
(real copy, hub download, fallback, generated fixture), wrong-kind paths, index files, the hub's reachability."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

from ..config import DatasetSpec, Profile
from ..errors import MedlibError, fail


def resolve_path(profile: Profile, spec: DatasetSpec, default: str = "") -> Path:
    """``spec.path`` (or ``default``) relative to ``profile.data_dir`` unless absolute."""
    p = Path(spec.path or default).expanduser()
    return p if p.is_absolute() else profile.data_path / p


def fixture_dir(profile: Profile, *parts: str) -> Path:
    """``<data_dir>/fixtures/<parts...>``: where generated stand-ins live."""
    return profile.data_path.joinpath("fixtures", *parts)


def read_table_file(path: Path, need: Sequence[str], *, missing: str, unreadable_fix: str, columns_fix: str,
                    **read_kw: Any) -> Any:
    """A CSV as a DataFrame with the columns ``need``, or a one-line MedlibError naming the file and the fix.

    ``missing``: the fix when the file is absent; ``unreadable_fix``: when pandas cannot parse it (it raises many
    types for a malformed file); ``columns_fix``: when columns are missing. ``read_kw`` goes to ``pd.read_csv``.
    """
    import pandas as pd

    if not Path(path).is_file():
        raise fail(path, "not found", missing)
    try:
        df = pd.read_csv(path, **read_kw)
    except Exception as exc:  # ParserError, UnicodeDecodeError, EOFError/BadGzipFile, EmptyDataError, ...
        raise fail(path, f"unreadable CSV ({type(exc).__name__})", unreadable_fix) from None
    miss = [c for c in need if c not in df.columns]
    if miss:
        raise fail(path, f"missing column(s) {miss}", columns_fix)
    return df


def check_hub_reachable(what: str, local_fix: str) -> None:
    """Fail at once (instead of after huggingface_hub's ~25 s of retries) when the hub cannot be reached.

    Skipped when the user chose offline mode (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: a local HF cache may
    serve the request) or routes through a proxy (a direct probe would not tell).
    """
    import os
    import socket
    from urllib.parse import urlparse

    env = os.environ
    if any(env.get(k, "").strip() not in ("", "0") for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return
    if any(env.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return
    host = urlparse(env.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError:
        raise fail(what, f"cannot reach {host} (offline?)",
                   f"go online once, set HF_DATASETS_OFFLINE=1 to use a cached copy, or {local_fix}") from None


def warn_synthetic(name: str, source: str) -> None:
    """The one console line per generated dataset (stderr; no warning class, no source-line echo)."""
    print(f"GENERATED {name}: a generated stand-in ({source}) is used, not the real dataset; its numbers are "
          "NOT results", file=sys.stderr, flush=True)


def check_kind(path: Path, want: str, what: str, fix: str, stop: Path | None = None) -> None:
    """Raise a one-line MedlibError when ``path`` (or a folder above it, up to ``stop``) exists with the wrong
    kind: a file where a folder belongs or a folder where a file belongs. A missing path is not an error here."""
    path = Path(path)
    chain = []
    for parent in path.parents:
        chain.append(parent)
        if stop is None or parent == stop:
            break
    for parent in reversed(chain):  # the outermost wrong folder first
        if os.path.lexists(parent) and not parent.is_dir():
            raise fail(parent, f"is a file, but {what} expects a folder here", fix)
    if want == "file" and path.is_dir():
        raise fail(path, f"is a folder, but {what} expects a file here", fix)
    if want == "dir" and os.path.lexists(path) and not path.is_dir():
        raise fail(path, f"is a file, but {what} expects a folder here", fix)


def choose_source(spec: DatasetSpec, *, present: bool, missing: MedlibError, remote: bool = False,
                  fallback: bool = False) -> str:
    """The source-selection ladder every loader follows; returns 'generated', 'real', 'hub' or 'fallback'.

    1. ``synthetic: always`` -> 'generated' (the source's fixture);
    2. the real/local copy is ``present`` -> 'real';
    3. ``remote`` (download allowed and a place to download from) -> 'hub';
    4. ``fallback`` (another dataset stands in) -> 'fallback';
    5. ``synthetic: auto`` -> 'generated';
    6. otherwise ``missing`` is raised (a one-line error naming the file and how to get it).
    Wrong-kind paths are checked by the caller (:func:`check_kind`) before, so they never fall through to 5.
    """
    if spec.synthetic == "always":
        return "generated"
    if present:
        return "real"
    if remote:
        return "hub"
    if fallback:
        return "fallback"
    if spec.synthetic == "auto":
        return "generated"
    raise missing
