"""Saving figures and what every figure shares: the SMOKE / GENERATED marks, titles, label placement, reference
lines and the palette.

:func:`save_figure` writes ``reports/<profile>/figures/<name>.png`` atomically and marks the figure as the
profile and the data require. Plot helpers put their title in the figure's suptitle so the marks can prefix it.
Nothing here needs a display (works under the Agg backend).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any, Sequence

import matplotlib.pyplot as plt  # without a display matplotlib falls back to Agg by itself
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.text import Text

from ...config import Profile
from ...errors import fail
from ...files import write_bytes
from ..records import reports_dir, slug


GENERATED_MARK = "GENERATED DATA"


NOT_COMPARABLE = "NOT COMPARABLE"
DPI = 110


PAGE_WIDTH_IN = 9.0  # widest figure: 9 in at 110 dpi, scaled to the report's text width stays legible


# Qualitative palette with 14+ distinct colours: tab20's saturated shades first, then its light ones.
PALETTE = [plt.get_cmap("tab20")(i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2))]


def save_figure(fig: Figure, profile: Profile, name: str) -> Path:
    """Write ``fig`` to ``reports/<profile>/figures/<name>.png`` atomically and return the path.

    ``name`` follows ``<NN>_<what>__<dataset>__<model>__<method>`` (NN = notebook number), e.g.
    ``02_confusion__pneumoniamnist__tiny__zero-shot``. A smoke or rehearsal run's figure gets its mark in front of
    the suptitle ("SMOKE — ...", "REHEARSAL — ...") and its notice in the PNG's ``Warning`` text; a figure of a
    generated stand-in gets "GENERATED DATA — ".
    """
    name = name[:-4] if name.endswith(".png") else name
    if not name or slug(name) != name:
        raise fail("save_figure", f"figure name {name!r} must be lowercase [a-z0-9_.-]", f"use {slug(name)!r}")
    if _is_generated(profile, name):
        mark_generated(fig)
    if profile.label:
        mark_run(fig, profile.label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight",
                metadata={"Warning": profile.notice} if profile.notice else None)
    return write_bytes(reports_dir(profile, "figures") / f"{name}.png", buf.getvalue())


def _is_generated(profile: Profile, name: str) -> bool:
    """Whether the dataset a figure is named after (``NN_<what>__<dataset>__...``) is a generated stand-in, as
    notebook 01 recorded it in ``tables/data_summary.csv`` (or the profile forces a fixture)."""
    parts = name.split("__")
    if len(parts) < 2:
        return False
    ds = parts[1]
    spec = next((d for d in getattr(profile, "datasets", []) or [] if getattr(d, "name", None) == ds), None)
    if spec is not None and getattr(spec, "synthetic", "never") == "always":
        return True
    path = profile.reports_path / "tables" / "data_summary.csv"
    if not path.is_file():
        return False
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError):
        return False
    if not {"dataset", "synthetic"} <= set(df.columns):
        return False
    rows = df[df["dataset"].astype(str) == ds]
    return bool(len(rows)) and rows["synthetic"].astype(str).str.lower().isin(["true", "1", "yes"]).any()


def mark_generated(fig: Figure) -> Figure:
    """Prefix the suptitle with "GENERATED DATA — " (once): the figure shows a generated stand-in."""
    current = fig.get_suptitle()
    if GENERATED_MARK not in current:
        fig.suptitle(f"{GENERATED_MARK} — {current}" if current else GENERATED_MARK)
    return fig


def mark_run(fig: Figure, label: str) -> Figure:
    """Prefix the suptitle with the run's mark, e.g. "SMOKE — " (once)."""
    current = fig.get_suptitle()
    if not current.startswith(label):
        fig.suptitle(f"{label} — {current}" if current else label)
    return fig


def titled(fig: Figure, title: str) -> Figure:
    if title:
        fig.suptitle("\n".join(textwrap.wrap(title, 80)) or title)
    fig.tight_layout()
    return fig


def all_zero_note(ax: Any, values: Sequence[float], what: str = "every value") -> bool:
    """Write 'all values are 0' across an axis whose bars are all zero (or missing), so an empty-looking plot
    says why. Returns True when it did."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if vals.size and np.all(np.nan_to_num(vals) == 0):
        ax.text(0.5, 0.5, f"{what} is 0", transform=ax.transAxes, ha="center", va="center", fontsize=11,
                color="0.3", bbox={"facecolor": "white", "edgecolor": "0.6"})
        return True
    return False


def unit_axis(values: Sequence[float]) -> tuple[float, float] | None:
    """(0, 1.02) for values that look like rates/scores in [0, 1] (accuracy, recall, AUROC): a fixed scale, so
    noise of a few hundredths does not fill the plot."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    vals = vals[np.isfinite(vals)]
    if vals.size and vals.min() >= 0 and vals.max() <= 1:
        return (0.0, 1.02)
    return None


def short_label(text: str, width: int = 30, lines: int = 2) -> str:
    """Wrap a long tick label onto at most ``lines`` lines of ``width`` characters ("…" past that); the full
    name stays in the table the figure comes from."""
    wrapped = textwrap.wrap(str(text), width) or [str(text)]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "…"
    return "\n".join(wrapped)


def majority_rate(labels: Any) -> float | None:
    """Share of the most frequent class in integer labels (N,): the accuracy of always answering that class.
    None for multi-label (N, C) labels, where AUROC 0.5 is the reference instead."""
    y = np.asarray(labels)
    if y.ndim != 1 or not len(y):
        return None
    return float(np.bincount(y.astype(int)).max() / len(y))


def wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def whisker(row: pd.Series, val: float, lo: str | None, hi: str | None) -> list[list[float]] | None:
    """Error-bar lengths [[below], [above]] from the row's ``lo``/``hi`` columns; None without an interval."""
    if not (lo and hi and pd.notna(row.get(lo)) and pd.notna(row.get(hi))):
        return None
    return [[max(0.0, val - float(row[lo]))], [max(0.0, float(row[hi]) - val)]]


def hatch_style(row: pd.Series, hatch: str | None) -> dict[str, Any]:
    """Bar style: rows whose boolean column ``hatch`` is true (published values) are hatched and paler."""
    if hatch and bool(row.get(hatch)):
        return {"hatch": "//", "edgecolor": "black", "alpha": 0.6}
    return {"alpha": 1.0}


LABEL_OFFSETS = [(5, 5), (5, -12), (-8, 5), (-8, -12), (5, 16), (-8, 16), (5, -24), (-8, -24), (14, -3), (-14, -3),
            (5, 28), (5, -36), (-8, 28), (-8, -36)]


def place_labels(fig: Figure, ax: Any, xs: np.ndarray, ys: np.ndarray, texts: list[str]) -> list[Any]:
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    boxes: list[Any] = []
    for px, py, text in zip(xs, ys, texts):
        ann = None
        for dx, dy in LABEL_OFFSETS:
            ha = "left" if dx >= 0 else "right"
            ann = ax.annotate(text, (px, py), textcoords="offset points", xytext=(dx, dy), fontsize=7, ha=ha,
                              arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(dy) > 12 else None)
            box = Text.get_window_extent(ann, renderer).expanded(1.05, 1.15)  # the text, not its leader line
            if not any(box.overlaps(bb) for bb in boxes):
                break
            ann.remove()
            ann = None
        if ann is None:  # every offset taken: the last one, still readable over its neighbours
            ann = ax.annotate(text, (px, py), textcoords="offset points", xytext=LABEL_OFFSETS[-1], fontsize=7,
                              bbox={"facecolor": "white", "alpha": 0.7, "lw": 0})
            box = Text.get_window_extent(ann, renderer)
        boxes.append(box)
        placed.append(ann)
    return placed


def reference_lines(ax: Any, majority: float | None = None, chance_auroc: bool = False, vertical: bool = False) -> None:
    """Dotted reference lines: the majority-class rate and/or AUROC 0.5 (what a constant guess scores)."""
    line = ax.axvline if vertical else ax.axhline
    if majority is not None and np.isfinite(majority):
        line(majority, color="grey", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
    if chance_auroc:
        line(0.5, color="grey", ls="--", lw=1.0, label="AUROC 0.5 (chance)")


LOW_AUROC_NOTE = "AUROC < 0.5: the scores rank the classes worse than chance"


def low_auroc_note(ax: Any, values: Sequence[float]) -> None:
    """Add a note under the x label when any AUROC is below 0.5."""
    vals = np.asarray([v for v in values if v is not None], dtype=float)
    if np.any(vals[np.isfinite(vals)] < 0.5):
        label = ax.get_xlabel()
        ax.set_xlabel((label + "\n" if label else "") + LOW_AUROC_NOTE, fontsize=8)
