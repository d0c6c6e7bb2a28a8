"""The generated report, built from a hand-made reports folder; and the figure helpers it embeds."""

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from medlib import plots  # noqa: E402
from medlib.config import load_profile  # noqa: E402
from medlib.errors import MedlibError  # noqa: E402
from medlib.report import build_report, fmt, main  # noqa: E402

# A 1x1 PNG, written by hand so the test does not depend on matplotlib for the report part.
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAABJRU5ErkJggg==")

RUNS = [
    {"run": "02_zero_shot_baseline__pneumoniamnist__tiny__zero-shot", "notebook": "02_zero_shot_baseline",
     "dataset": "pneumoniamnist", "task": "multiclass", "model": "tiny", "method": "zero-shot", "n": 624,
     "metrics": {"acc": 0.62516, "balanced_acc": 0.51234, "macro_f1": 0.40111, "auroc": 0.55555,
                 "worst_class_recall": 0.02564, "ece": 0.1771},
     "ci95": {"acc": [0.58694, 0.66346], "auroc": [0.51001, 0.60049]},
     "per_class": {"normal": {"precision": 0.5, "recall": 0.02564, "f1": 0.0488, "support": 234},
                   "pneumonia": {"precision": 0.6271, "recall": 0.99487, "f1": 0.7693, "support": 390}}},
    {"run": "04_label_finetune__pneumoniamnist__tiny__label-ft", "notebook": "04_label_finetune",
     "dataset": "pneumoniamnist", "task": "multiclass", "model": "tiny", "method": "label-ft", "n": 624,
     "metrics": {"acc": 0.85337, "balanced_acc": 0.82011, "macro_f1": 0.83777, "auroc": 0.91234,
                 "worst_class_recall": 0.71795, "ece": 0.0612},
     "ci95": {"acc": [0.82372, 0.88141], "auroc": [0.8899, 0.93377]},
     "per_class": {"normal": {"precision": 0.88, "recall": 0.71795, "f1": 0.7907, "support": 234},
                   "pneumonia": {"precision": 0.8411, "recall": 0.92308, "f1": 0.8802, "support": 390}}},
    {"run": "05_class_imbalance__chestxray14__tiny__focal", "notebook": "05_class_imbalance",
     "dataset": "chestxray14", "task": "multilabel", "model": "tiny", "method": "focal", "n": 240,
     "metrics": {"acc": 0.90417, "balanced_acc": 0.55, "macro_f1": 0.2213, "auroc": 0.61288,
                 "worst_class_recall": 0.0},
     "ci95": {"auroc": [0.55512, 0.67009]},
     "per_class": {"hernia": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 3, "auroc": 0.41},
                   "effusion": {"precision": 0.4, "recall": 0.33333, "f1": 0.3636, "support": 30, "auroc": 0.7}}},
]

SWEEPS = [  # few-shot and WiSE-FT runs that score higher on test than label-ft: the abstract must not pick them
    {"run": f"04_label_finetune__pneumoniamnist__tiny__{m}", "notebook": "04_label_finetune",
     "dataset": "pneumoniamnist", "task": "multiclass", "model": "tiny", "method": m, "n": 624,
     "metrics": {"acc": acc, "auroc": 0.95}, "ci95": {"acc": [acc - 0.02, acc + 0.02]}, "per_class": {}}
    for m, acc in (("label-ft-16shot", 0.97777), ("wise-ft-a0.50", 0.96666), ("wise-ft-a1.00", 0.85337))
] + [{"run": "06_sota_comparison__pneumoniamnist__resnet18__supervised", "notebook": "06_sota_comparison",
      "dataset": "pneumoniamnist", "task": "multiclass", "model": "resnet18", "method": "supervised", "n": 624,
      "metrics": {"acc": 0.81891, "auroc": 0.94835}, "ci95": {"acc": [0.79006, 0.84615]}, "per_class": {}}]

MANIFEST = {"profile": "smoke", "smoke": True, "profile_hash": "abc123def456", "seed": 0, "data_dir": "data",
            "command": "./run_all.sh --profile smoke", "git": {"commit": "a8eac29deadbeef", "dirty": True},
            "packages": {"torch": "2.14.1", "open_clip_torch": "3.3.0"},
            "device": {"requested": "cpu", "python": "3.11.3"},
            "profile_config": {"name": "smoke", "smoke": True, "seed": 0,
                               "models": [{"name": "tiny", "arch": "medclip-tiny", "pretrained": "", "role": "clip",
                                           "display": "medclip-tiny (random init)"}],
                               "label_finetune": {"train": {"lr": 0.0001, "epochs": 3}}},
            "notebooks": {"02_zero_shot_baseline": {"seconds": 41.2, "status": "ok",
                                                    "executed": "reports/smoke/executed/02_zero_shot_baseline.ipynb"}},
            "wall_time_s": 41.2}


def _folder(root, smoke=True, manifest=True):
    base = root / ("smoke" if smoke else "full")
    for r in RUNS + SWEEPS:
        rec = {**r, "profile": base.name, "split": "test", "seed": 0, "predictions": f"predictions/{r['run']}.npz"}
        (base / "metrics").mkdir(parents=True, exist_ok=True)
        (base / "metrics" / f"{r['run']}.json").write_text(json.dumps(rec))
    (base / "tables").mkdir()
    pd.DataFrame({"dataset": ["pneumoniamnist", "pneumoniamnist"], "model": ["tiny", "ResNet-18 (28)"],
                  "metric": ["acc", "acc"], "value": [0.85337, 0.854], "source": ["measured", "Yang et al. 2023"],
                  }).to_csv(base / "tables" / "sota_comparison.csv", index=False)
    pd.DataFrame({"remedy": ["none", "focal"], "macro_f1": [0.31416, 0.2213], "n": [240, 240]}).to_csv(
        base / "tables" / "05_imbalance__chestxray14.csv", index=False)
    pd.DataFrame({"remedy": ["none", "focal", "inverse_freq"], "worst_class_recall": [0.11111, 0.55555, 0.44444],
                  "worst_class_recall_lo": [0.05, 0.3, 0.31], "worst_class_recall_hi": [0.2, 0.6, 0.61],
                  "chosen": [False, False, True]}).to_csv(
        base / "tables" / "05_remedies__chestxray14.csv", index=False)
    pd.DataFrame({"dataset": ["pneumoniamnist", "chestxray14"], "task": ["multiclass", "multilabel"],
                  "classes": [2, 14], "train": [4708, 834], "val": [524, 93], "test": [624, 273],
                  "source": ["a.npz", "fixture"], "synthetic": [False, True],
                  "license": ["CC BY 4.0", "generated"]}).to_csv(base / "tables" / "data_summary.csv", index=False)
    pd.DataFrame({"dataset": ["pneumoniamnist"] * 3, "task": ["multiclass"] * 3, "split": ["train", "train", "val"],
                  "class": ["normal", "pneumonia", "normal"], "n": [1214, 3494, 135]}).to_csv(
        base / "tables" / "01_class_counts.csv", index=False)
    pd.DataFrame({"notebook": ["03_caption_finetune"], "dataset": ["mimic_cxr"],
                  "reason": ["no local copy; set datasets.mimic_cxr.root"]}).to_csv(
        base / "tables" / "skipped_datasets.csv", index=False)
    (base / "figures").mkdir()
    (base / "figures" / "02_confusion__pneumoniamnist__tiny__zero-shot.png").write_bytes(PNG)
    (base / "figures" / "05_tradeoff__chestxray14.png").write_bytes(PNG)
    if manifest:
        m = {**MANIFEST, "smoke": smoke, "profile": base.name}
        (base / "manifest.json").write_text(json.dumps(m))
    return base


def test_every_number_appears_as_formatted(tmp_path):
    _folder(tmp_path)
    md, html = build_report(tmp_path, "smoke")
    for r in RUNS:
        for name, value in r["metrics"].items():
            assert fmt(value) in md and fmt(value) in html, (r["run"], name)
        for lo, hi in r["ci95"].values():
            assert f"[{lo:.3f}, {hi:.3f}]" in md
        for cls in r["per_class"].values():
            assert fmt(cls["recall"]) in md
    assert "0.853 [0.824, 0.881]" in md  # value and interval from 04's metrics file
    assert "0.314" in md and "0.854" in md  # from the tables
    assert fmt(0.85337) == "0.853" and fmt(None) == "n/a" and fmt(float("nan")) == "n/a" and fmt(624) == "624"
    # reproducibility from the manifest, not typed in
    for s in ("a8eac29deadbeef", "abc123def456", "2.14.1", "41.2", "./run_all.sh --profile smoke", "0.0001"):
        assert s in md


def test_smoke_title_banner_and_figures_embedded(tmp_path):
    base = _folder(tmp_path)
    md, html = build_report(tmp_path, "smoke")
    assert md.startswith("# SMOKE")
    sections = md.split("\n## ")[1:]
    assert len(sections) >= 7
    for sec in sections:
        assert "SMOKE RUN" in sec.split("\n\n", 2)[1], sec[:80]  # banner right under each heading
    assert "<title>SMOKE" in html and html.count("<blockquote>") >= len(sections) + 1
    b64 = base64.b64encode(PNG).decode()
    assert html.count(f"data:image/png;base64,{b64}") == 2  # every figure embedded
    assert "figures/02_confusion__pneumoniamnist__tiny__zero-shot.png" in md
    assert "(notebook 02, run `02_zero_shot_baseline__pneumoniamnist__tiny__zero-shot`)" in md
    assert "*Figure 2: tradeoff (notebook 05, dataset `chestxray14`).*" in md
    assert not re.search(r"<img[^>]+src=\"figures/", html)  # self-contained: no relative image links
    assert not (base / "report.md").exists()  # build_report writes nothing


def test_abstract_fixed_methods_no_test_set_selection(tmp_path):
    _folder(tmp_path)
    md, _ = build_report(tmp_path, "smoke")
    abstract = md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in abstract.splitlines() if line.startswith("| pneumoniamnist"))
    # zero-shot (02), caption FT (03: not run here), label FT (04), ResNet-18 (06), each with its interval
    assert row.split(" | ")[3:] == ["0.625 [0.587, 0.663]", "not run", "0.853 [0.824, 0.881]",
                                    "0.819 [0.790, 0.846] |"]
    assert "tiny" in abstract and "medclip-tiny (random init)" in abstract  # the role-"clip" model
    for higher in ("0.978", "0.967", "16shot", "wise-ft-a"):  # sweeps score higher on test but are never picked
        assert higher not in abstract
    # the remedy line: no remedy vs the remedy chosen on validation, not the highest on test (focal)
    assert "no remedy 0.111 [0.050, 0.200]; `inverse_freq` 0.444 [0.310, 0.610]" in abstract
    assert "chosen on the validation split" in abstract and "0.556" not in abstract
    # sweeps are still reported, as pivots
    assert "shots=16" in md and "alpha=0.50" in md and "0.978" in md and "0.967" in md
    # data: compact summary, a class-count line, the skipped dataset
    data = md.split("\n## 1. Data", 1)[1].split("\n## ", 1)[0]
    assert "| pneumoniamnist | multiclass | 2 | 4708 | 524 | 624 |" in data
    assert "pneumoniamnist: pneumonia 3494, normal 1214." in data
    assert "mimic_cxr (notebook 03_caption_finetune): no local copy" in data
    # published rows cite their source and stay apart from measured ones
    sota = md.split("\n## 5.", 1)[1].split("\n## ", 1)[0]
    measured, published = sota.split("**Published", 1)
    assert "0.854" in published and "[1]" in published and "0.854" not in measured
    assert "1. Yang et al. 2023" in md.split("\n## References", 1)[1]


def test_abstract_skips_dataset_without_the_fixed_methods(tmp_path):
    base = _folder(tmp_path)
    rec = {"run": "03_caption_finetune__pubmedvision__tiny__caption-ft-label_aware", "notebook": "03_caption_finetune",
           "dataset": "pubmedvision", "task": "multiclass", "model": "tiny", "method": "caption-ft-label_aware",
           "n": 160, "metrics": {"acc": 0.41234}, "ci95": {}, "per_class": {}}
    (base / "metrics" / f"{rec['run']}.json").write_text(json.dumps(rec))
    md, _ = build_report(tmp_path, "smoke")  # used to raise StopIteration
    abstract = md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0]
    assert "| pneumoniamnist" in abstract and "| pubmedvision" not in abstract
    assert "0.412" in md  # still reported among notebook 03's runs


def test_full_profile_no_banner_and_missing_inputs_not_run(tmp_path):
    base = tmp_path / "full"
    (base / "metrics").mkdir(parents=True)
    md, html = build_report(tmp_path, "full")
    assert "SMOKE" not in md and "SMOKE" not in html
    assert md.count("not run") >= 4  # manifest, data summary, sota table, runs ...
    with pytest.raises(MedlibError, match="run_all.sh"):
        build_report(tmp_path, "nothing")


def test_command_writes_both_files_from_scratch(tmp_path, capsys):
    base = _folder(tmp_path)
    (base / "report.md").write_text("stale")
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 0
    md = (base / "report.md").read_text()
    assert md != "stale" and md.startswith("# SMOKE")
    assert (base / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(base.glob(".*.tmp"))
    (base / "metrics" / "bad.json").write_text("{")
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 1
    assert "bad.json" in capsys.readouterr().err
    (base / "metrics" / "bad.json").write_text(json.dumps({"run": "x", "metrics": {}}))  # no dataset/model/...
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "dataset" in err and len(err.strip().splitlines()) == 1
    assert (base / "report.md").read_text() == md  # the old report is untouched on error


# ---- plots ----------------------------------------------------------------------------------------------------


def test_save_figure_marks_smoke_and_writes_png(tmp_path):
    prof = load_profile("smoke", {"reports_dir": str(tmp_path)})
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    s = rng.dirichlet(np.ones(3), 60)
    figs = {
        "01_counts__x": plots.class_counts_bar({"train": {"a": 5, "b": 9}, "test": {"a": 2, "b": 3}}),
        "01_samples__x": plots.sample_grid(rng.integers(0, 255, (3, 8, 8), dtype=np.uint8), ["a", "b", "c"]),
        "02_confusion__x": plots.confusion_matrix_plot(np.array([[5, 1], [2, 7]]), ["a", "b"], normalize=True),
        "02_recall__x": plots.per_class_bars({"a": {"recall": 0.5, "support": 3}, "b": {"recall": 0.9,
                                                                                      "support": 9}}),
        "03_curve__x": plots.learning_curve(pd.DataFrame({"epoch": [1, 2], "train_loss": [1.0, 0.5],
                                                          "val_metric": [0.6, 0.7]})),
        "06_bars__x": plots.bar_with_ci(pd.DataFrame({"m": ["a", "b"], "v": [0.5, 0.7], "lo": [0.4, None],
                                                      "hi": [0.6, None], "pub": [False, True]}), "m", "v", "lo",
                                        "hi", hatch="pub", title="Compared"),
        "04_wise__x": plots.wise_curve([0, 0.5, 1], [0.5, 0.6, 0.7], other=[0.3, 0.25, 0.2]),
        "05_pr__x": plots.pr_curves(y, s, ["a", "b", "c"]),
        "05_tradeoff__x": plots.tradeoff_scatter(pd.DataFrame({"acc": [0.8, 0.7], "wcr": [0.2, 0.5],
                                                               "remedy": ["none", "focal"]}), "acc", "wcr", "remedy"),
    }
    for name, fig in figs.items():
        path = plots.save_figure(fig, prof, name)
        assert path == tmp_path / "smoke" / "figures" / f"{name}.png"
        assert path.read_bytes()[:4] == b"\x89PNG"
        assert fig._suptitle.get_text().startswith("SMOKE")
        plt.close(fig)
    assert figs["06_bars__x"]._suptitle.get_text() == "SMOKE — Compared"
    full = load_profile("full", {"reports_dir": str(tmp_path)})
    fig = plots.wise_curve([0, 1], [0.5, 0.6], title="W")
    plots.save_figure(fig, full, "04_wise__y")
    assert fig._suptitle.get_text() == "W"
    plt.close(fig)
    with pytest.raises(MedlibError):
        plots.save_figure(plt.figure(), prof, "Bad Name")
    plt.close("all")
