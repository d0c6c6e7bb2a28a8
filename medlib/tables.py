"""Tables the notebooks show, built from metrics records (``results.save_run`` / ``load_run``) and published
references. Functions take records and return DataFrames or text; the notebooks display and save them."""

from __future__ import annotations

import pandas as pd

from .references import published

# The metrics each task is compared on in notebook 06 (and its comparison table).
HEADLINE = {"multiclass": ["acc", "auroc", "top3"], "multilabel": ["auroc"]}
SOTA_COLUMNS = ["dataset", "model", "method", "metric", "value", "ci_low", "ci_high", "source", "note"]


def _ci(record: dict, metric: str) -> tuple[float | None, float | None]:
    lo, hi = (record.get("ci95", {}).get(metric) or [None, None])
    return lo, hi


def metric_rows(records: list[dict], metrics: list[str]) -> pd.DataFrame:
    """Long table (dataset, model, method, metric, value, ci_low, ci_high, n) from metrics records."""
    rows = []
    for r in records:
        for m in metrics:
            v = r["metrics"].get(m)
            if v is None:
                continue
            lo, hi = _ci(r, m)
            rows.append({"dataset": r["dataset"], "model": r["model"], "method": r["method"], "metric": m,
                         "value": v, "ci_low": lo, "ci_high": hi, "n": r.get("n")})
    return pd.DataFrame(rows)


def best_by_validation(records: list[dict]) -> dict | None:
    """The classification record whose training run had the highest *validation* score (``extra.best_val_metric``);
    test scores are never used to choose."""
    scored = [r for r in records if r and r.get("task") != "retrieval"
              and (r.get("extra") or {}).get("best_val_metric") is not None]
    return max(scored, key=lambda r: r["extra"]["best_val_metric"]) if scored else None


def remedy_table(records: dict[str, dict], metrics: list[str]) -> pd.DataFrame:
    """One row per remedy: each metric with its 95% interval (``<m>``, ``<m>_lo``, ``<m>_hi``)."""
    rows = []
    for remedy, rec in records.items():
        row: dict = {"remedy": remedy}
        for m in metrics:
            row[m] = rec["metrics"].get(m)
            row[f"{m}_lo"], row[f"{m}_hi"] = _ci(rec, m)
        rows.append(row)
    return pd.DataFrame(rows)


def mark_best(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Display copy of a remedy table: ``value [lo, hi]`` strings, the best value of each metric starred."""
    shown = table[["remedy"]].copy()
    for m in metrics:
        if not table[m].notna().any():
            continue
        best = table[m].max()
        shown[m] = [("★ " if v == best else "") + (f"{v:.3f} [{lo:.3f}, {hi:.3f}]" if pd.notna(lo) else f"{v:.3f}")
                    for v, lo, hi in zip(table[m], table[f"{m}_lo"], table[f"{m}_hi"])]
    return shown


def remedy_conclusions(dataset: str, table: pd.DataFrame, metrics: list[str], baseline: str = "none") -> list[str]:
    """One sentence per metric, computed from the table: which remedy is best and what the baseline gives."""
    lines = []
    by_remedy = table.set_index("remedy")
    for m in metrics:
        if not table[m].notna().any():
            continue
        winner = table.loc[table[m].idxmax(), "remedy"]
        base = f"; `{baseline}` gives {by_remedy.loc[baseline, m]:.3f}" if baseline in by_remedy.index else ""
        lines.append(f"- **{dataset}**, {m}: best is `{winner}` ({table[m].max():.3f}{base}).")
    return lines


def sota_table(measured: list[dict], tasks: dict[str, str], synthetic: dict[str, bool],
               display: dict[str, str] | None = None, neighbours: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Notebook 06's comparison: our measured rows (``source = measured``) and published rows (``source`` = the
    citation), on each dataset's headline metrics.

    ``tasks``/``synthetic`` map dataset -> task / whether our data there is a generated fixture; ``neighbours``
    maps a dataset to other published datasets with the same labels (chestxray14 -> chestmnist). Published rows
    always carry a ``note``; it says NOT COMPARABLE on generated data and names the dataset a neighbour row is from.
    """
    display, neighbours = display or {}, neighbours or {}
    rows = []
    for r in measured:
        for m in HEADLINE[tasks[r["dataset"]]]:
            v = r["metrics"].get(m)
            if v is None:
                continue
            lo, hi = _ci(r, m)
            weights = (r.get("extra") or {}).get("weights")
            rows.append({"dataset": r["dataset"], "model": display.get(r["model"], r["model"]), "method": r["method"],
                         "metric": m, "value": v, "ci_low": lo, "ci_high": hi, "source": "measured",
                         "note": f"weights: {weights}" if weights else ""})
    for name, task in tasks.items():
        for source_ds in [name, *neighbours.get(name, [])]:
            pub = published(dataset=source_ds)
            pub = pub[(pub["label"] == "") & pub["metric"].isin(HEADLINE[task])]
            for p in pub.itertuples():
                note = p.note
                if source_ds != name:
                    note = f"published on {source_ds}, not {name}; {note}"
                if synthetic.get(name):
                    note = f"NOT COMPARABLE: our data here is a generated fixture; {note}"
                rows.append({"dataset": name, "model": p.model, "method": p.method, "metric": p.metric,
                             "value": p.value, "ci_low": None, "ci_high": None, "source": p.source, "note": note})
    return pd.DataFrame(rows, columns=SOTA_COLUMNS)
