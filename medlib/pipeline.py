"""The glue the notebooks call: profile set-up, dataset iteration with skips, and one-call evaluated runs.

Each function here is a sequence of library calls that more than one notebook makes (load, score, save per
the output contract, plot). Notebooks keep parameters, calls and plots; the logic lives in the modules.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from .config import ModelSpec, Profile, TrainConfig, load_profile
from .data import DatasetSkipped, get_dataset
from .data.base import DatasetBundle
from .models import ClipBundle, load_model, resolve_device
from .results import load_runs, reports_dir, run_dir, run_name, save_retrieval_run, save_run, save_table
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
    return f"{head}\nprofile {P.name} (hash {P.hash()}), seed {P.seed}, device {P.device}, data {P.data_dir}"


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
                split: str = "test", extra: dict | None = None, threshold: Any = None) -> dict:
    """Write metrics + predictions for one run (the output contract) and return the metrics record."""
    return save_run(P, notebook=notebook, dataset=data.name, model=model, method=method, task=data.task,
                    split=split, y_true=data.splits[split].labels, y_score=y_score, class_names=data.class_names,
                    extra=extra, threshold=threshold)


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
              split: str = "test", extra: dict | None = None) -> dict:
    """Image->text and text->image Recall@1/5/10 on the held-out pairs, every caption of each image (Flickr30K/COCO:
    five; the standard protocol, :func:`medlib.metrics.retrieval_recall`).

    Saved as method ``<method>-retrieval`` so it never overwrites the classification run of the same model.
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
                              text_to_image=text_to_image, split=split, extra=extra)


def finetune(P: Profile, clip: ClipBundle, data: DatasetBundle, *, notebook: str, method: str, mode: str,
             cfg: TrainConfig, fresh: bool = False, evaluate: bool = True, trainer: Any = None,
             **train_kwargs: Any):
    """Train with the one engine (resumable under runs/<profile>/<run>/), evaluate the test split once, save.

    ``trainer``: ``medlib.train.train`` (default) or ``medlib.train.lp_ft`` (takes ``probe_epochs``).
    Returns ``(TrainResult, metrics record or None)``.
    """
    from .train import predict, train

    run = run_name(notebook, data.name, clip.name, method)
    result = (trainer or train)(clip, data, mode=mode, cfg=cfg, run_dir=run_dir(P, run), seed=P.seed,
                                class_texts=train_kwargs.pop("class_texts", None) or class_texts(P, data),
                                fresh=fresh, **train_kwargs)
    rec = None
    if evaluate:
        if mode == "contrastive":
            # Classify zero-shot style with the fine-tuned towers, exactly as notebook 02 does.
            y_score = zero_shot_y_score(P, result.model, data, "test", progress=False)
        else:
            y_score = predict(result, data.splits["test"].images, mode=mode)
        rec = save_scores(P, notebook=notebook, data=data, model=clip.name, method=method, y_score=y_score,
                          extra=train_extra(result, cfg))
    return result, rec


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


def few_shot(data: DatasetBundle, k: int, seed: int) -> DatasetBundle:
    """``data`` with its train split cut to ``k`` examples per class (k = 0: all), drawn with ``seed``.

    Val and test are untouched. Multi-label sets are not supported (shots per class are ill-defined there).
    """
    if k <= 0:
        return data
    if data.task != "multiclass":
        raise ValueError("few_shot needs a multiclass dataset")
    tr = data.splits["train"]
    rng = np.random.default_rng(seed)
    idx = np.sort(np.concatenate([rng.permutation(np.flatnonzero(tr.labels == c))[:k]
                                  for c in range(data.num_classes)]))
    return dataclasses.replace(data, splits={**data.splits, "train": tr.subset(idx)})


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


def earlier_run(P: Profile, notebook: str, data: DatasetBundle, model: str, method: str) -> dict | None:
    """The metrics record an earlier notebook wrote for this dataset/model/method, or None if it has not run."""
    from .results import load_run

    try:
        return load_run(P, run_name(notebook, data.name, model, method))
    except Exception:
        return None


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
