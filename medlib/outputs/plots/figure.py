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
from matplotlib.transforms import Bbox

from ...config import Profile
from ...errors import fail
from ...files import write_bytes
from ..names import humanize
from ..records import reports_dir, slug


GENERATED_MARK = "GENERATED DATA"


NOT_COMPARABLE = "NOT COMPARABLE"
DPI = 110


PAGE_WIDTH_IN = 9.0  # widest figure: 9 in at 110 dpi, scaled to the report's text width stays legible


# Qualitative palette with 14+ distinct colours: tab20's saturated shades first, then its light ones.
PALETTE = [plt.get_cmap("tab20")(i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2))]


def save_figure(fig: Figure, profile: Profile, name: str) -> Path:
    """Write ``fig`` to ``reports/<profile>/figures/<name>.png`` atomically, with the same figure as vector PDF and
    SVG beside it (``<name>.pdf``, ``<name>.svg``: for a paper of one's own, and the report's PDF), and return the
    PNG's path.

    ``name`` follows ``<NN>_<what>__<dataset>__<model>__<method>`` (NN = notebook number), e.g.
    ``02_confusion__pneumoniamnist__tiny__zero-shot``. A smoke or rehearsal run's figure gets its mark in front of
    the suptitle ("SMOKE — ...", "REHEARSAL — ...") and its notice in the files' metadata; a figure of a generated
    stand-in (the dataset it is named after, or the general-domain set of a ``general_*`` figure) gets
    "GENERATED DATA — ". The PDF and SVG carry no creation date, so the same figure gives the same bytes.
    """
    name = name[:-4] if name.endswith(".png") else name
    if not name or slug(name) != name:
        raise fail("save_figure", f"figure name {name!r} must be lowercase [a-z0-9_.-]", f"use {slug(name)!r}")
    if _is_generated(profile, name):
        mark_generated(fig)
    if profile.label:
        mark_run(fig, profile.label)
    folder = reports_dir(profile, "figures")
    notice = profile.notice or None
    meta = {"png": {"Warning": notice} if notice else None, "pdf": {"Subject": notice, "CreationDate": None},
            "svg": {"Description": notice, "Date": None}}
    for fmt in ("svg", "pdf", "png"):  # the PNG last: whoever sees it finds its vector copies beside it
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight", metadata=meta[fmt])
        write_bytes(folder / f"{name}.{fmt}", buf.getvalue())
    return folder / f"{name}.png"


def _is_generated(profile: Profile, name: str) -> bool:
    """Whether a dataset the figure shows is a generated stand-in, as notebook 01 recorded it in
    ``tables/data_summary.csv`` (or the profile forces a fixture): the dataset it is named after
    (``NN_<what>__<dataset>__...``) and, for a ``general_*`` figure (medical against general-domain data), the
    profile's general-domain retrieval set as well."""
    parts = name.split("__")
    if len(parts) < 2:
        return False
    shown = [parts[1]]
    general = getattr(getattr(profile, "sota", None), "retrieval_dataset", "") or ""
    if parts[0].split("_", 1)[-1].startswith("general") and general:
        shown.append(general)
    return any(_generated_dataset(profile, ds) for ds in shown)


def _generated_dataset(profile: Profile, ds: str) -> bool:
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
    """Set the suptitle (identifiers in it replaced by their human names, :func:`medlib.outputs.names.humanize`;
    wrapped at 80 characters) and lay the figure out."""
    if title:
        title = humanize(title)
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


# Offsets (points) tried around a point for its label, nearest first; beyond 12 points a thin leader line joins them.
LABEL_OFFSETS = [(5, 5), (5, -12), (-8, 5), (-8, -12), (5, 16), (-8, 16), (5, -24), (-8, -24), (14, -3), (-14, -3),
                 (5, 28), (5, -36), (-8, 28), (-8, -36), (20, 40), (-20, 40), (20, -48), (-20, -48)]
MARKER_PX = 4.0  # half the side of the square a point's marker covers (pixels): labels keep off other points


def place_labels(fig: Figure, ax: Any, xs: np.ndarray, ys: np.ndarray, texts: list[str]) -> list[Any]:
    """Label each point so that no two labels overlap, no label covers another point's marker, and every label
    stays inside the axes (never over a tick label or the axis label). Each label takes the first free offset of
    :data:`LABEL_OFFSETS` inside the axes; a label with none free goes to a column right of the axes, in the
    order of its point's height, one line apart, joined to its point by a leader line. Call after the figure's
    layout is final (:func:`titled`). Returns the annotations."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer).padded(-2)
    pts = ax.transData.transform(np.column_stack([np.asarray(xs, float), np.asarray(ys, float)]))
    markers = [Bbox.from_extents(px - MARKER_PX, py - MARKER_PX, px + MARKER_PX, py + MARKER_PX) for px, py in pts]
    boxes: list[Any] = []
    placed: list[Any] = [None] * len(texts)
    side: list[int] = []
    for i, ((px, py), text) in enumerate(zip(pts, texts)):
        for dx, dy in LABEL_OFFSETS:
            ann = ax.annotate(text, (xs[i], ys[i]), textcoords="offset points", xytext=(dx, dy), fontsize=7,
                              ha="left" if dx >= 0 else "right", annotation_clip=False,
                              arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(dy) > 12 else None)
            ann.update_positions(renderer)  # where the offset puts the text (otherwise known only when drawn)
            box = Text.get_window_extent(ann, renderer).padded(1)  # the text, not its leader line
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in boxes) \
                    and not any(box.overlaps(m) for j, m in enumerate(markers) if j != i):
                boxes.append(box)
                placed[i] = ann
                break
            ann.remove()
        else:
            side.append(i)
    if side:  # the column right of the axes: stacked top-down in the order of the points' heights
        step = 9.0 / 72 * fig.dpi  # one 7-point line plus spacing, in pixels
        top = frame.y1
        for i in sorted(side, key=lambda i: -pts[i][1]):
            y = min(pts[i][1], top)
            top = y - step
            pos = ax.transAxes.inverted().transform((frame.x1 + 14, y))
            placed[i] = ax.annotate(texts[i], (xs[i], ys[i]), xycoords="data", xytext=pos, textcoords="axes fraction",
                                    fontsize=7, ha="left", va="center", annotation_clip=False,
                                    arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5})
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
