"""Notebook 07's study: caption fine-tuning on small general-domain training sets (Flickr30K, COCO).

For each retrieval set of ``profile.retrieval_study``: zero-shot Recall@K on the test split (every caption of each
image), then contrastive fine-tunes on nested training subsets (``train_sizes``: 1k, 5k, all images) under the
augmentation ablation (:data:`AUGMENTATIONS`: none, image, text, both), plus the label-free variants
(:data:`VARIANTS`) on the largest subset with both augmentations; one run per seed. Every run is evaluated once on
the test split with :func:`medlib.pipeline.retrieval` (its predictions file keeps the per-query ranks), and
:func:`paired_differences` compares it with zero-shot on the same queries (paired bootstrap over queries).

Text augmentation = the engine samples one of an image's captions per step (``TrainConfig.text_augment`` with
``Split.all_captions``), from a pool that also holds ``perturbed_copies`` simple perturbations of each caption
(:func:`perturb_caption`: word dropout and adjacent-word swaps, EDA-style). Without it, each image keeps its first
caption for the whole run.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterator

import numpy as np
import pandas as pd

from .config import Profile, TrainConfig
from .data.base import DatasetBundle, Split
from .metrics import RETRIEVAL_KS, retrieval_hits
from .models import ClipBundle

AUGMENTATIONS = {"none": (False, False), "image": (True, False), "text": (False, True), "both": (True, True)}
VARIANTS = ("lock_text", "lock_image", "wise_ft")
METRICS = [f"{d}_R@{k}" for d in ("i2t", "t2i") for k in RETRIEVAL_KS]
ZERO_SHOT = "zero-shot"


# ---- what is compared -----------------------------------------------------------------------------------------


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


def arms(P: Profile) -> list[Arm]:
    """Every (training size x augmentation) run, then the variants on the largest size with both augmentations."""
    c = P.retrieval_study
    out = [Arm(n, a) for n in c.train_sizes for a in c.augmentations]
    largest = 0 if 0 in c.train_sizes else max(c.train_sizes, default=0)
    return out + [Arm(largest, "both", v) for v in c.variants]


def seeds(P: Profile) -> list[int]:
    """The seeds of the study's fine-tunes: every seed of the profile where ``seeded_methods`` lists
    ``retrieval_ft`` (full profile: the same three seeds as the rest), else the first seed only (smoke budget)."""
    from .pipeline import seeds as method_seeds

    return method_seeds(P, "retrieval_ft")


# ---- training data --------------------------------------------------------------------------------------------


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


def training_data(P: Profile, data: DatasetBundle, arm: Arm, seed: int) -> DatasetBundle:
    """``data`` with its train split cut to the arm's subset (and, for text augmentation, perturbed captions added
    to each image's pool). Val and test are untouched."""
    c = P.retrieval_study
    tr = train_subset(data.splits["train"], arm.n_train, seed)
    if AUGMENTATIONS[arm.augmentation][1]:
        tr = with_perturbations(tr, c.perturbed_copies, c.word_dropout, c.word_swap, seed)
    return dataclasses.replace(data, splits={**data.splits, "train": tr})


def train_config(P: Profile, arm: Arm, n_train: int) -> TrainConfig:
    """The study's TrainConfig for one arm: augmentation switches, locked tower of a variant, and enough epochs
    for ``min_steps`` optimizer steps on a small subset (early stopping then off; the best epoch is still chosen
    on the validation split)."""
    c = P.retrieval_study
    image_aug, text_aug = AUGMENTATIONS[arm.augmentation]
    cfg = dataclasses.replace(c.train, augment=image_aug, text_augment=text_aug,
                              lock_text=arm.variant == "lock_text", lock_image=arm.variant == "lock_image")
    steps_per_epoch = max(1, n_train // cfg.batch_size)  # contrastive epochs drop the last partial batch
    epochs = max(cfg.epochs, math.ceil(c.min_steps / steps_per_epoch))
    if epochs > cfg.epochs:
        cfg = dataclasses.replace(cfg, epochs=epochs, patience=epochs)
    return cfg


# ---- runs -----------------------------------------------------------------------------------------------------


def zero_shot(P: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str) -> dict:
    """Zero-shot Recall@K of ``clip`` on the test split (every caption), saved as ``zero-shot-retrieval``."""
    from . import pipeline

    return pipeline.retrieval(P, clip, data, notebook, ZERO_SHOT, extra=_extra(data, None, None, None))


def fine_tune(P: Profile, clip: ClipBundle, data: DatasetBundle, arm: Arm, seed: int, notebook: str,
              progress: bool = False) -> dict:
    """Train one arm for one seed (resumable under runs/<profile>/<run>/), evaluate the test split once, save.

    ``wise_ft``: the weights of the arm's ``both`` fine-tune (same size and seed, trained here if absent)
    interpolated with the zero-shot weights at ``wise_alpha`` (Wortsman et al., CVPR 2022); no training of its own.
    """
    from . import pipeline
    from .train import train, wise_interpolate
    from .results import run_dir, seeded_run_name

    base = Arm(arm.n_train, arm.augmentation) if arm.variant == "wise_ft" else arm
    run = seeded_run_name(P, notebook, data.name, clip.name, base.method, seed)
    train_data = training_data(P, data, base, seed)
    n_train = len(train_data.splits["train"])
    cfg = train_config(P, base, n_train)
    result = train(clip, train_data, mode="contrastive", cfg=cfg, run_dir=run_dir(P, run), seed=seed,
                   class_texts=None, progress=progress)
    saved = seeded_run_name(P, notebook, data.name, clip.name, f"{arm.method}-retrieval", seed)
    if result.model is None:  # evaluated earlier, weights not kept (profile keep_weights: reused)
        return pipeline.saved_result(P, saved)
    model = result.model
    if arm.variant == "wise_ft":
        mixed = wise_interpolate(clip.model.state_dict(), model.model.state_dict(), P.retrieval_study.wise_alpha)
        model = dataclasses.replace(model, model=_copy_with_state(model.model, mixed))
    extra = {**_extra(data, arm, n_train, cfg), **pipeline.train_extra(result, cfg)}
    rec = pipeline.retrieval(P, model, data, notebook, arm.method, extra=extra, seed=seed)
    if not reused(P, arm):
        pipeline.release_weights(P, run_dir(P, run))
    return rec


def reused(P: Profile, arm: Arm) -> bool:
    """Whether another arm loads this arm's weights again (the WiSE-FT variant interpolates the ``both`` run of
    its size); the others are evaluated once and keep only their log and metrics under ``keep_weights: reused``."""
    return arm.variant == "wise_ft" or any(a.variant == "wise_ft" and Arm(a.n_train, a.augmentation) == arm
                                           for a in arms(P))


def _copy_with_state(module, state):
    import copy

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


def run_all(P: Profile, clip: ClipBundle, data: DatasetBundle, notebook: str,
            progress: bool = False) -> Iterator[dict]:
    """Zero-shot, then every arm x seed (:func:`arms`, :func:`seeds`); yields each metrics record as it is saved.
    A set without a train split (a test-only hub copy) gets its zero-shot run only, with a printed note."""
    from tqdm.auto import tqdm

    yield zero_shot(P, clip, data, notebook)
    if len(data.splits["train"]) == 0 or len(data.splits["val"]) == 0:
        print(f"NOTE {data.name}: no train/val split (test-only source): fine-tuning skipped")
        return
    todo = [(a, s) for s in seeds(P) for a in arms(P)]
    from .progress import enabled

    for arm, seed in tqdm(todo, desc=f"{data.name} runs", disable=not enabled(progress)):
        yield fine_tune(P, clip, data, arm, seed, notebook)


# ---- tables and paired differences ----------------------------------------------------------------------------


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


def paired_interval(hits_a: list[np.ndarray], hits_b: list[np.ndarray], n_boot: int,
                    seed: int) -> tuple[float, float, float]:
    """(difference, 2.5 %, 97.5 % percentiles) of the mean over seeds of ``mean(a_s) - mean(b_s)``, over ``n_boot``
    resamples of the QUERIES: each replicate draws one set of query indices applied to both methods and every seed
    (paired, pooled over seeds as ``medlib.metrics.paired_bootstrap`` does for classification). One pair per seed;
    a method without training randomness (zero-shot) repeats its one vector. Own code: ``paired_bootstrap`` takes
    classification scores, here the per-query hit vectors are the data."""
    d = np.mean([np.asarray(a, np.float64) - np.asarray(b, np.float64) for a, b in zip(hits_a, hits_b)], axis=0)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(0, n_boot, 200):  # chunks bound memory at 200 x N
        idx = rng.integers(0, len(d), size=(min(200, n_boot - i), len(d)))
        boots[i:i + len(idx)] = d[idx].mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5]) if n_boot else (np.nan, np.nan)
    return float(d.mean()), float(lo), float(hi)


def paired_differences(P: Profile, records: list[dict]) -> pd.DataFrame:
    """Each fine-tuned arm minus the zero-shot run of the same dataset and model, per metric: one row per seed and,
    with several seeds, a pooled row (``seed`` = "pooled"), from the predictions files' per-query ranks. Columns
    method_a, method_b, dataset, metric, seed, diff, ci_low, ci_high, n (n = queries: test images for i2t,
    test captions for t2i), as ``tables/paired_differences.csv``."""
    from .results import load_predictions

    zs = {(r["dataset"], r["model"]): r for r in records if r["method"] == f"{ZERO_SHOT}-retrieval"}
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if (r["dataset"], r["model"]) in zs and r["method"] != f"{ZERO_SHOT}-retrieval":
            groups.setdefault((r["dataset"], r["model"], r["method"]), []).append(r)
    rows = []
    for (dataset, model, method), runs in groups.items():
        hz = _hits(load_predictions(P, zs[(dataset, model)]["run"]))
        hr = [(r.get("seed"), _hits(load_predictions(P, r["run"]))) for r in sorted(runs, key=lambda r: r["seed"])]
        for m in METRICS:
            cases = [(s, [h[m]]) for s, h in hr] + ([("pooled", [h[m] for _, h in hr])] if len(hr) > 1 else [])
            for s, hits in cases:
                diff, lo, hi = paired_interval(hits, [hz[m]] * len(hits), P.retrieval_study.n_boot, P.seed)
                rows.append({"method_a": method.removesuffix("-retrieval"), "method_b": ZERO_SHOT, "dataset": dataset,
                             "metric": m, "seed": s, "diff": diff, "ci_low": lo, "ci_high": hi, "n": len(hz[m])})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "dataset", "metric", "seed", "diff", "ci_low",
                                       "ci_high", "n"])


def _hits(pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return retrieval_hits(pred["i2t_rank"], pred["t2i_rank"], RETRIEVAL_KS)


def anchors(dataset: str) -> dict[str, float]:
    """Published zero-shot Recall@K of ViT-B-32 openai for ``dataset`` (``medlib.references``), by metric."""
    from .references import published

    df = published(dataset=dataset)
    df = df[df["metric"].isin(METRICS)]
    return dict(zip(df["metric"], df["value"].astype(float)))


# ---- figures ---------------------------------------------------------------------------------------------------


def recall_vs_train_size(summary: pd.DataFrame, dataset: str, title: str = "", published: bool = True):
    """Recall@K (rows: image->text, text->image; columns: K) against training images (log axis), one line per
    augmentation (mean over seeds, whiskers min-max over seeds), zero-shot as a dashed line and, with
    ``published``, the published zero-shot number of ViT-B-32 openai as a dotted grey line where one exists (a
    quote for orientation, comparable only to that model's zero-shot run at 224 px)."""
    import matplotlib.pyplot as plt

    d = summary[summary["dataset"] == dataset]
    zs = d[d["method"] == ZERO_SHOT]
    ft = d[(d["method"] != ZERO_SHOT) & (d["variant"] == "")]
    sizes = sorted(int(x) for x in ft["n_train"].unique())
    pub = anchors(dataset) if published else {}
    fig, axes = plt.subplots(2, len(RETRIEVAL_KS), figsize=(3.4 * len(RETRIEVAL_KS), 6.3), sharex=True, squeeze=False)
    for row, direction in enumerate(("i2t", "t2i")):
        for col, k in enumerate(RETRIEVAL_KS):
            ax, m = axes[row][col], f"{direction}_R@{k}"
            for aug, g in ft.groupby("augmentation", sort=False):
                g = g.sort_values("n_train")
                err = None
                if f"{m}_min" in g and g["seeds"].max() > 1:
                    err = [g[m] - g[f"{m}_min"], g[f"{m}_max"] - g[m]]
                ax.errorbar(g["n_train"], g[m], yerr=err, marker="o", capsize=3, label=aug)
            if len(zs):
                ax.axhline(float(zs[m].iloc[0]), ls="--", color="k", lw=1, label=ZERO_SHOT)
            if m in pub:
                ax.axhline(pub[m], ls=":", color="grey", lw=1.2, label="published zero-shot, ViT-B-32 openai")
            ax.set_title(f"{'image→text' if direction == 'i2t' else 'text→image'} R@{k}", fontsize=9)
            ax.set_ylim(-0.02, 1.02)
            if len(sizes) > 1:
                ax.set_xscale("log")
                ax.minorticks_off()
            ax.set_xticks(sizes, [str(n) for n in sizes])
            if row == 1:
                ax.set_xlabel("training images")
    handles = {lab: h for ax in axes.ravel() for h, lab in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(title or f"{dataset}: Recall@K against training images, per augmentation (test, every caption)")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig
