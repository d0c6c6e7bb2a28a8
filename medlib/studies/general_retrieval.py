"""Notebook 07's study: caption fine-tuning on small general-domain training sets (Flickr30K, COCO).

For each retrieval set of ``profile.retrieval_study``: zero-shot Recall@K on the test split (every caption of each
image), then contrastive fine-tunes on nested training subsets (``train_sizes``: 1k, 5k, all images) under the
augmentation ablation (:data:`AUGMENTATIONS`: none, image, text, both), plus the label-free variants
(:data:`VARIANTS`) on the largest subset with both augmentations; one run per seed. Every run is evaluated once on
the test split with :func:`medlib.studies.runs.retrieval` (its predictions file keeps the per-query ranks), and
:func:`comparisons` pairs it with zero-shot on the same queries for
:func:`medlib.studies.comparisons.paired_differences` (paired bootstrap over test images, each drawn with all its
captions, and over seeds for the pooled rows).

Text augmentation = the engine samples one of an image's captions per step (``TrainConfig.text_augment`` with
``Split.all_captions``), from a pool that also holds ``perturbed_copies`` simple perturbations of each caption
(:func:`perturb_caption`: word dropout and adjacent-word swaps, EDA-style). Without it, each image keeps its first
caption for the whole run.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pandas as pd

from ..config import Profile, TrainConfig
from ..data.base import DatasetBundle, Split
from ..metrics import RETRIEVAL_KS
from ..models import ClipBundle
from ..outputs.records import run_dir, seeded_run_name
from ..train import wise_interpolate
from .comparisons import Comparison
from .runs import release_weights, retrieval, saved_result, train_extra, train_run
from .setup import seeds as method_seeds


AUGMENTATIONS = {"none": (False, False), "image": (True, False), "text": (False, True), "both": (True, True)}
VARIANTS = ("lock_text", "lock_image", "wise_ft")
METRICS = [f"{d}_R@{k}" for d in ("i2t", "t2i") for k in RETRIEVAL_KS]
ZERO_SHOT = "zero-shot"


# ---- what is compared ---------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Arm:
    """One fine-tuning run of the study."""
    n_train: int  # training images asked for (0 = all)
    augmentation: str  # key of AUGMENTATIONS
    variant: str = ""  # "" or one of VARIANTS

    @property
    def method(self) -> str:
        """``ft-n1000-both`` / ``ft-nall-both-lock_text`` (the saved run adds ``-retrieval``)."""
        return f"ft-n{self.n_train or 'all'}-{self.augmentation}" + (f"-{self.variant}" if self.variant else "")


def arms(profile: Profile) -> list[Arm]:
    """Every (training size x augmentation) run, then the variants on the largest size with both augmentations."""
    study_cfg = profile.retrieval_study
    out = [Arm(n, a) for n in study_cfg.train_sizes for a in study_cfg.augmentations]
    largest = 0 if 0 in study_cfg.train_sizes else max(study_cfg.train_sizes, default=0)
    return out + [Arm(largest, "both", v) for v in study_cfg.variants]


def seeds(profile: Profile) -> list[int]:
    """The seeds of the study's fine-tunes: every seed of the profile where ``seeded_methods`` lists
    ``retrieval_ft`` (full profile: the same three seeds as the rest), else the first seed only (smoke budget)."""
    return method_seeds(profile, "retrieval_ft")


# ---- training data ------------------------------------------------------------------------------------------


def train_subset(split: Split, n: int, seed: int) -> Split:
    """The first ``n`` images of one seeded permutation (0 or n >= len: all): subsets of one seed are nested, so a
    larger training set adds images to a smaller one and the sizes differ only by the images added."""
    if n <= 0 or n >= len(split):
        return split
    order = np.random.default_rng([seed, 7]).permutation(len(split))
    return split.subset(np.sort(order[:n]))


def perturb_caption(text: str, rng: np.random.Generator, word_dropout: float = 0.1, word_swap: float = 0.1) -> str:
    """A simple caption perturbation (EDA's random deletion and swap, Wei & Zou 2019): each word dropped with
    probability ``word_dropout`` (never all of them), then each adjacent pair swapped with ``word_swap``.
    Own code: a few lines, where a text-augmentation library would bring a large dependency (nlpaug, NLTK data)."""
    words = text.split()
    keep = [w for w in words if rng.random() >= word_dropout] or [words[int(rng.integers(len(words)))]]
    for i in range(len(keep) - 1):
        if rng.random() < word_swap:
            keep[i], keep[i + 1] = keep[i + 1], keep[i]
    return " ".join(keep)


def with_perturbations(split: Split, copies: int, word_dropout: float, word_swap: float, seed: int) -> Split:
    """``split`` whose caption pool per image (``all_captions``) also holds ``copies`` perturbations of each of its
    captions; ``captions`` (the first, original caption) is unchanged. Deterministic given ``seed``."""
    per = split.captions_per_image()
    if copies <= 0 or per is None:
        return split
    rng = np.random.default_rng([seed, 11])
    pool = [list(caps) + [perturb_caption(c, rng, word_dropout, word_swap) for _ in range(copies) for c in caps]
            for caps in per]
    return dataclasses.replace(split, all_captions=pool)


def training_data(profile: Profile, data: DatasetBundle, arm: Arm, seed: int) -> DatasetBundle:
    """``data`` with its train split cut to the arm's subset (and, for text augmentation, perturbed captions added
    to each image's pool). Val and test are untouched."""
    study_cfg = profile.retrieval_study
    tr = train_subset(data.splits["train"], arm.n_train, seed)
    if AUGMENTATIONS[arm.augmentation][1]:
        tr = with_perturbations(tr, study_cfg.perturbed_copies, study_cfg.word_dropout, study_cfg.word_swap, seed)
    return dataclasses.replace(data, splits={**data.splits, "train": tr})


def train_config(profile: Profile, arm: Arm, n_train: int) -> TrainConfig:
    """The study's TrainConfig for one arm: augmentation switches, locked tower of a variant, and enough epochs
    for ``min_steps`` optimizer steps on a small subset (early stopping then off; the best epoch is still chosen
    on the validation split)."""
    study_cfg = profile.retrieval_study
    image_aug, text_aug = AUGMENTATIONS[arm.augmentation]
    cfg = dataclasses.replace(study_cfg.train, augment=image_aug, text_augment=text_aug,
                              lock_text=arm.variant == "lock_text", lock_image=arm.variant == "lock_image")
    steps_per_epoch = max(1, n_train // cfg.batch_size)  # contrastive epochs drop the last partial batch
    epochs = max(cfg.epochs, math.ceil(study_cfg.min_steps / steps_per_epoch))
    if epochs > cfg.epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs, patience=epochs)
    return cfg


# ---- runs ---------------------------------------------------------------------------------------------------


def zero_shot(profile: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str) -> dict:
    """Zero-shot Recall@K of ``clip`` on the test split (every caption), saved as ``zero-shot-retrieval``."""
    return retrieval(profile, clip, data, notebook, ZERO_SHOT, extra=_extra(data, None, None, None))


def fine_tune(profile: Profile, clip: ClipBundle, data: DatasetBundle, arm: Arm, seed: int, notebook: str,
              progress: bool = False) -> dict:
    """Train one arm for one seed (resumable under runs/<profile>/<run>/), evaluate the test split once, save.

    ``wise_ft``: the weights of the arm's ``both`` fine-tune (same size and seed, trained here if absent)
    interpolated with the zero-shot weights at ``wise_alpha`` (Wortsman et al., CVPR 2022); no training of its own.
    """
    base = Arm(arm.n_train, arm.augmentation) if arm.variant == "wise_ft" else arm
    run = seeded_run_name(profile, notebook, data.name, clip.name, base.method, seed)
    train_data = training_data(profile, data, base, seed)
    n_train = len(train_data.splits["train"])
    cfg = train_config(profile, base, n_train)
    result = train_run(profile, clip, train_data, run=run, notebook=notebook, mode="contrastive", cfg=cfg, seed=seed,
                       class_texts=None, progress=progress)
    saved = seeded_run_name(profile, notebook, data.name, clip.name, f"{arm.method}-retrieval", seed)
    if result.model is None:  # evaluated earlier, weights not kept (profile keep_weights: reused)
        return saved_result(profile, saved)
    model = result.model
    if arm.variant == "wise_ft":
        mixed = wise_interpolate(clip.model.state_dict(), model.model.state_dict(), profile.retrieval_study.wise_alpha)
        model = dataclasses.replace(model, model=_copy_with_state(model.model, mixed))
    extra = {**_extra(data, arm, n_train, cfg), **train_extra(result, cfg)}
    rec = retrieval(profile, model, data, notebook, arm.method, extra=extra, seed=seed)
    if arm.variant == "wise_ft" or not reused(profile, arm):  # the WiSE-FT arm is the last to load its base run
        release_weights(profile, run_dir(profile, run))
    return rec


def reused(profile: Profile, arm: Arm) -> bool:
    """Whether another arm loads this arm's weights again (the WiSE-FT variant interpolates the ``both`` run of
    its size); the others are evaluated once and keep only their log and metrics under ``keep_weights: reused``."""
    return arm.variant == "wise_ft" or any(a.variant == "wise_ft" and Arm(a.n_train, a.augmentation) == arm
                                           for a in arms(profile))


def _copy_with_state(module, state):
    m = copy.deepcopy(module)
    m.load_state_dict(state)
    return m.eval()


def _extra(data: DatasetBundle, arm: Arm | None, n_train: int | None, cfg: TrainConfig | None) -> dict:
    test = data.splits["test"]
    out: dict[str, Any] = {"study": "general_retrieval", "n_train": n_train,
                           "augmentation": arm.augmentation if arm else None, "variant": arm.variant if arm else None,
                           "captions_per_image": sum(len(c) for c in (test.captions_per_image() or [])) / max(len(test), 1)}
    if cfg is not None:
        out["train_config"] = dataclasses.asdict(cfg)
    return out


# ---- tables and comparisons -------------------------------------------------------------------------------


def results_table(records: list[dict]) -> pd.DataFrame:
    """One row per run: dataset, method, augmentation, variant, n_train, seed, Recall@K (i2t, t2i), mean_recall."""
    rows = []
    for r in records:
        e = r.get("extra") or {}
        rows.append({"dataset": r["dataset"], "model": r["model"], "method": r["method"].removesuffix("-retrieval"),
                     "augmentation": e.get("augmentation") or ZERO_SHOT, "variant": e.get("variant") or "",
                     "n_train": e.get("n_train") if e.get("n_train") is not None else 0, "seed": r.get("seed"),
                     "n_images": r.get("n"), "n_captions": r.get("n_text"),
                     **{m: r["metrics"].get(m) for m in METRICS + ["mean_recall"]}})
    return pd.DataFrame(rows)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds with sd, min and max (and the number of seeds) per dataset x method."""
    keys = ["dataset", "model", "method", "augmentation", "variant", "n_train"]
    g = table.groupby(keys, sort=False)
    out = g[METRICS + ["mean_recall"]].mean()
    for m in METRICS + ["mean_recall"]:
        out[f"{m}_sd"] = g[m].std(ddof=1)
        out[f"{m}_min"], out[f"{m}_max"] = g[m].min(), g[m].max()
    out["seeds"] = g["seed"].nunique()
    return out.reset_index()


def comparisons(records: list[dict]) -> list[Comparison]:
    """Each fine-tuned arm minus the zero-shot run of the same dataset and model, on every Recall@K (per seed and
    pooled over seeds), for :func:`medlib.studies.comparisons.paired_differences` (which resamples test images
    with all their captions)."""
    zs = {(r["dataset"], r["model"]): r for r in records if r["method"] == f"{ZERO_SHOT}-retrieval"}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if (r["dataset"], r["model"]) in zs and r["method"] != f"{ZERO_SHOT}-retrieval":
            groups.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    return [Comparison(f"{method.removesuffix('-retrieval')} - {ZERO_SHOT}", dataset, model,
                       sorted(runs, key=lambda r: r["seed"]), [zs[(dataset, model)]], METRICS,
                       label_a=method.removesuffix("-retrieval"), label_b=ZERO_SHOT, fixed_b=True)
            for (dataset, model, method), runs in groups.items()]
