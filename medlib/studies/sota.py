"""Comparison with the state of the art (notebook 06): the supervised CNN baseline, our test split's
description, and the tables of measured next to published numbers."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from ..config import Profile
from ..data.base import DatasetBundle
from ..outputs.references import published
from ..outputs.records import run_dir, seeded_run_name
from ..outputs.tables import ci_of, majority_rate, seed_summary
from ..train import cnn
from .runs import data_identity, json_safe, progress_of, save_scores, start_over, validation_metrics
from .setup import device


def cnn_baseline(profile: Profile, data: DatasetBundle, *, notebook: str, seed: int | None = None,
                 fresh: bool = False) -> dict:
    """The supervised ResNet-18 of notebook 06 trained on ``data`` with ``seed`` (resumable), evaluated on test
    (and validation, stored as ``extra.val_metrics``); saved as model ``resnet18``, method ``supervised``."""
    seed = profile.seed if seed is None else int(seed)
    sota_cfg, dev = profile.sota, device(profile)
    run = seeded_run_name(profile, notebook, data.name, "resnet18", "supervised", seed)
    folder = run_dir(profile, run)
    settings = {"trainer": "resnet18", "epochs": sota_cfg.cnn_epochs, "batch_size": sota_cfg.cnn_batch_size,
                "lr": sota_cfg.cnn_lr, "seed": seed, "weights": sota_cfg.cnn_weights, "data": data_identity(data)}
    with progress_of(run, folder):  # trained again by itself when these settings changed
        res = cnn.train_cnn(data, epochs=sota_cfg.cnn_epochs, batch_size=sota_cfg.cnn_batch_size, lr=sota_cfg.cnn_lr,
                            seed=seed, run_dir=folder, weights=sota_cfg.cnn_weights, device=dev,
                            fresh=start_over(run, folder, json_safe(settings), fresh, notebook))
    y_val = cnn.predict_cnn(res.model, data.splits["val"].images, data.task, device=dev)
    y_score = cnn.predict_cnn(res.model, data.splits["test"].images, data.task, device=dev)
    return save_scores(profile, notebook=notebook, data=data, model="resnet18", method="supervised", y_score=y_score,
                       seed=seed, extra={"weights": res.weights, "best_epoch": res.best_epoch,
                                         "val_metrics": validation_metrics(data, y_val)})


def test_split_description(profile: Profile, data: DatasetBundle) -> str:
    """What our test split of ``data`` is, for the comparison table's ``split`` column."""
    if data.synthetic:
        return "test split of a generated fixture (not the real data)"
    fallback = data.manifest.get("fallback")
    if fallback:
        return f"test split of {fallback} (loaded in place of {data.name})"
    source = profile.dataset(data.name).source
    return {"medmnist": "official MedMNIST test split",
            "chestxray14": "official NIH test list (test_list.txt)",
            "pubmedvision": f"test split of our own sample of {profile.dataset(data.name).n or 'all'} records"}.get(
        source, "our test split")


# The metrics each task is compared on in notebook 06 (and its comparison table).
HEADLINE = {"multiclass": ["acc", "auroc", "top3"], "multilabel": ["auroc"]}


SOTA_COLUMNS = ["dataset", "model", "method", "metric", "value", "sd", "min", "max", "n_seeds", "ci_low", "ci_high",
                "resolution", "split", "majority_rate", "source", "comparable", "note"]


def _not_comparable(note: str, reasons: list[str]) -> str:
    if not reasons:
        return note
    rest = note[len("NOT COMPARABLE: "):] if note.startswith("NOT COMPARABLE: ") else note
    return "NOT COMPARABLE: " + "; ".join([*reasons, rest] if rest else reasons)


def sota_table(measured: list[dict], tasks: dict[str, str], synthetic: dict[str, bool],
               display: dict[str, str] | None = None, neighbours: dict[str, list[str]] | None = None,
               sizes: dict[str, int] | None = None, splits: dict[str, str] | None = None) -> pd.DataFrame:
    """Notebook 06's comparison: our measured rows (``source = measured``; mean over seeds with ``sd``, ``min``,
    ``max``; the 95% bootstrap interval for a single-seed run) and published rows (``source`` = the citation), on each dataset's
    headline metrics, with each row's input ``resolution`` and test ``split`` and the dataset's majority-class rate.

    ``tasks``/``synthetic``/``sizes``/``splits`` map dataset -> task / whether our data there is a generated fixture
    / our image side in px / a description of our test split; ``neighbours`` maps a dataset to other published
    datasets with the same labels (chestxray14 -> chestmnist). Published rows always carry a ``note``; it starts
    with NOT COMPARABLE where our data is generated, the published resolution differs from ours, the published
    number is from another dataset, or it is on another sample/split (already so marked in the references).
    """
    display, neighbours, sizes, splits = display or {}, neighbours or {}, sizes or {}, splits or {}
    rows = []
    by_run: dict[tuple, list[dict]] = {}
    for r in measured:
        by_run.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    majority = {ds: majority_rate(recs[0]) for (ds, _, _), recs in by_run.items()}
    for (ds, model, method), recs in by_run.items():
        recs = sorted(recs, key=lambda r: r.get("seed") or 0)
        for m in HEADLINE[tasks[ds]]:
            vals = pd.Series([r["metrics"].get(m) for r in recs], dtype=float).dropna()
            if vals.empty:
                continue
            lo, hi = ci_of(recs[0], m) if len(vals) == 1 else (None, None)  # several seeds: sd and min-max instead
            weights = (recs[0].get("extra") or {}).get("weights")
            rows.append({"dataset": ds, "model": display.get(model, model), "method": method, "metric": m,
                         "value": vals.mean(), "sd": vals.std(), "min": vals.min(), "max": vals.max(),
                         "n_seeds": len(vals), "ci_low": lo, "ci_high": hi,
                         "resolution": f"{sizes[ds]} px" if ds in sizes else "", "split": splits.get(ds, "ours"),
                         "majority_rate": majority.get(ds), "source": "measured", "comparable": True,
                         "note": f"weights: {weights}" if weights else ""})
    for name, task in tasks.items():
        for source_ds in [name, *neighbours.get(name, [])]:
            pub = published(dataset=source_ds)
            pub = pub[(pub["label"] == "") & pub["metric"].isin(HEADLINE[task])]
            for p in pub.itertuples():
                reasons = []
                if synthetic.get(name):
                    reasons.append("our data here is a generated fixture")
                px = next((int(t) for t in str(p.resolution).split(" ")[:1] if t.isdigit()), None)
                if name in sizes and px is not None and px != sizes[name]:
                    reasons.append(f"published at {p.resolution}, ours at {sizes[name]} px")
                if source_ds != name:
                    reasons.append(f"published on {source_ds}, not {name}")
                note = _not_comparable(p.note, reasons)
                rows.append({"dataset": name, "model": p.model, "method": p.method, "metric": p.metric,
                             "value": p.value, "sd": None, "min": None, "max": None, "n_seeds": None,
                             "ci_low": None, "ci_high": None, "resolution": p.resolution, "split": p.split,
                             "majority_rate": majority.get(name), "source": p.source,
                             "comparable": not note.startswith("NOT COMPARABLE"), "note": note})
    return pd.DataFrame(rows, columns=SOTA_COLUMNS)


def study_table(measured: Sequence[dict], published_rows: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """The PubMedVision study's table: our runs (mean over seeds with the spread, ``source = measured``) and the
    published rows (``source`` = the citation, each marked NOT COMPARABLE in ``note``: a different sample)."""
    ours = seed_summary([r for r in measured if r], list(metrics)).rename(columns={"mean": "value"})
    ours = ours.assign(source="measured", note="")
    pub = published_rows[published_rows["metric"].isin(metrics)]
    pub = pub.assign(note=["NOT COMPARABLE: " + n if not str(n).startswith("NOT COMPARABLE") else n
                           for n in pub["note"]])
    cols = ["dataset", "model", "method", "metric", "value", "sd", "min", "max", "n_seeds", "majority_rate", "source",
            "note"]
    return pd.concat([ours.reindex(columns=cols), pub.reindex(columns=cols)], ignore_index=True)
