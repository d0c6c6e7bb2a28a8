"""Run names and the output contract's paths (reports/<profile>/{metrics,predictions,figures,tables}).

(Skeleton: the metrics helper adds save_run / load_runs; ``run_name`` and the path helpers are
the contract every notebook uses.)
"""

from __future__ import annotations

import re
from pathlib import Path

from .config import Profile

_BAD = re.compile(r"[^a-z0-9_.-]+")


def slug(text: str) -> str:
    """Lowercase, ``[a-z0-9_.-]`` only (other runs of characters become '-')."""
    return _BAD.sub("-", str(text).lower()).strip("-")


def run_name(notebook: str, dataset: str, model: str, method: str) -> str:
    """``<notebook>__<dataset>__<model>__<method>`` (DESIGN.md), each part slugged."""
    return "__".join(slug(p) for p in (notebook, dataset, model, method))


def reports_dir(profile: Profile, sub: str = "") -> Path:
    """reports/<profile>/<sub>/, created on demand."""
    p = profile.reports_path / sub if sub else profile.reports_path
    p.mkdir(parents=True, exist_ok=True)
    return p


def run_dir(profile: Profile, run: str) -> Path:
    """runs/<profile>/<run>/ : checkpoints and training logs."""
    p = profile.runs_path / run
    p.mkdir(parents=True, exist_ok=True)
    return p
