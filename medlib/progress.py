"""Whether to draw progress bars: on by default, off when ``MEDLIB_PROGRESS=0``.

``run_all.sh`` sets ``MEDLIB_PROGRESS=0`` for its headless notebook runs (unless you set it yourself), so the
executed copies under ``reports/`` are not filled with hundreds of finished per-epoch bars; it prints one line
per notebook instead. In JupyterLab the bars show as usual.
"""

from __future__ import annotations

import os


def enabled(requested: bool = True) -> bool:
    return bool(requested) and os.environ.get("MEDLIB_PROGRESS", "1") != "0"
