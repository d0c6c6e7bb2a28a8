"""Evaluated runs: score a split, train with the one engine and evaluate once, save per the output contract, and
find the runs earlier notebooks wrote.

A training run resumes from its checkpoint, or returns at once when it has finished -- unless its settings changed:
each run folder records the settings it was trained with (``settings.json``: mode, variant, training config, seed,
model, data, class prompts); a run whose settings differ is trained again by itself, with one printed line naming
the run and what changed, while untouched runs are reused (:func:`start_over`). ``fresh=True`` (or
``./run_all.sh --fresh``: ``$MEDLIB_FRESH`` names the notebook) starts every run of the notebook over, each once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pandas as pd

from ..config import Profile, TrainConfig
from ..data.base import DatasetBundle, caption_index
from .. import progress
from ..errors import MedlibError
from ..files import write_json
from ..metrics import evaluate, multilabel_thresholds
from ..models import ClipBundle
from ..outputs.records import load_run, load_runs, run_dir, save_retrieval_run, save_run, seeded_run_name
from ..outputs.tables import best_by_validation
from ..train import predict, train
from ..train.checkpoint import drop_weights
from ..train.launch import run_distributed
from ..models.zeroshot import encode_images, encode_texts, zero_shot_scores
from ..config.notebooks import NOTEBOOKS
from .setup import class_phrases, class_texts, domain, templates


def save_scores(profile: Profile, *, notebook: str, data: DatasetBundle, model: str, method: str, y_score: np.ndarray,
                split: str = "test", extra: dict | None = None, threshold: Any = None, seed: int | None = None) -> dict:
    """Write metrics + predictions for one run (the output contract) and return the metrics record.
    ``seed``: the run's training seed (default the profile's; other seeds get ``__s<seed>`` in the run name)."""
    return save_run(profile, notebook=notebook, dataset=data.name, model=model, method=method, task=data.task,
                    split=split, y_true=data.splits[split].labels, y_score=y_score, class_names=data.class_names,
                    extra=extra, threshold=threshold, seed=seed)


def validation_metrics(data: DatasetBundle, y_score_val: np.ndarray, threshold: Any = None) -> dict:
    """Every metric of the validation split's predictions (no intervals): stored in a run's metrics file as
    ``extra.val_metrics`` so that choices between runs (the best imbalance remedy) are made on validation."""
    val = data.splits["val"]
    return evaluate(val.labels, y_score_val, data.task, data.class_names, n_boot=0, threshold=threshold)["metrics"]


def zero_shot_y_score(profile: Profile, clip: ClipBundle, data: DatasetBundle, split: str = "test",
                      progress: bool = True) -> np.ndarray:
    """Class probabilities of ``split`` from the profile's prompt ensemble (multi-label: positive-vs-negative
    prompt pairs), for a pretrained or a contrastively fine-tuned model alike."""
    return zero_shot_scores(clip, data.splits[split].images, class_phrases(profile, data), data.task,
                            templates(profile, data), batch_size=profile.zero_shot.batch_size,
                            domain=domain(profile, data), progress=progress)


def zero_shot(profile: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str = NOTEBOOKS["02"],
              split: str = "test", method: str = "zero-shot") -> dict:
    """Zero-shot classification of ``split`` with the profile's prompt ensemble; saved per the contract."""
    y_score = zero_shot_y_score(profile, clip, data, split)
    return save_scores(profile, notebook=notebook, data=data, model=clip.name, method=method, y_score=y_score,
                       split=split, extra={"templates": templates(profile, data), "class_texts": class_phrases(profile, data),
                              "model_display": clip.display})


def retrieval(profile: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str, method: str,
              split: str = "test", extra: dict | None = None, seed: int | None = None) -> dict:
    """Image->text and text->image Recall@1/5/10 on the held-out pairs, every caption of each image (Flickr30K/COCO:
    five; the standard protocol, :func:`medlib.metrics.retrieval_recall`).

    Saved as method ``<method>-retrieval`` so it never overwrites the classification run of the same model;
    ``seed``: the training seed of a fine-tuned model (``__s<seed>`` in the run name unless the first).
    """
    s = data.splits[split]
    if s.captions is None:
        raise ValueError(f"{data.name} has no captions for retrieval")
    texts, text_to_image = caption_index(s)
    img = encode_images(clip, s.images, batch_size=profile.zero_shot.batch_size, progress=False)
    txt = encode_texts(clip, texts, batch_size=profile.zero_shot.batch_size)
    return save_retrieval_run(profile, notebook=notebook, dataset=data.name, model=clip.name,
                              method=f"{method}-retrieval", image_emb=img, text_emb=txt,
                              text_to_image=text_to_image, split=split, extra=extra, seed=seed)


SETTINGS_FILE = "settings.json"  # in each run folder: the settings the run was trained with
FRESH_ENV = "MEDLIB_FRESH"  # ./run_all.sh --fresh: the notebook whose runs start over
_STARTED_OVER: set[str] = set()  # run folders this process started over already (a run is started over once)


def data_identity(data: DatasetBundle) -> dict:
    """What a run's data is: name, classes, images per split, and the digest of the files it was read from."""
    return {"name": data.name, "classes": [str(c) for c in data.class_names],
            "n": {k: len(v) for k, v in data.splits.items()}, "files": data.manifest.get("sha256", {})}


def run_settings(*, mode: str, variant: str, cfg: TrainConfig | dict, seed: int, model: str, data: DatasetBundle,
                 class_texts: Any = None, **train_kwargs: Any) -> dict:
    """The settings that define one training run (compared by :func:`start_over`): a change in any trains it again.
    Probe settings count only for the variants that probe."""
    if variant not in ("linear_probe", "lp_ft"):
        train_kwargs = {k: v for k, v in train_kwargs.items() if k not in ("probe_epochs", "probe_lr")}
    extra = {k: v for k, v in train_kwargs.items() if k not in ("progress", "on_epoch_end")}
    texts = None if class_texts is None else hashlib.sha256(json.dumps(class_texts).encode()).hexdigest()[:16]
    return json_safe({"mode": mode, "variant": variant, "seed": int(seed), "model": model,
                      "cfg": dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else dict(cfg),
                      "data": data_identity(data), "class_texts": texts, **extra})


def json_safe(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples as lists, other objects as their repr)."""
    return json.loads(json.dumps(obj, default=repr))


@contextlib.contextmanager
def progress_of(run: str, folder: Path) -> Iterator[None]:
    """A ``done`` progress event for a run trained outside the engine's loop (the ResNet-18): trained when its
    ``last.pt`` changed, else reused."""
    def stamp() -> float | None:
        with contextlib.suppress(OSError):
            return (Path(folder) / "last.pt").stat().st_mtime_ns
        return None

    before, t0 = stamp(), time.time()
    yield
    progress.event("done", run, seconds=round(time.time() - t0, 1), trained=stamp() != before)


def changes(old: dict, new: dict, prefix: str = "") -> list[str]:
    """``["cfg.epochs 3 -> 4", ...]``: every setting that differs between two settings records."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, "(none)"), new.get(key, "(none)")
        if isinstance(a, dict) and isinstance(b, dict):
            out += changes(a, b, f"{prefix}{key}.")
        elif a != b:
            short = (lambda v: v if len(repr(v)) <= 40 else "...")
            out.append(f"{prefix}{key} {short(a)} -> {short(b)}")
    return out


def start_over(run: str, folder: Path, settings: dict, fresh: bool = False, notebook: str = "") -> bool:
    """Whether run ``run`` (in ``folder``) trains from scratch, and record its settings there (``settings.json``).

    True when asked (``fresh``, or ``./run_all.sh --fresh`` for ``notebook``; once per run and process, so a run
    another run reuses is not trained twice) or when the settings recorded by its last training differ from
    ``settings``: then one line names the run and what changed. A run with no record resumes as before."""
    folder = Path(folder)
    asked = (fresh or (bool(notebook) and os.environ.get(FRESH_ENV) == notebook)) and str(folder) not in _STARTED_OVER
    record = folder / SETTINGS_FILE
    try:
        old = json.loads(record.read_text()) if record.is_file() else None
    except (OSError, json.JSONDecodeError):
        old = None
    changed = changes(old, settings) if isinstance(old, dict) else []
    if changed and not asked:
        reason = "; ".join(changed[:3]) + (f"; {len(changed) - 3} more" if len(changed) > 3 else "")
        print(f"RETRAIN {run}: its settings changed ({reason})")
        progress.event("retrain", run, reason=reason)
        asked = True
    if asked:
        _STARTED_OVER.add(str(folder))
    if old != settings:
        folder.mkdir(parents=True, exist_ok=True)
        write_json(record, settings)
    return asked


def train_run(profile: Profile, clip: ClipBundle, data: DatasetBundle, *, run: str, notebook: str, mode: str,
              cfg: TrainConfig, seed: int, variant: str = "fine_tune", fresh: bool = False,
              launch: Callable[[bool], None] | None = None, **train_kwargs: Any):
    """:func:`medlib.train.train` for run ``run`` under runs/<profile>/<run>/: trained again when its settings
    changed (:func:`start_over`), resumed or reused otherwise; per-epoch progress events for the console.
    ``launch(fresh)``: trains it elsewhere first (torchrun), then this call loads the finished run."""
    folder = run_dir(profile, run)
    settings = run_settings(mode=mode, variant=variant, cfg=cfg, seed=seed, model=clip.name, data=data,
                            **train_kwargs)
    fresh = start_over(run, folder, settings, fresh, notebook)
    if launch is not None:
        launch(fresh)
        fresh = False  # the finished run is loaded, not trained again
    probe = train_kwargs.get("probe_epochs") or cfg.epochs
    stages = {"linear_probe": [probe], "lp_ft": [probe, cfg.epochs]}.get(variant, [cfg.epochs])
    events = progress.EpochEvents(run, stages)
    t0 = time.time()

    def call(start_fresh: bool):
        return train(clip, data, mode=mode, cfg=cfg, variant=variant, run_dir=folder, seed=seed, fresh=start_fresh,
                     on_epoch_end=events, **train_kwargs)

    try:
        result = call(fresh)
    except MedlibError as exc:  # a checkpoint from before settings were recorded, written with other settings
        if fresh or "different settings" not in str(exc):
            raise
        print(f"RETRAIN {run}: its checkpoint was written with other settings")
        progress.event("retrain", run, reason="checkpoint written with other settings")
        result = call(True)
    progress.event("done", run, seconds=round(time.time() - t0, 1), trained=events.last > 0 or launch is not None)
    return result


def finetune(profile: Profile, clip: ClipBundle, data: DatasetBundle, *, notebook: str, method: str, mode: str,
             cfg: TrainConfig, variant: str = "fine_tune", fresh: bool = False, evaluate: bool = True,
             seed: int | None = None, extra: dict | None = None, keep_weights: bool = True, **train_kwargs: Any):
    """Train with :func:`train_run` (resumable under runs/<profile>/<run>/; trained again by itself when its
    settings changed), evaluate the test split once, save.

    ``variant``: ``fine_tune``, ``linear_probe`` or ``lp_ft`` (these two take ``probe_epochs`` and ``probe_lr``).
    ``seed``: the training seed (default the profile's); the run of any seed but the profile's first is named
    ``...__s<seed>``. The metrics file also stores the validation split's metrics (``extra.val_metrics``) and
    ``extra``. A multi-label fine-tune's thresholded test metrics (per-label P/R/F1, confusion) use per-label
    thresholds chosen on validation (:func:`medlib.metrics.multilabel_thresholds`; the record keeps the 0.5 view as
    ``at_0.5``), except notebook 05's ``remedy-*`` runs, compared at 0.5 by design (its ``threshold`` remedy is the
    tuned one). ``keep_weights=False``: a sweep's run whose weights nothing loads again; under the profile's
    ``keep_weights: reused`` its ``best.pt`` is removed once the test split is evaluated, and a re-run returns the
    saved metrics record (with ``TrainResult.model`` None) at once.
    Returns ``(TrainResult, metrics record or None)``.
    """
    seed = profile.seed if seed is None else int(seed)
    run = seeded_run_name(profile, notebook, data.name, clip.name, method, seed)
    texts = train_kwargs.pop("class_texts", None) or class_texts(profile, data)
    dist = profile.distributed
    launch = None
    if dist.nproc_per_node * dist.nnodes > 1:  # several processes: torchrun runs the training, then resume it here
        def launch(start_fresh: bool) -> None:
            run_distributed(profile.model(clip.name), data, run_dir=run_dir(profile, run),
                            kwargs={"mode": mode, "cfg": dataclasses.asdict(cfg), "variant": variant, "seed": seed,
                                    "class_texts": texts, "fresh": start_fresh, **train_kwargs},
                            nproc_per_node=dist.nproc_per_node, nnodes=dist.nnodes, node_rank=dist.node_rank,
                            rdzv_backend=dist.rdzv_backend, rdzv_endpoint=dist.rdzv_endpoint, rdzv_id=dist.rdzv_id,
                            backend=dist.backend, device=profile.device,
                            seed=profile.seed)  # the MODEL's seed: each rank rebuilds `clip` as load_clip did; kwargs["seed"] trains
    result = train_run(profile, clip, data, run=run, notebook=notebook, mode=mode, cfg=cfg, seed=seed,
                       variant=variant, fresh=fresh, launch=launch, class_texts=texts, **train_kwargs)
    if result.model is None:  # finished earlier, evaluated, weights not kept: its saved metrics are the result
        return result, saved_result(profile, run)
    rec = None
    if evaluate:
        if mode == "contrastive":
            # Classify zero-shot style with the fine-tuned towers, exactly as notebook 02 does.
            y_val = zero_shot_y_score(profile, result.model, data, "val", progress=False)
            y_score = zero_shot_y_score(profile, result.model, data, "test", progress=False)
        else:
            y_val = predict(result, data.splits["val"].images, mode=mode)
            y_score = predict(result, data.splits["test"].images, mode=mode)
        extra = {**train_extra(result, cfg), "val_metrics": validation_metrics(data, y_val), **(extra or {})}
        # multi-label fine-tunes decide at per-label thresholds chosen on validation (0.5 kept as a second view);
        # notebook 05 compares its remedies at 0.5 by design
        thr = None
        if mode == "multilabel" and not method.startswith("remedy-"):
            thr, rule = multilabel_thresholds(data.splits["val"].labels, y_val)
            extra.update(rule)
        rec = save_scores(profile, notebook=notebook, data=data, model=clip.name, method=method, y_score=y_score,
                          extra=extra, seed=seed, threshold=thr)
        if not keep_weights:
            release_weights(profile, run_dir(profile, run))
    return result, rec


def release_weights(profile: Profile, folder: Path) -> None:
    """Drop a finished, evaluated sweep run's ``best.pt`` where the profile keeps only reused weights."""
    if profile.keep_weights == "reused":
        drop_weights(folder)


def saved_result(profile: Profile, run: str) -> dict:
    """The metrics record of ``run`` whose weights were dropped; a one-line error when it is missing."""
    try:
        return load_run(profile, run)
    except Exception:  # noqa: BLE001 - any unreadable record means the same fix
        raise MedlibError(f"{run_dir(profile, run)}: the run finished without keeping its weights and its metrics record "
                          f"is missing. Fix: re-run it with fresh=True") from None


def train_extra(result: Any, cfg: TrainConfig) -> dict:
    """What a metrics record says of its training run; ``train_config``: the configuration it trained with
    (``result.cfg``, e.g. a linear probe's frozen tower and probe epochs), else ``cfg``."""
    hist = result.history
    cfg = getattr(result, "cfg", None) or cfg
    return {"best_epoch": int(result.best_epoch), "best_val_metric": float(result.best_metric),
            "val_metric_name": result.metric_name, "epochs_run": int((hist["epoch"] > 0).sum()),  # row 0: before training
            "train_seconds": float(hist["seconds"].sum()) if "seconds" in hist else None,
            "train_config": dataclasses.asdict(cfg), "run_dir": str(result.run_dir)}


def runs(profile: Profile, notebook: str | None = None, task: str | None = None) -> pd.DataFrame:
    """The metrics files written so far (optionally one notebook's / one task's) as a table."""
    df = load_runs(profile)
    if df.empty:
        return df
    if notebook:
        df = df[df["notebook"] == notebook]
    if task:
        df = df[df["task"] == task]
    return df.reset_index(drop=True)


def earlier_run(profile: Profile, notebook: str, data: DatasetBundle | str, model: str, method: str,
                seed: int | None = None) -> dict | None:
    """The metrics record an earlier notebook wrote for this dataset/model/method (and seed; default the
    profile's first), or None if it has not run."""
    name = data if isinstance(data, str) else data.name
    try:
        return load_run(profile, seeded_run_name(profile, notebook, name, model, method, seed))
    except Exception:
        return None


def seed_runs(profile: Profile, notebook: str, data: DatasetBundle | str, model: str, method: str) -> list[dict]:
    """The metrics records of one method, one per profile seed that has run (first seed first)."""
    recs = [earlier_run(profile, notebook, data, model, method, s) for s in profile.seed_list]
    return [r for r in recs if r]


def best_finetuned(profile: Profile, data: DatasetBundle | str) -> dict | None:
    """The 03/04 run on ``data`` (first seed; sweeps, few-shot and WiSE-FT runs excluded) with the best validation
    score (:func:`medlib.outputs.tables.best_by_validation`); None when none has run."""
    name = data if isinstance(data, str) else data.name
    done = runs(profile)
    if done.empty:
        return None
    done = done[(done["dataset"] == name) & done["notebook"].isin([NOTEBOOKS["03"], NOTEBOOKS["04"]])
                & ~done["method"].str.contains("shot|wise", regex=True) & (done["seed"] == profile.seed)]
    return best_by_validation([earlier_run(profile, r.notebook, name, r.model, r.method) for r in done.itertuples()])
