"""The glue the notebooks call: profile set-up, dataset iteration with skips, and one-call evaluated runs.

Each function here is a sequence of library calls that more than one notebook makes (load, score, save per
the output contract, plot). Notebooks keep parameters, calls and plots; the logic lives in the modules.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from .config import ModelSpec, Profile, TrainConfig, load_profile
from .data import DatasetSkipped, get_dataset
from .data.base import DatasetBundle
from .errors import MedlibError
from .models import ClipBundle, load_model, resolve_device
from .results import (load_runs, reports_dir, run_dir, save_retrieval_run, save_run, save_table,
                      seeded_run_name)
from .text import class_prompts, templates_for

NOTEBOOKS = {
    "01": "01_data_prep",
    "02": "02_zero_shot_baseline",
    "03": "03_caption_finetune",
    "04": "04_label_finetune",
    "05": "05_class_imbalance",
    "06": "06_sota_comparison",
    "07": "07_general_retrieval",
}

SMOKE_BANNER = ("SMOKE RUN: a tiny random-init model on small local data. These numbers test the code path; "
                "they are NOT results.")


def setup(profile: str = "smoke", data_dir: str | None = None, seed: int | None = None,
          **overrides: Any) -> Profile:
    """Load the profile (notebook parameters override single keys), seed everything, print the banner."""
    P = load_profile(profile, {"seed": seed, **overrides}, data_dir=data_dir)
    torch.manual_seed(P.seed)
    np.random.seed(P.seed)
    print(banner(P))
    return P


def banner(P: Profile) -> str:
    head = SMOKE_BANNER if P.smoke else f"Profile {P.name!r}."
    return (f"{head}\nprofile {P.name} (hash {P.hash()}), seeds {P.seed_list} (for {', '.join(P.seeded_methods)}; "
            f"other runs seed {P.seed}), device {P.device}, data {P.data_dir}")


def seeds(P: Profile, kind: str) -> list[int]:
    """The seeds a trained method runs with: every seed of the profile for the kinds it lists in
    ``seeded_methods`` (caption_ft, label_ft, multilabel_ft, lp_ft, cnn, remedies), else the first seed only."""
    return P.seed_list if kind in P.seeded_methods else P.seed_list[:1]


def device(P: Profile) -> torch.device:
    return resolve_device(P.device)


def main_model(P: Profile) -> ModelSpec:
    """The profile's main CLIP (role 'clip', exactly one: checked when the profile loads)."""
    return next(m for m in P.models if m.role == "clip")


def load_clip(P: Profile, spec: ModelSpec | str) -> ClipBundle:
    spec = P.model(spec) if isinstance(spec, str) else spec
    return load_model(spec, device(P), seed=P.seed)


# ---- datasets -----------------------------------------------------------------------------------------


def datasets(P: Profile, names: list[str], notebook: str, refresh: bool = False) -> Iterator[DatasetBundle]:
    """Yield each named dataset's prepared splits; a dataset the profile does not configure (MIMIC-CXR without a
    local copy) is skipped, printed, and recorded in ``tables/skipped_datasets.csv`` for the report."""
    for name in names:
        try:
            data = get_dataset(P, name, refresh=refresh)
        except DatasetSkipped as exc:
            print(f"SKIPPED {name}: {exc}")
            note_skip(P, notebook, name, str(exc))
            continue
        yield data  # a generated stand-in was announced by the data layer (one line per dataset)


def note_skip(P: Profile, notebook: str, dataset: str, reason: str) -> None:
    path = reports_dir(P, "tables") / "skipped_datasets.csv"
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["notebook", "dataset", "reason"])
    old = old[~((old["notebook"] == notebook) & (old["dataset"] == dataset))]
    row = pd.DataFrame([{"notebook": notebook, "dataset": dataset, "reason": reason}])
    save_table(P, "skipped_datasets", pd.concat([old, row], ignore_index=True))


def data_summary(bundles: list[DatasetBundle]) -> pd.DataFrame:
    """One row per dataset x split x class: n, plus source, synthetic flag and licence."""
    rows = []
    for b in bundles:
        if b.task == "retrieval":  # image-text pairs, no classes: one row per split
            rows += [{"dataset": b.name, "task": b.task, "split": split, "class": "(pairs)", "n": len(s),
                      "source": b.source, "synthetic": b.synthetic, "license": b.license}
                     for split, s in b.splits.items() if len(s)]
            continue
        for split, per_class in b.manifest.get("counts", {}).items():
            for cls, n in per_class.items():
                rows.append({"dataset": b.name, "task": b.task, "split": split, "class": cls, "n": int(n),
                             "source": b.source, "synthetic": b.synthetic, "license": b.license})
    return pd.DataFrame(rows)


def split_sizes(bundles: list[DatasetBundle]) -> pd.DataFrame:
    """One row per dataset: images per split, task, number of classes, source, synthetic flag, licence."""
    rows = [{"dataset": b.name, "task": b.task, "classes": b.num_classes,
             **{split: len(b.splits[split]) if split in b.splits else 0 for split in ("train", "val", "test")},
             "source": b.source, "synthetic": b.synthetic, "license": b.license} for b in bundles]
    return pd.DataFrame(rows)


def templates(P: Profile, data: DatasetBundle) -> list[str]:
    return list(P.zero_shot.templates) or templates_for(data.domain)


def class_texts(P: Profile, data: DatasetBundle) -> list[list[str]]:
    return class_prompts(data.class_names, templates(P, data))


# ---- evaluated runs -----------------------------------------------------------------------------------


def save_scores(P: Profile, *, notebook: str, data: DatasetBundle, model: str, method: str, y_score: np.ndarray,
                split: str = "test", extra: dict | None = None, threshold: Any = None, seed: int | None = None) -> dict:
    """Write metrics + predictions for one run (the output contract) and return the metrics record.
    ``seed``: the run's training seed (default the profile's; other seeds get ``__s<seed>`` in the run name)."""
    return save_run(P, notebook=notebook, dataset=data.name, model=model, method=method, task=data.task,
                    split=split, y_true=data.splits[split].labels, y_score=y_score, class_names=data.class_names,
                    extra=extra, threshold=threshold, seed=seed)


def validation_metrics(data: DatasetBundle, y_score_val: np.ndarray, threshold: Any = None) -> dict:
    """Every metric of the validation split's predictions (no intervals): stored in a run's metrics file as
    ``extra.val_metrics`` so that choices between runs (the best imbalance remedy) are made on validation."""
    from .metrics import evaluate

    val = data.splits["val"]
    return evaluate(val.labels, y_score_val, data.task, data.class_names, n_boot=0, threshold=threshold)["metrics"]


def zero_shot_y_score(P: Profile, clip: ClipBundle, data: DatasetBundle, split: str = "test",
                      progress: bool = True) -> np.ndarray:
    """Class probabilities of ``split`` from the profile's prompt ensemble (multi-label: positive-vs-negative
    prompt pairs), for a pretrained or a contrastively fine-tuned model alike."""
    from .zeroshot import zero_shot_scores

    return zero_shot_scores(clip, data.splits[split].images, data.class_names, data.task, templates(P, data),
                            batch_size=P.zero_shot.batch_size, domain=data.domain, progress=progress)


def zero_shot(P: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str = NOTEBOOKS["02"],
              split: str = "test", method: str = "zero-shot") -> dict:
    """Zero-shot classification of ``split`` with the profile's prompt ensemble; saved per the contract."""
    y_score = zero_shot_y_score(P, clip, data, split)
    return save_scores(P, notebook=notebook, data=data, model=clip.name, method=method, y_score=y_score,
                       split=split, extra={"templates": templates(P, data), "model_display": clip.display})


def retrieval(P: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str, method: str,
              split: str = "test", extra: dict | None = None, seed: int | None = None) -> dict:
    """Image->text and text->image Recall@1/5/10 on the held-out pairs, every caption of each image (Flickr30K/COCO:
    five; the standard protocol, :func:`medlib.metrics.retrieval_recall`).

    Saved as method ``<method>-retrieval`` so it never overwrites the classification run of the same model;
    ``seed``: the training seed of a fine-tuned model (``__s<seed>`` in the run name unless the first).
    """
    from .data.base import caption_index
    from .zeroshot import encode_images, encode_texts

    s = data.splits[split]
    if s.captions is None:
        raise ValueError(f"{data.name} has no captions for retrieval")
    texts, text_to_image = caption_index(s)
    img = encode_images(clip, s.images, batch_size=P.zero_shot.batch_size, progress=False)
    txt = encode_texts(clip, texts, batch_size=P.zero_shot.batch_size)
    return save_retrieval_run(P, notebook=notebook, dataset=data.name, model=clip.name,
                              method=f"{method}-retrieval", image_emb=img, text_emb=txt,
                              text_to_image=text_to_image, split=split, extra=extra, seed=seed)


def finetune(P: Profile, clip: ClipBundle, data: DatasetBundle, *, notebook: str, method: str, mode: str,
             cfg: TrainConfig, fresh: bool = False, evaluate: bool = True, trainer: Any = None,
             seed: int | None = None, extra: dict | None = None, keep_weights: bool = True, **train_kwargs: Any):
    """Train with the one engine (resumable under runs/<profile>/<run>/), evaluate the test split once, save.

    ``trainer``: ``medlib.train.train`` (default) or ``medlib.train.lp_ft`` (takes ``probe_epochs``).
    ``seed``: the training seed (default the profile's); the run of any seed but the profile's first is named
    ``...__s<seed>``. The metrics file also stores the validation split's metrics (``extra.val_metrics``) and
    ``extra``. ``keep_weights=False``: a sweep's run whose weights nothing loads again; under the profile's
    ``keep_weights: reused`` its ``best.pt`` is removed once the test split is evaluated, and a re-run returns the
    saved metrics record (with ``TrainResult.model`` None) at once.
    Returns ``(TrainResult, metrics record or None)``.
    """
    from .train import lp_ft, predict, train

    seed = P.seed if seed is None else int(seed)
    run = seeded_run_name(P, notebook, data.name, clip.name, method, seed)
    texts = train_kwargs.pop("class_texts", None) or class_texts(P, data)
    D = P.distributed
    if D.nproc_per_node * D.nnodes > 1:  # several processes: torchrun runs the training, then resume it here
        from .train.launch import run_distributed

        kind = {train: "train", lp_ft: "lp_ft"}.get(trainer or train)
        run_distributed(P.model(clip.name), data, trainer=kind or repr(trainer), run_dir=run_dir(P, run),
                        kwargs={"mode": mode, "cfg": dataclasses.asdict(cfg), "seed": seed, "class_texts": texts,
                                "fresh": fresh, **train_kwargs},
                        nproc_per_node=D.nproc_per_node, nnodes=D.nnodes, node_rank=D.node_rank,
                        rdzv_backend=D.rdzv_backend, rdzv_endpoint=D.rdzv_endpoint, rdzv_id=D.rdzv_id,
                        backend=D.backend, device=P.device,
                        seed=P.seed)  # the MODEL's seed: each rank rebuilds `clip` as load_clip did; kwargs["seed"] trains
        fresh = False  # the finished run is loaded, not trained again
    result = (trainer or train)(clip, data, mode=mode, cfg=cfg, run_dir=run_dir(P, run), seed=seed,
                                class_texts=texts, fresh=fresh, **train_kwargs)
    if result.model is None:  # finished earlier, evaluated, weights not kept: its saved metrics are the result
        return result, saved_result(P, run)
    rec = None
    if evaluate:
        if mode == "contrastive":
            # Classify zero-shot style with the fine-tuned towers, exactly as notebook 02 does.
            y_val = zero_shot_y_score(P, result.model, data, "val", progress=False)
            y_score = zero_shot_y_score(P, result.model, data, "test", progress=False)
        else:
            y_val = predict(result, data.splits["val"].images, mode=mode)
            y_score = predict(result, data.splits["test"].images, mode=mode)
        extra = {**train_extra(result, cfg), "val_metrics": validation_metrics(data, y_val), **(extra or {})}
        rec = save_scores(P, notebook=notebook, data=data, model=clip.name, method=method, y_score=y_score,
                          extra=extra, seed=seed)
        if not keep_weights:
            release_weights(P, run_dir(P, run))
    return result, rec


def release_weights(P: Profile, folder: Path) -> None:
    """Drop a finished, evaluated sweep run's ``best.pt`` where the profile keeps only reused weights."""
    if P.keep_weights == "reused":
        from .train.checkpoint import drop_weights

        drop_weights(folder)


def saved_result(P: Profile, run: str) -> dict:
    """The metrics record of ``run`` whose weights were dropped; a one-line error when it is missing."""
    from .results import load_run

    try:
        return load_run(P, run)
    except Exception:  # noqa: BLE001 - any unreadable record means the same fix
        raise MedlibError(f"{run_dir(P, run)}: the run finished without keeping its weights and its metrics record "
                          f"is missing. Fix: re-run it with fresh=True") from None


def train_extra(result: Any, cfg: TrainConfig) -> dict:
    hist = result.history
    return {"best_epoch": int(result.best_epoch), "best_val_metric": float(result.best_metric),
            "val_metric_name": result.metric_name, "epochs_run": int((hist["epoch"] > 0).sum()),  # row 0: before training
            "train_seconds": float(hist["seconds"].sum()) if "seconds" in hist else None,
            "train_config": dataclasses.asdict(cfg), "run_dir": str(result.run_dir)}


def runs(P: Profile, notebook: str | None = None, task: str | None = None) -> pd.DataFrame:
    """The metrics files written so far (optionally one notebook's / one task's) as a table."""
    df = load_runs(P)
    if df.empty:
        return df
    if notebook:
        df = df[df["notebook"] == notebook]
    if task:
        df = df[df["task"] == task]
    return df.reset_index(drop=True)


def few_shot(data: DatasetBundle, k: int, seed: int, draw: int = 0, val: bool = True) -> DatasetBundle:
    """``data`` with its train split (and, with ``val``, its validation split) cut to ``k`` examples per class
    (k = 0: all), the ``draw``-th random draw for ``seed``.

    Draws are nested: for one (seed, draw) each class's examples are taken in one fixed random order, so the
    1-shot subset lies inside the 4-shot one and so on. The validation subset is drawn the same way (its own
    stream), so a k-shot run selects its epoch on k labelled examples per class, not on the full validation split.
    Test is untouched. Multi-label sets are not supported (shots per class are ill-defined there).
    """
    if k <= 0:
        return data
    if data.task != "multiclass":
        raise ValueError("few_shot needs a multiclass dataset")
    splits = {**data.splits, "train": _k_per_class(data.splits["train"], k, data.num_classes, (seed, draw, 0))}
    if val:
        splits["val"] = _k_per_class(data.splits["val"], k, data.num_classes, (seed, draw, 1))
    return dataclasses.replace(data, splits=splits)


def _k_per_class(split, k: int, num_classes: int, entropy: tuple[int, ...]):
    rng = np.random.default_rng(list(entropy))
    idx = np.concatenate([rng.permutation(np.flatnonzero(split.labels == c))[:k] for c in range(num_classes)])
    return split.subset(np.sort(idx))


def probe_config(P: Profile) -> TrainConfig:
    """The linear-probe configuration: the label config with a frozen image tower, probe epochs and probe lr."""
    c = P.label_finetune
    return dataclasses.replace(c.train, lock_image=True, epochs=c.probe_epochs, lr=c.probe_lr)


def few_shot_config(cfg: TrainConfig, n_train: int, min_steps: int) -> TrainConfig:
    """``cfg`` stretched so a k-shot run takes at least ``min_steps`` optimizer steps (a 2-image training set has
    one step per epoch); warmup shrinks to a tenth of the run and early stopping is off (the best epoch is still
    chosen on the validation split)."""
    steps_per_epoch = max(1, -(-n_train // cfg.batch_size))
    epochs = max(cfg.epochs, -(-min_steps // steps_per_epoch))
    return dataclasses.replace(cfg, epochs=epochs, warmup_steps=min(cfg.warmup_steps, max(1, epochs * steps_per_epoch // 10)),
                               patience=epochs)


def earlier_run(P: Profile, notebook: str, data: DatasetBundle | str, model: str, method: str,
                seed: int | None = None) -> dict | None:
    """The metrics record an earlier notebook wrote for this dataset/model/method (and seed; default the
    profile's first), or None if it has not run."""
    from .results import load_run

    name = data if isinstance(data, str) else data.name
    try:
        return load_run(P, seeded_run_name(P, notebook, name, model, method, seed))
    except Exception:
        return None


def seed_runs(P: Profile, notebook: str, data: DatasetBundle | str, model: str, method: str) -> list[dict]:
    """The metrics records of one method, one per profile seed that has run (first seed first)."""
    recs = [earlier_run(P, notebook, data, model, method, s) for s in P.seed_list]
    return [r for r in recs if r]


# Remedy name -> keyword arguments of medlib.train.train (per task). "threshold" reuses the "none" model.
def remedy_kwargs(remedy: str, task: str, P: Profile) -> dict[str, Any]:
    c = P.imbalance
    weighted = "weighted_bce" if task == "multilabel" else "weighted_ce"
    plain = "bce" if task == "multilabel" else "ce"
    table: dict[str, dict[str, Any]] = {
        "none": {"loss": plain},
        "inverse_freq": {"loss": weighted, "loss_kwargs": {"weights": "inverse_freq"}},
        "effective_number": {"loss": weighted, "loss_kwargs": {"weights": "effective_number", "beta": c.cb_beta}},
        "focal": {"loss": "focal", "loss_kwargs": {"gamma": c.focal_gamma}},
        "logit_adjust": {"loss": "logit_adjust", "loss_kwargs": {"tau": c.la_tau}},
        "balanced_sampler": {"loss": plain, "sampler": "balanced"},
    }
    if remedy not in table:
        raise ValueError(f"unknown remedy {remedy!r}; known: {sorted(table) + ['threshold']}")
    return table[remedy]


# ---- paired comparisons of the headline methods --------------------------------------------------------------

# The test metrics each comparison is reported on (the report's abstract quotes the first).
PAIRED_METRICS = {"multiclass": ["acc", "auroc"], "multilabel": ["auroc"]}
# The imbalance remedies are chosen on this validation metric (mean over seeds); it is the metric they aim at
# (mean recall over classes), and the paired difference "best remedy - none" is reported on it and on
# worst-class recall.
REMEDY_SELECT_METRIC = "balanced_acc"


def remedy_runs(P: Profile, dataset: str, model: str | None = None) -> dict[str, list[dict]]:
    """Notebook 05's runs of each remedy of the profile (one per seed that has run), by remedy name."""
    model = model or main_model(P).name
    out = {r: seed_runs(P, NOTEBOOKS["05"], dataset, model, f"remedy-{r}") for r in P.imbalance.remedies}
    return {r: recs for r, recs in out.items() if recs}


def headline_comparisons(P: Profile) -> list:
    """The paired comparisons the report's abstract states, per dataset, for the main model: label FT - zero-shot,
    caption FT - zero-shot, label FT - caption FT, and the remedy chosen on validation - no remedy."""
    from .tables import Comparison, best_remedy

    model = main_model(P).name
    done = load_runs(P)
    out = []
    for ds in sorted(done["dataset"].unique()) if not done.empty else []:
        zs = seed_runs(P, NOTEBOOKS["02"], ds, model, "zero-shot")[:1]
        cap = seed_runs(P, NOTEBOOKS["03"], ds, model, "caption-ft-plain")
        lab = seed_runs(P, NOTEBOOKS["04"], ds, model, "label-ft") or seed_runs(P, NOTEBOOKS["04"], ds, model,
                                                                                  "multilabel-ft")
        task = (zs or cap or lab or [{}])[0].get("task")
        metrics = PAIRED_METRICS.get(task, [])
        # "label FT" is the multi-label fine-tune on multi-label sets (method_a names which).
        for name, a, b, fixed in [("label FT - zero-shot", lab, zs, True), ("caption FT - zero-shot", cap, zs, True),
                                  ("label FT - caption FT", lab, cap, False)]:
            if a and b:
                out.append(Comparison(name, ds, model, a, b, metrics, fixed_b=fixed))
        remedies = remedy_runs(P, ds, model)
        best = best_remedy(remedies, REMEDY_SELECT_METRIC)
        if best and "none" in remedies:
            out.append(Comparison("best remedy - none", ds, model, remedies[best], remedies["none"],
                                  [REMEDY_SELECT_METRIC, "worst_class_recall"],
                                  label_a=f"best remedy: {best} (chosen on validation {REMEDY_SELECT_METRIC})",
                                  label_b="no remedy",
                                  selected_on=f"validation {REMEDY_SELECT_METRIC}, mean over seeds"))
    return out


def paired_differences(P: Profile) -> pd.DataFrame:
    """Compute the headline paired differences (:func:`headline_comparisons`) from the saved predictions and
    write ``tables/paired_differences.csv``; bootstrap with the profile's ``zero_shot.n_boot`` and ``seed``."""
    from .tables import paired_differences as table

    df = table(P, headline_comparisons(P), n_boot=P.zero_shot.n_boot, seed=P.seed)
    save_table(P, "paired_differences", df)
    return df


# ---- runs notebooks 04-06 make in loops ----------------------------------------------------------------------


def few_shot_run(P: Profile, clip: ClipBundle, data: DatasetBundle, *, notebook: str, method: str, k: int,
                 draw: int, fresh: bool = False) -> dict:
    """One label-efficiency run: ``method`` (``linear-probe`` or ``label-ft``) trained on draw ``draw`` of ``k``
    examples per class (train and validation subsets drawn alike, see :func:`few_shot`), stretched to the profile's
    minimum number of steps; saved as ``<method>-<k>shot-d<draw>``. Returns the metrics record."""
    cfg = P.label_finetune
    sub = few_shot(data, k, P.seed, draw)
    base_cfg = probe_config(P) if method == "linear-probe" else cfg.train
    k_cfg = few_shot_config(base_cfg, len(sub.splits["train"]), cfg.few_shot_min_steps)
    _, rec = finetune(P, clip, sub, notebook=notebook, method=f"{method}-{k}shot-d{draw}", mode="label", cfg=k_cfg,
                      fresh=fresh, keep_weights=False,
                      extra={"shots_per_class": k, "draw": draw, "n_train": len(sub.splits["train"]),
                             "n_val": len(sub.splits["val"])})
    return rec


def threshold_remedy(P: Profile, data: DatasetBundle, result: Any, *, notebook: str, model: str,
                     seed: int | None = None) -> dict:
    """The decision-threshold remedy on top of the ``none`` model ``result``: thresholds tuned on the validation
    split for the profile's ``imbalance.threshold_metric`` (per label for multi-label sets, on p(class 1) for binary
    ones), saved as ``remedy-threshold`` with the raw test scores and the thresholds (the metrics apply
    ``score >= threshold``) and the validation metrics, cross-fitted (:func:`medlib.imbalance.cross_fitted_threshold_metrics`)
    so that choosing a remedy on validation does not favour the one whose thresholds were tuned there."""
    from .imbalance import cross_fitted_threshold_metrics, tune_thresholds
    from .train import predict

    mode = "multilabel" if data.task == "multilabel" else "label"
    metric = P.imbalance.threshold_metric
    val_labels = data.splits["val"].labels
    val_score = predict(result, data.splits["val"].images, mode=mode)
    thr = tune_thresholds(val_labels, val_score, metric=metric)  # validation only
    test_score = predict(result, data.splits["test"].images, mode=mode)
    extra = {"thresholds": thr.tolist(), "threshold_metric": metric,
             # what a selection on validation reads: thresholds scored on validation rows that did not tune them
             "val_metrics": cross_fitted_threshold_metrics(val_labels, val_score, data.task, data.class_names,
                                                           metric=metric, seed=P.seed if seed is None else seed),
             "val_metrics_in_sample": validation_metrics(data, val_score, threshold=thr)}
    return save_scores(P, notebook=notebook, data=data, model=model, method="remedy-threshold", y_score=test_score,
                       threshold=thr, extra=extra, seed=seed)


def cnn_baseline(P: Profile, data: DatasetBundle, *, notebook: str, seed: int | None = None,
                 fresh: bool = False) -> dict:
    """The supervised ResNet-18 of notebook 06 trained on ``data`` with ``seed`` (resumable), evaluated on test
    (and validation, stored as ``extra.val_metrics``); saved as model ``resnet18``, method ``supervised``."""
    from . import cnn

    seed = P.seed if seed is None else int(seed)
    S, dev = P.sota, device(P)
    run = seeded_run_name(P, notebook, data.name, "resnet18", "supervised", seed)
    res = cnn.train_cnn(data, epochs=S.cnn_epochs, batch_size=S.cnn_batch_size, lr=S.cnn_lr, seed=seed,
                        run_dir=run_dir(P, run), weights=S.cnn_weights, device=dev, fresh=fresh)
    y_val = cnn.predict_cnn(res.model, data.splits["val"].images, data.task, device=dev)
    y_score = cnn.predict_cnn(res.model, data.splits["test"].images, data.task, device=dev)
    return save_scores(P, notebook=notebook, data=data, model="resnet18", method="supervised", y_score=y_score,
                       seed=seed, extra={"weights": res.weights, "best_epoch": res.best_epoch,
                                         "val_metrics": validation_metrics(data, y_val)})


def best_finetuned(P: Profile, data: DatasetBundle | str) -> dict | None:
    """The 03/04 run on ``data`` (first seed; sweeps, few-shot and WiSE-FT runs excluded) with the best validation
    score (:func:`medlib.tables.best_by_validation`); None when none has run."""
    from .tables import best_by_validation

    name = data if isinstance(data, str) else data.name
    done = runs(P)
    if done.empty:
        return None
    done = done[(done["dataset"] == name) & done["notebook"].isin([NOTEBOOKS["03"], NOTEBOOKS["04"]])
                & ~done["method"].str.contains("shot|wise", regex=True) & (done["seed"] == P.seed)]
    return best_by_validation([earlier_run(P, r.notebook, name, r.model, r.method) for r in done.itertuples()])


def test_split_description(P: Profile, data: DatasetBundle) -> str:
    """What our test split of ``data`` is, for the comparison table's ``split`` column."""
    if data.synthetic:
        return "test split of a generated fixture (not the real data)"
    fallback = data.manifest.get("fallback")
    if fallback:
        return f"test split of {fallback} (loaded in place of {data.name})"
    source = P.dataset(data.name).source
    return {"medmnist": "official MedMNIST test split",
            "chestxray14": "official NIH test list (test_list.txt)",
            "pubmedvision": f"test split of our own sample of {P.dataset(data.name).n or 'all'} records"}.get(
        source, "our test split")
