"""Paired comparisons of two methods on the same test rows: which runs are compared (:class:`Comparison`, the
headline comparisons the report's abstract states) and the one table of paired differences."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ..config import Profile
from ..errors import MedlibError, fail
from ..metrics import (combined_p, holm, mean_statistic, paired_bootstrap, paired_interval, retrieval_hits,
                       seed_summary, verdict)
from ..outputs.records import load_predictions, load_run, load_runs, reports_base
from ..outputs.tables import method_label
from .remedies import REMEDY_SELECT_METRIC, best_remedy, remedy_runs
from .runs import seed_runs
from ..config.notebooks import NOTEBOOKS
from .setup import main_model


PAIRED_COLUMNS = ["method_a", "method_b", "dataset", "metric", "seed", "diff", "ci_low", "ci_high", "n",
                  "comparison", "model", "method_id_a", "method_id_b", "runs_a", "runs_b", "n_boot", "boot_seed",
                  "selected_on", "n_seeds", "variance", "resampled", "seed_ci_low", "seed_ci_high", "p_value",
                  "p_holm", "verdict", "boot_replicates", "boot_redrawn"]
# What the table's interval columns mean (the report's methods section says the same).
VARIANCE_ONE_RUN = "test {unit}; conditional on the trained run"
VARIANCE_SEEDS = "test {unit} and training seeds ({k})"


@dataclass
class Comparison:
    """``A - B`` on one dataset: the runs of each method (one per seed). ``fixed_b``: B has no training randomness
    (zero-shot), so its one run is paired with every seed of A; otherwise runs are paired by seed."""
    comparison: str  # e.g. "label FT - zero-shot"
    dataset: str
    model: str
    runs_a: list[dict]
    runs_b: list[dict]
    metrics: list[str]
    label_a: str = ""
    label_b: str = ""
    fixed_b: bool = False
    selected_on: str = ""  # how A was chosen when it was (e.g. "validation balanced_acc, mean over seeds")

    def pairs(self) -> list[tuple[int, dict, dict]]:
        """(seed, run of A, run of B) for every seed both methods have."""
        if self.fixed_b:
            return [(int(a["seed"]), a, self.runs_b[0]) for a in self.runs_a] if self.runs_b else []
        by_seed = {int(b["seed"]): b for b in self.runs_b}
        return [(int(a["seed"]), a, by_seed[int(a["seed"])]) for a in self.runs_a if int(a["seed"]) in by_seed]


# The test metrics each comparison is reported on (the report's abstract quotes the first).
PAIRED_METRICS = {"multiclass": ["acc", "auroc"], "multilabel": ["auroc"]}


def headline_comparisons(profile: Profile) -> list:
    """The paired comparisons the report's abstract states, per dataset, for the main model: label FT - zero-shot,
    caption FT - zero-shot, label FT - caption FT, and the remedy chosen on validation - no remedy."""
    model = main_model(profile).name
    done = load_runs(profile)
    out = []
    for ds in sorted(done["dataset"].unique()) if not done.empty else []:
        zs = seed_runs(profile, NOTEBOOKS["02"], ds, model, "zero-shot")[:1]
        cap = seed_runs(profile, NOTEBOOKS["03"], ds, model, "caption-ft-plain")
        lab = seed_runs(profile, NOTEBOOKS["04"], ds, model, "label-ft") or seed_runs(profile, NOTEBOOKS["04"], ds, model,
                                                                                  "multilabel-ft")
        task = (zs or cap or lab or [{}])[0].get("task")
        metrics = PAIRED_METRICS.get(task, [])
        # "label FT" is the multi-label fine-tune on multi-label sets (method_a names which).
        for name, a, b, fixed in [("label FT - zero-shot", lab, zs, True), ("caption FT - zero-shot", cap, zs, True),
                                  ("label FT - caption FT", lab, cap, False)]:
            if a and b:
                out.append(Comparison(name, ds, model, a, b, metrics, fixed_b=fixed))
        remedies = remedy_runs(profile, ds, model)
        best = best_remedy(remedies, REMEDY_SELECT_METRIC)
        if best and "none" in remedies:
            out.append(Comparison("best remedy - none", ds, model, remedies[best], remedies["none"],
                                  [REMEDY_SELECT_METRIC, "worst_class_recall"],
                                  label_a=f"best remedy: {best} (chosen on validation {REMEDY_SELECT_METRIC})",
                                  label_b="no remedy",
                                  selected_on=f"validation {REMEDY_SELECT_METRIC}, mean over seeds"))
    return out


def paired_differences(reports: Any, comparisons: Sequence[Comparison], n_boot: int, seed: int) -> pd.DataFrame:
    """The paired-differences table (``tables/paired_differences.csv``): for each comparison and metric one row
    per seed and one ``pooled`` row (mean of the per-seed differences), each recomputable from the runs'
    predictions files with :func:`paired_difference` (``runs_a``/``runs_b`` list them, ``;``-separated, in pair
    order).

    Per row: ``variance`` says which sources of variance its interval ``ci_low``-``ci_high`` carries (a per-seed
    row or a single pair: the test split's sampling, conditional on the trained runs; a pooled row over several
    seeds: the test sampling and the training seeds, by the two-level bootstrap of
    :func:`medlib.metrics.paired_interval`) and ``resampled`` what the bootstrap draws (test rows; retrieval: test
    images with all their captions). Pooled rows over several seeds also carry the seed-level t-interval
    (``seed_ci_low``, ``seed_ci_high``). ``p_value``: the two-sided p-value of a zero difference (pooled rows: the
    larger of the bootstrap's and the seed-level t-test's, :func:`medlib.metrics.combined_p`). ``p_holm``: Holm's
    adjustment of ``p_value`` within the family of this table's pooled rows (the comparisons reported together;
    empty on per-seed rows). ``verdict`` (:func:`medlib.metrics.verdict`): ``A higher``, ``B higher`` or
    ``not resolved`` (``n/a`` without an interval); on pooled rows it needs both intervals to exclude zero on the
    same side and ``p_holm`` < 0.05. ``boot_replicates``/``boot_redrawn``: replicates used and replicates redrawn
    because they lost a class of the test split.
    """
    rows = []
    for c in comparisons:
        pairs = c.pairs()
        if not pairs:
            continue
        groups = [(str(s), [a["run"]], [b["run"]]) for s, a, b in pairs]
        groups.append(("pooled", [a["run"] for _, a, _ in pairs], [b["run"] for _, _, b in pairs]))
        for metric in c.metrics:
            for seed_label, ra, rb in groups:
                try:
                    d = paired_difference(reports, ra, rb, metric, n_boot=n_boot, seed=seed)
                except MedlibError as exc:  # the metric is undefined for one of the runs (e.g. AUROC, one class)
                    print(f"paired difference skipped ({c.comparison}, {c.dataset}, {metric}): {exc}")
                    break
                k = d["n_seeds"]
                rows.append({"method_a": c.label_a or method_label(c.runs_a[0]["method"]),
                             "method_b": c.label_b or method_label(c.runs_b[0]["method"]),
                             "dataset": c.dataset, "metric": metric, "seed": seed_label, "diff": d["diff"],
                             "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"],
                             "comparison": c.comparison, "model": c.model, "method_id_a": c.runs_a[0]["method"],
                             "method_id_b": c.runs_b[0]["method"], "runs_a": ";".join(ra), "runs_b": ";".join(rb),
                             "n_boot": n_boot, "boot_seed": seed, "selected_on": c.selected_on, "n_seeds": k,
                             "variance": (VARIANCE_SEEDS if k > 1 else VARIANCE_ONE_RUN).format(unit=d["unit"], k=k),
                             "resampled": d["resampled"], "seed_ci_low": d["seed_ci_low"],
                             "seed_ci_high": d["seed_ci_high"], "p_value": combined_p(d["p_value"], d["seed_p_value"]),
                             "p_holm": None, "boot_replicates": d["replicates"], "boot_redrawn": d["redrawn"]})
    pooled = [i for i, r in enumerate(rows) if r["seed"] == "pooled"]
    for i, p in zip(pooled, holm([rows[i]["p_value"] for i in pooled])):
        rows[i]["p_holm"] = p
    for r in rows:
        r["verdict"] = verdict(r["ci_low"], r["ci_high"], r["seed_ci_low"], r["seed_ci_high"], r["p_holm"])
    return pd.DataFrame(rows, columns=PAIRED_COLUMNS)


def paired_difference(profile: Profile | str | Path, runs_a: Sequence[str], runs_b: Sequence[str], metric: str,
                      *, n_boot: int, seed: int) -> dict[str, Any]:
    """Paired bootstrap of ``metric(A) - metric(B)`` recomputed from the two methods' predictions files.

    ``runs_a[i]`` and ``runs_b[i]`` are paired (the same seed, or a seed-free run such as zero-shot repeated); one
    pair gives a per-seed difference, several the pooled one (:func:`medlib.metrics.paired_bootstrap` says how).
    Every run must hold the same test rows (equal ``y_true``); multi-label thresholds come from the predictions.
    Retrieval runs compare Recall@K (``metric`` such as ``t2i_R@5``) over their per-query hit vectors, resampling
    test images with all their captions. Returns :func:`medlib.metrics.paired_bootstrap`'s keys plus ``unit``
    (``rows`` / ``images``) and ``resampled`` (what one bootstrap draw takes).
    """
    if len(runs_a) != len(runs_b) or not runs_a:
        raise fail("paired_difference", f"need paired runs, got {len(runs_a)} and {len(runs_b)}",
                   "pass one run of each method per seed")
    base = reports_base(profile)
    records = [load_run(base, r) for r in (*runs_a, *runs_b)]
    preds = [load_predictions(base, r) for r in (*runs_a, *runs_b)]
    task = records[0]["task"]
    y_true = preds[0]["y_true"]
    for rec, pred in zip(records, preds):
        if rec["task"] != task or not np.array_equal(pred["y_true"], y_true):
            raise fail(base / rec["predictions"], f"run {rec['run']} does not hold the same test rows as "
                       f"{records[0]['run']}", "compare runs on the same dataset and split")
    k = len(runs_a)
    if task == "retrieval":
        return _paired_recall(preds[:k], preds[k:], metric, n_boot=n_boot, seed=seed)
    thresholds = [p.get("threshold") for p in preds]
    out = paired_bootstrap(y_true, [p["y_score"] for p in preds[:k]], [p["y_score"] for p in preds[k:]], task,
                           [str(c) for c in preds[0]["class_names"]], metric, n_boot=n_boot, seed=seed,
                           thresholds_a=thresholds[:k], thresholds_b=thresholds[k:])
    return {**out, "unit": "rows", "resampled": "test rows (a replicate that loses a class of the test split is "
                                                "redrawn)"}


def _paired_recall(preds_a: Sequence[dict], preds_b: Sequence[dict], metric: str, *, n_boot: int,
                   seed: int) -> dict[str, Any]:
    """:func:`paired_difference` for retrieval runs: the mean over pairs of Recall@K(A) - Recall@K(B), by
    :func:`medlib.metrics.paired_interval` over the test IMAGES: a replicate draws images with replacement and
    weighs each text->image query (caption) by its image's draw (``text_to_image``), so an image's captions are
    drawn together in both directions (they share the image, and a gain is often the image's)."""
    hits = []
    for p in (*preds_a, *preds_b):
        by_metric = retrieval_hits(p["i2t_rank"], p["t2i_rank"])
        if metric not in by_metric:
            raise fail("paired_difference", f"unknown retrieval metric {metric!r}", f"use one of {sorted(by_metric)}")
        hits.append(by_metric[metric])
    k = len(preds_a)
    n_img = len(preds_a[0]["i2t_rank"])
    unit = np.asarray(preds_a[0]["text_to_image"]) if metric.startswith("t2i") else None
    per_pair = [float(a.mean() - b.mean()) for a, b in zip(hits[:k], hits[k:])]
    out = paired_interval([(mean_statistic(a, unit), mean_statistic(b, unit)) for a, b in zip(hits[:k], hits[k:])],
                          n_img, n_boot, seed)
    return {"diff": float(np.mean(per_pair)), **out, "n": int(len(hits[0])), "n_boot": int(n_boot),
            "boot_seed": int(seed), **seed_summary(per_pair), "unit": "images",
            "resampled": "test images, each with all its captions"}
