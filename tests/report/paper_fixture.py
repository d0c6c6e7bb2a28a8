"""A smoke reports folder, written the way the notebooks write it (save_run, save_table, the plot helpers and
save_figure), that holds each defect a report must not show: an accuracy figure of a multi-label set (nothing to
draw), a 108-row table, remedies crowded on one spot of the trade-off figure, a degenerate multi-label fine-tune whose
AUROC gain is the largest of the paired table, figures of a generated Flickr30K, an interval bound that rounds to
0.000, raw identifiers in the data (``balanced_acc``, ``ft-nall-both-wise_ft``, ``medical_acc``, ``general_R@5``)."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from medlib.config import load_profile  # noqa: E402
from medlib.outputs import plots  # noqa: E402
from medlib.outputs.records import save_retrieval_run, save_run, save_table  # noqa: E402

CHEST = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
         "consolidation", "edema", "emphysema", "fibrosis", "pleural thickening", "hernia"]
FIGURES: dict = {}  # the figures as drawn, by name: what the saved files show (tests inspect their labels)
REMEDIES = ["none", "logit_adjust", "focal", "inverse_freq", "effective_number", "balanced_sampler", "threshold"]


def _scores(y: np.ndarray, rng, signal: float) -> np.ndarray:
    logits = rng.normal(0, 1, (len(y), 2))
    logits[np.arange(len(y)), y] += signal
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def build(root: Path) -> Path:
    """reports/smoke/ under ``root`` with every defect; returns that folder."""
    prof = load_profile("smoke", {"reports_dir": str(root)})
    base = prof.reports_path
    rng = np.random.default_rng(0)
    save_table(prof, "data_summary", pd.DataFrame({
        "dataset": ["pneumoniamnist", "chestxray14", "mimic_cxr", "flickr30k", "coco"],
        "task": ["multiclass", "multilabel", "multilabel", "retrieval", "retrieval"], "classes": [2, 14, 14, 0, 0],
        "train": [4708, 834, 504, 48, 48], "val": [524, 93, 55, 16, 16], "test": [624, 273, 150, 16, 16],
        "source": ["data/medmnist/pneumoniamnist.npz"] + ["fixture"] * 4, "synthetic": [False, True, True, True, True],
        "license": ["CC BY 4.0 (MedMNIST v2, Yang et al. 2023)"] + ["generated (no licence needed)"] * 4}))
    save_table(prof, "01_class_counts", pd.DataFrame({"dataset": ["pneumoniamnist"] * 2, "task": ["multiclass"] * 2,
                                                      "split": ["train"] * 2, "class": ["normal", "pneumonia"],
                                                      "n": [1214, 3494]}))
    # pneumoniamnist (real): zero-shot, caption FT, label FT (2 seeds), remedies
    y = np.array([0] * 234 + [1] * 390)
    names = ["normal", "pneumonia"]
    common = dict(dataset="pneumoniamnist", model="tiny", task="multiclass", split="test", y_true=y,
                  class_names=names, n_boot=50)
    save_run(prof, notebook="02_zero_shot_baseline", method="zero-shot", y_score=_scores(y, rng, 0.3), **common)
    for s in (0, 1):
        save_run(prof, notebook="03_caption_finetune", method="caption-ft-plain", y_score=_scores(y, rng, 1.5),
                 seed=s, **common)
        save_run(prof, notebook="04_label_finetune", method="label-ft", y_score=_scores(y, rng, 2.5), seed=s,
                 **common)
    for r in REMEDIES:
        save_run(prof, notebook="05_class_imbalance", method=f"remedy-{r}", y_score=_scores(y, rng, 1.0), **common)
    # chestxray14 (generated, multi-label): the fine-tune predicts no positive at its threshold (degenerate)
    yl = (rng.random((273, 14)) < 0.1).astype(int)
    yl[0] = 1
    ml = dict(dataset="chestxray14", model="tiny", task="multilabel", split="test", y_true=yl, class_names=CHEST,
              n_boot=50)
    save_run(prof, notebook="02_zero_shot_baseline", method="zero-shot", y_score=rng.random((273, 14)), **ml)
    for s in (0, 1):
        save_run(prof, notebook="04_label_finetune", method="multilabel-ft", seed=s,
                 y_score=np.clip(0.1 + 0.3 * yl + rng.normal(0, 0.05, yl.shape), 0, 0.45), threshold=0.5, **ml)
    # mimic_cxr (generated, multi-label): caption fine-tuning, and the accuracy figure notebook 03 draws for it
    ym = (rng.random((150, 14)) < 0.15).astype(int)
    ym[0] = 1
    save_run(prof, notebook="03_caption_finetune", method="caption-ft-plain", dataset="mimic_cxr", model="tiny",
             task="multilabel", split="test", y_true=ym, y_score=rng.random((150, 14)), class_names=CHEST, n_boot=50)
    summary = pd.DataFrame({"dataset": ["pneumoniamnist", "pneumoniamnist", "mimic_cxr"],
                            "model": ["tiny"] * 3, "method": ["zero-shot", "caption-ft-plain", "caption-ft-plain"],
                            "metric": ["acc", "acc", "auroc"], "mean": [0.6, 0.8, 0.55], "sd": [np.nan, 0.01, 0.02],
                            "min": [0.6, 0.79, 0.53], "max": [0.6, 0.81, 0.57], "n_seeds": [1, 2, 2],
                            "seeds": ["0", "0,1", "0,1"], "n": [624, 624, 150], "majority_rate": [0.625, 0.625, np.nan]})
    save_table(prof, "03_caption_finetune", summary)
    for ds, df in summary.groupby("dataset"):
        fig = plots.seed_bars(df, "acc", title=f"{ds}: test accuracy", majority=df["majority_rate"].iloc[0])
        plots.save_figure(fig, prof, f"03_accuracy__{ds}__tiny__caption-ft")
        plt.close(fig)
    # remedies: crowded on one spot of the trade-off figure
    t = pd.DataFrame({"remedy": REMEDIES, "n_seeds": 1, "acc": [0.5, 0.5, 0.501, 0.502, 0.5, 0.499, 0.0],
                      "balanced_acc": [0.5] * 7, "worst_class_recall": [0.0, 0.0, 0.001, 0.0, 0.002, 0.0, 0.0],
                      "val_balanced_acc": [0.5, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5],
                      "chosen": [r == "logit_adjust" for r in REMEDIES]})
    save_table(prof, "05_remedies__pneumoniamnist", t)
    trade = plots.tradeoff_scatter(t, x="acc", y="worst_class_recall", label="remedy",
                                   title="pneumoniamnist: worst-class recall vs acc (mean over seeds)")
    plots.save_figure(trade, prof, "05_tradeoff__pneumoniamnist__tiny__remedies")
    FIGURES["05_tradeoff__pneumoniamnist__tiny__remedies"] = trade
    # general domain: notebook 06's cost table and figure (on a generated Flickr30K), notebook 07's runs
    curve = pd.DataFrame({"alpha": [0, 0.25, 0.5, 0.75, 1.0], "medical_acc": [0.62, 0.7, 0.8, 0.85, 0.87],
                          "general_R@1": [0.1, 0.1, 0.09, 0.08, 0.05], "general_R@5": [0.31, 0.31, 0.3, 0.28, 0.2]})
    save_table(prof, "06_general_domain_cost", curve)
    fig = plots.tradeoff_scatter(curve.assign(label=[f"α={a:g}" for a in curve["alpha"]]), x="general_R@5",
                                 y="medical_acc", label="label", title="medical accuracy vs general-domain recall")
    plots.save_figure(fig, prof, "06_general_vs_medical__pneumoniamnist__tiny__wise-ft")
    plt.close(fig)
    emb = rng.normal(0, 1, (16, 8))
    for ds in ("flickr30k", "coco"):
        save_retrieval_run(prof, notebook="07_general_retrieval", dataset=ds, model="tiny", method="zero-shot-retrieval",
                           image_emb=emb, text_emb=emb + rng.normal(0, 0.5, emb.shape))
    arms = [f"ft-n{n}-{a}" for n in (8, 16, "all") for a in ("none", "image", "text", "both")] + \
        ["ft-nall-both-wise_ft", "ft-nall-both-lock_text"]
    rows = [{"dataset": ds, "model": "tiny", "method": m, "augmentation": m.split("-")[2], "n_train": 48
             if "nall" in m else int(m.split("-")[1][1:]), "seed": s, "i2t_R@5": rng.random(), "t2i_R@5": rng.random(),
             "mean_recall": rng.random(), "source": "Karpathy split; every caption of every test image is a query, and every image of the split "
                       "a candidate (the published protocol)"}
            for ds in ("flickr30k", "coco") for m in arms for s in (0, 1, 2)]
    runs07 = pd.DataFrame(rows)
    assert len(runs07) == 84
    runs07 = pd.concat([runs07, runs07.iloc[:24].assign(seed=3)], ignore_index=True)  # 108 rows
    save_table(prof, "07_retrieval_runs", runs07)
    summ = runs07.groupby(["dataset", "model", "method", "augmentation", "n_train"], sort=False).agg(
        **{"i2t_R@5": ("i2t_R@5", "mean"), "t2i_R@5": ("t2i_R@5", "mean"), "mean_recall": ("mean_recall", "mean"),
           "seeds": ("seed", "size")}).reset_index()
    save_table(prof, "07_retrieval_summary", summ)
    for ds in ("flickr30k",):
        grid = plots.sample_grid(rng.integers(0, 255, (8, 28, 28), dtype=np.uint8),
                                 ["a dog runs along the beach next to the sea in the evening light"] * 8,
                                 title=f"{ds} samples")
        plots.save_figure(grid, prof, f"01_samples__{ds}")
        plt.close(grid)
        fig, ax = plt.subplots()
        ax.plot([8, 16, 48], [0.2, 0.3, 0.4])
        plots.save_figure(fig, prof, f"07_recall_vs_train_size__{ds}__tiny")
        plt.close(fig)
    # the paired table as the statistics write it: verdicts, variance sources, Holm-adjusted p-values
    rows = [
        ("label fine-tune", "zero-shot", "pneumoniamnist", "acc", 0.22949, 0.19872, 0.26122, "A higher", 0.001),
        ("caption fine-tune", "zero-shot", "pneumoniamnist", "acc", 0.0121, 0.0004, 0.0240, "A higher", 0.04),
        ("label fine-tune", "caption fine-tune", "pneumoniamnist", "acc", 0.0311, -0.0102, 0.0733, "not resolved",
         0.3),
        ("multi-label fine-tune", "zero-shot", "chestxray14", "auroc", 0.31234, 0.25678, 0.36012, "A higher", 0.001),
        ("best remedy: logit_adjust (chosen on validation balanced_acc)", "no remedy", "pneumoniamnist",
         "balanced_acc", 0.00012, -0.02, 0.02, "not resolved", 0.9),
    ]
    ids = {"label fine-tune": "label-ft", "caption fine-tune": "caption-ft-plain", "zero-shot": "zero-shot",
           "multi-label fine-tune": "multilabel-ft", "no remedy": "remedy-none"}
    recs = []
    for a, c, ds, metric, d, lo, hi, v, p in rows:
        ida, idb = ids.get(a, "remedy-logit_adjust"), ids[c]
        seeded = ida in ("label-ft", "caption-ft-plain", "multilabel-ft")
        nb = {"label-ft": "04_label_finetune", "caption-ft-plain": "03_caption_finetune",
              "multilabel-ft": "04_label_finetune", "remedy-logit_adjust": "05_class_imbalance"}[ida]
        nbb = {"zero-shot": "02_zero_shot_baseline", "caption-ft-plain": "03_caption_finetune",
               "remedy-none": "05_class_imbalance"}[idb]
        run_a = [f"{nb}__{ds}__tiny__{ida}"] + ([f"{nb}__{ds}__tiny__{ida}__s1"] if seeded else [])
        run_b = [f"{nbb}__{ds}__tiny__{idb}"] * len(run_a)
        k = len(run_a)
        for seed in ([str(i) for i in range(k)] + ["pooled"]) if k > 1 else ["0", "pooled"]:
            recs.append({"method_a": a, "method_b": c, "dataset": ds, "metric": metric, "seed": seed, "diff": d,
                         "ci_low": lo, "ci_high": hi, "n": 624, "comparison": "", "model": "tiny",
                         "method_id_a": ida, "method_id_b": idb,
                         "runs_a": ";".join(run_a if seed == "pooled" else run_a[int(seed):int(seed) + 1]),
                         "runs_b": ";".join(run_b if seed == "pooled" else run_b[:1]),
                         "n_seeds": k if seed == "pooled" else 1,
                         "variance": f"test images and training seeds ({k})" if seed == "pooled" and k > 1
                         else "test images; conditional on the trained run",
                         "p_value": p, "p_holm": p if seed == "pooled" else None,
                         "verdict": v})
    save_table(prof, "paired_differences", pd.DataFrame(recs))
    fig = plots.paired_differences_plot(pd.DataFrame(recs).query("seed == 'pooled'"))
    plots.save_figure(fig, prof, "06_paired_differences")
    manifest = {"profile": "smoke", "kind": "smoke", "command": "./run_all.sh --profile smoke",
                "git": {"commit": "a8eac29deadbeef", "dirty": False}, "profile_hash": "abc123",
                "profile_config": {"name": "smoke", "kind": "smoke", "seeds": [0, 1],
                                   "models": [{"name": "tiny", "arch": "medclip-tiny", "pretrained": "",
                                               "role": "clip", "display": "medclip-tiny (random init)"}]}}
    (base / "manifest.json").write_text(json.dumps(manifest))
    return base
