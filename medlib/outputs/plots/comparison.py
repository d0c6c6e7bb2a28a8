"""Comparison figures: bars with intervals, measured-vs-published bars, trade-off scatters, paired differences."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ...errors import fail
from ..names import axis_label, dataset_name, metric_name, method_name, remedy_name
from .figure import (NOT_COMPARABLE, all_zero_note, hatch_style, low_auroc_note, place_labels, reference_lines,
                     short_label, titled, unit_axis, whisker, wrap)


def bar_with_ci(df: pd.DataFrame, x: str, y: str, lo: str | None = None, hi: str | None = None,
                hue: str | None = None, title: str = "", hatch: str | None = None,
                horizontal: bool = False, majority: float | None = None) -> Figure:
    """Grouped bars of ``df[y]`` by ``x`` (and ``hue``) with 95% interval whiskers from ``lo``/``hi``
    (missing intervals drawn without whiskers). Rows where the boolean column ``hatch`` is true are hatched
    (e.g. published values next to measured ones). ``horizontal``: one bar per row, labels on the left (for many
    bars with long labels)."""
    df = df.reset_index(drop=True)
    xs = list(dict.fromkeys(df[x].astype(str)))
    if horizontal:
        if hue:
            raise fail("bar_with_ci", "hue is not drawn with horizontal=True", "pass hue=None or horizontal=False")
        return _hbar_with_ci(df, x, y, lo, hi, xs, title, hatch, majority)
    hues = list(dict.fromkeys(df[hue].astype(str))) if hue else [None]
    width = 0.8 / len(hues)
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(xs) * max(1, len(hues) * 0.6) + 2), 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for h_i, h in enumerate(hues):
        sub = df if h is None else df[df[hue].astype(str) == h]
        for _, row in sub.iterrows():
            pos = xs.index(str(row[x])) + (h_i - (len(hues) - 1) / 2) * width
            val, err = float(row[y]), whisker(row, float(row[y]), lo, hi)
            ax.bar(pos, val, width, yerr=err, capsize=3, color=colors[h_i % len(colors)], label=h,
                   **hatch_style(row, hatch))
    if hue:
        handles, labels = ax.get_legend_handles_labels()
        uniq: dict[str, Any] = {}
        for lab, hnd in zip(labels, handles):
            uniq.setdefault(lab, hnd)
        ax.legend(uniq.values(), uniq.keys(), fontsize=7, loc="best")
    if hatch:
        ax.set_xlabel("hatched bars = published values (quoted, not measured)")
    ax.set_xticks(range(len(xs)), [short_label(v, 22) for v in xs], rotation=30 if len(xs) > 3 else 0,
                  ha="right" if len(xs) > 3 else "center")
    metrics = df["metric"].astype(str).unique() if "metric" in df.columns else []
    ax.set_ylabel(metric_name(metrics[0]) if len(metrics) == 1 else axis_label(y))  # "accuracy", not "value"
    unit = unit_axis(df[y].tolist())
    if unit:
        ax.set_ylim(*unit)
    if majority is not None:
        ax.axhline(majority, color="darkred", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    all_zero_note(ax, df[y].tolist())
    return titled(fig, title)


def _hbar_with_ci(df: pd.DataFrame, x: str, y: str, lo: str | None, hi: str | None, xs: list[str], title: str,
                  hatch: str | None, majority: float | None = None) -> Figure:
    """One bar per row. Rows whose ``note`` says NOT COMPARABLE are greyed and their label says so; a ``metric``
    column of ``auroc`` draws the chance line at 0.5, ``majority`` (or a ``majority_rate`` column) the
    majority-class rate; AUROC below 0.5 gets a note. Long labels are wrapped (full names: the table)."""
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(xs) + 1.9))
    color = plt.rcParams["axes.prop_cycle"].by_key()["color"][0]
    notes = df["note"].astype(str) if "note" in df.columns else pd.Series([""] * len(df))
    nc = notes.str.contains(NOT_COMPARABLE, case=False, na=False)
    labels = {}
    for i, row in df.iterrows():
        pos = xs.index(str(row[x]))
        val, err = float(row[y]), whisker(row, float(row[y]), lo, hi)
        style = hatch_style(row, hatch)
        bar_color = color
        if nc.iloc[i]:
            bar_color, style = "0.75", {"hatch": "xx", "edgecolor": "0.45", "alpha": 0.8}
            labels[pos] = f"[{NOT_COMPARABLE}] " + str(row[x])
        ax.barh(pos, val, 0.7, xerr=err, capsize=3, color=bar_color, **style)
        right = val + (err[1][0] if err else 0.0)
        ax.text(right + 0.01, pos, f"{val:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(xs)), [short_label(labels.get(i, s), 34) for i, s in enumerate(xs)], fontsize=7)
    for i, tick in enumerate(ax.get_yticklabels()):
        if i in labels:
            tick.set_color("0.35")
    ax.invert_yaxis()
    metric = str(df["metric"].iloc[0]) if "metric" in df.columns and len(df) else y
    if majority is None and "majority_rate" in df.columns and df["majority_rate"].notna().any():
        majority = float(df["majority_rate"].dropna().iloc[0])
    if metric == "auroc":
        ax.axvline(0.5, color="0.3", ls="--", lw=1, label="chance (AUROC 0.5)")
        majority = None  # the majority-class rate is an accuracy; AUROC's chance level is 0.5
    if majority is not None:
        ax.axvline(majority, color="darkred", ls=":", lw=1.2, label=f"majority-class rate {majority:.3f}")
    if metric == "auroc" or majority is not None:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=7, frameon=False)
    unit = unit_axis(df[y].tolist())
    if unit:
        ax.set_xlim(0, 1.12)  # room for the value labels
    xlabel = metric_name(metric) + ("   (hatched = published, quoted, not measured)" if hatch else "")
    if nc.any():
        xlabel += f"\ngrey = {NOT_COMPARABLE} (different data, sample, split or resolution; see the table's note)"
    ax.set_xlabel(xlabel, fontsize=8)
    if metric == "auroc":
        low_auroc_note(ax, df[y].tolist())
    return titled(fig, title)


def tradeoff_scatter(df: pd.DataFrame, x: str, y: str, label: str, title: str = "") -> Figure:
    """Scatter of ``y`` against ``x``, each point annotated with ``df[label]`` (e.g. worst-class recall vs
    accuracy per remedy; remedy ids are shown by name). Labels never overlap each other, another point or the
    ticks (:func:`~.figure.place_labels`: a free offset inside the axes, else a column beside them). Axes carry
    human names (``general_R@5`` -> ``general-domain R@5``); metrics in [0, 1] are drawn on the fixed scale 0..1."""
    fig, ax = plt.subplots(figsize=(6.0, 4.4))
    ax.scatter(df[x], df[y], color="tab:blue", zorder=3)
    for setter, col in ((ax.set_xlim, x), (ax.set_ylim, y)):
        unit = unit_axis(df[col].tolist())
        if unit:
            setter(-0.02, 1.02)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(y))
    titled(fig, title or f"{axis_label(y)} vs {axis_label(x)}")
    names = [remedy_name(v) if label == "remedy" else method_name(str(v)) for v in df[label]]
    place_labels(fig, ax, df[x].to_numpy(dtype=float), df[y].to_numpy(dtype=float), names)
    return fig


def sota_bars(df: pd.DataFrame, title: str = "") -> Figure:
    """Horizontal bars of one dataset's comparison rows for one metric (:func:`medlib.studies.sota.sota_table`):
    measured solid with their 95% interval (several seeds: the mean, whiskers from the lowest to the highest seed), published hatched, published rows that are NOT COMPARABLE greyed with the
    mark in their label; model names wrapped (the full name stays in the table); the majority-class rate (accuracy)
    or AUROC 0.5 as a reference line."""
    df = df.reset_index(drop=True)
    metric = str(df["metric"].iloc[0]) if len(df) else ""
    labels = []
    for _, r in df.iterrows():
        text = wrap(f"{r['model']} · {method_name(r['method'])}", 45)
        if r["source"] == "measured" and pd.notna(r.get("n_seeds")) and r.get("n_seeds", 1) > 1:
            text += f"\n[mean of {int(r['n_seeds'])} seeds; whisker min–max]"
        if r["source"] != "measured":
            text += f"\n[{r.get('resolution') or '?'}; published]" + ("" if r.get("comparable") else " NOT COMPARABLE")
        labels.append(text)
    fig, ax = plt.subplots(figsize=(8.0, 0.42 * len(df) + 1.6))
    for i, r in df.iterrows():
        several = r["source"] == "measured" and pd.notna(r.get("n_seeds")) and r.get("n_seeds", 1) > 1
        err = whisker(r, float(r["value"]), "min", "max") if several else whisker(r, float(r["value"]), "ci_low",
                                                                                  "ci_high")
        if r["source"] == "measured":
            style = {"color": "tab:blue"}
        elif r.get("comparable"):
            style = {"color": "tab:orange", "hatch": "//", "edgecolor": "black"}
        else:
            style = {"color": "lightgrey", "hatch": "//", "edgecolor": "grey"}
        ax.barh(i, float(r["value"]), 0.7, xerr=err, capsize=3, **style)
        ax.text(float(r["value"]) + (err[1][0] if err else 0.0) + 0.01, i, f"{float(r['value']):.3f}", va="center",
                fontsize=7)
    majority = df["majority_rate"].dropna().iloc[0] if "majority_rate" in df and df["majority_rate"].notna().any() \
        else None
    reference_lines(ax, majority if metric in ("acc", "top3") else None, chance_auroc=metric == "auroc", vertical=True)
    ax.set_yticks(range(len(df)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(f"test {metric_name(metric)}: measured (blue), published (hatched; grey = NOT COMPARABLE)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    return titled(fig, title)


def paired_differences_plot(df: pd.DataFrame, title: str = "") -> Figure:
    """Forest plot of paired differences (rows of ``tables/paired_differences.csv``): each difference A − B with
    its 95% paired-bootstrap interval, a line at 0 (no difference)."""
    df = df.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(df) + 1.4))
    for i, r in df.iterrows():
        lo, hi = float(r["ci_low"]), float(r["ci_high"])
        color = "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:grey"
        ax.errorbar(r["diff"], i, xerr=[[r["diff"] - lo], [hi - r["diff"]]], fmt="o", color=color, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(df)), [wrap(_pair_label(r), 60) for r in df.itertuples()], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("difference A − B with 95% paired-bootstrap interval (green/red: interval excludes 0)")
    return titled(fig, title)


def _pair_label(r: Any) -> str:
    seed = "pooled over seeds" if str(r.seed) == "pooled" else f"seed {r.seed}"
    return (f"{dataset_name(r.dataset)}: {method_name(r.method_a)} − {method_name(r.method_b)} "
            f"({metric_name(r.metric)}, {seed})")
