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

from medlib.outputs import plots  # noqa: E402
from medlib.config import load_profile  # noqa: E402
from medlib.errors import MedlibError  # noqa: E402
from medlib.report import build_report, fmt, main  # noqa: E402

def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png()  # a small valid PNG (the PDF typesetter decodes every figure)

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

MANIFEST = {"profile": "smoke", "kind": "smoke", "profile_hash": "abc123def456", "seed": 0, "data_dir": "data",
            "command": "./run_all.sh --profile smoke", "git": {"commit": "a8eac29deadbeef", "dirty": True},
            "packages": {"torch": "2.14.1", "open_clip_torch": "3.3.0"},
            "device": {"requested": "cpu", "python": "3.11.3"},
            "profile_config": {"name": "smoke", "kind": "smoke", "seed": 0,
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
        m = {**MANIFEST, "kind": "smoke" if smoke else "real", "profile": base.name}
        (base / "manifest.json").write_text(json.dumps(m))
    return base


PAIRED = pd.DataFrame({  # as medlib.tables writes it: method labels (or ids), per seed and pooled
    "method_a": ["label fine-tune", "label fine-tune", "label fine-tune", "multilabel-ft"],
    "method_b": ["zero-shot", "zero-shot", "zero-shot", "zero-shot"],
    "dataset": ["pneumoniamnist", "pneumoniamnist", "pneumoniamnist", "chestxray14"],
    "metric": ["acc", "acc", "acc", "auroc"],
    "seed": ["0", "1", "pooled", "pooled"],
    "diff": [0.22821, 0.23077, 0.22949, -0.01234],
    "ci_low": [0.18910, 0.19231, 0.19872, -0.05678],
    "ci_high": [0.26763, 0.27083, 0.26122, 0.03012],
    "n": [624, 624, 1248, 273]})


def _paired(base):
    PAIRED.to_csv(base / "tables" / "paired_differences.csv", index=False)


def _abstract(md):
    return md.split("\n## Abstract", 1)[1].split("\n## ", 1)[0]


def _section(md, title):
    return md.split(f". {title}\n", 1)[1].split("\n## ", 1)[0]


def _sub(md, title):
    return md.split(f" {title}\n", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]


def _appendix(tmp_path, profile="smoke"):
    from medlib.report.model import build_model
    from medlib.report.render import render_markdown

    return render_markdown(build_model(tmp_path, profile), doc="appendix")


def test_every_number_appears_as_formatted(tmp_path):
    _folder(tmp_path)
    md, html = build_report(tmp_path, "smoke")
    both = md + _appendix(tmp_path)
    for r in RUNS:
        for name, value in r["metrics"].items():
            if name == "acc" and r["task"] == "multilabel" or name in ("ece", "top3"):
                continue  # element-wise multi-label accuracy is left out; ECE and top-3 stay in the metrics files
            assert fmt(value) in both, (r["run"], name)
        for lo, hi in r["ci95"].values():
            assert f"[{lo:.3f}, {hi:.3f}]" in both
        for cls in r["per_class"].values():
            assert fmt(cls["recall"]) in both
    assert "0.853 [0.824, 0.881]" in md and "0.853 [0.824, 0.881]" in html  # 04's metrics file, in the paper
    assert "0.314" in both and "0.854" in md  # from the tables
    assert fmt(0.85337) == "0.853" and fmt(None) == "n/a" and fmt(float("nan")) == "n/a" and fmt(624) == "624"
    for s in ("a8eac29deadbeef", "abc123def456", "2.14.1", "41.2", "./run_all.sh --profile smoke", "0.0001"):
        assert s in both  # reproducibility from the manifest, not typed in
    assert "`./run_all.sh --profile smoke` at commit `a8eac29deadb`" in md  # the real command, in the paper


def test_paper_structure_one_banner_generated_named(tmp_path):
    base = _folder(tmp_path)
    md, html = build_report(tmp_path, "smoke")
    heads = [line[3:] for line in md.splitlines() if line.startswith("## ")]
    assert heads == ["Abstract", "Contents", "1. Introduction", "2. Data", "3. Methods", "4. Results",
                     "5. Discussion", "6. Limitations", "7. Conclusion", "8. Reproducibility", "References"]
    assert md.count("SMOKE RUN") == 1 and html.count("<blockquote>") == 1  # one banner, at the top
    title_block = md.split("\n## Abstract", 1)[0]
    assert md.startswith("# SMOKE — Adapting CLIP") and "(GENERATED data: chestxray14)" in md.splitlines()[0]
    assert "<title>SMOKE — Adapting CLIP" in html
    assert "GENERATED stand-in data: chestxray14" in title_block and "real data: pneumoniamnist" in title_block
    assert title_block.count("GENERATED stand-in data") == 1
    row = next(line for line in _section(md, "Results").splitlines() if line.startswith("| PneumoniaMNIST"))
    assert "| real |" in row
    # figures: embedded in the HTML, linked relative in the Markdown, numbered; the rest in the appendix
    b64 = base64.b64encode(PNG).decode()
    assert html.count(f"data:image/png;base64,{b64}") >= 1
    assert "](figures/05_tradeoff__chestxray14.png)" in md
    assert "](figures/02_confusion__pneumoniamnist__tiny__zero-shot.png)" in _appendix(tmp_path)
    assert "*Figure 1:" in md and "*Table 1:" in md and "*Table A1:" in _appendix(tmp_path)
    assert not re.search(r"<img[^>]+src=\"figures/", html)
    assert "@media print" in html
    assert not (base / "report.md").exists()  # build_report writes nothing
    refs = md.split("\n## References", 1)[1].split("\n## ", 1)[0]
    assert "Jiancheng Yang" in refs and "MedMNIST v2" in refs and "Scientific Data" in refs and "2023" in refs


def test_abstract_states_pooled_paired_differences(tmp_path):
    base = _folder(tmp_path)
    md, _ = build_report(tmp_path, "smoke")
    assert "`tables/paired_differences.csv` is missing" in _abstract(md)  # degrades without the table
    _paired(base)
    md, _ = build_report(tmp_path, "smoke")
    abstract = _abstract(md)
    assert ("On PneumoniaMNIST, label fine-tuning beats zero-shot in accuracy: +0.229 (95% CI [+0.199, +0.261], "
            "2 seeds).") in abstract  # the pooled row only
    assert "+0.228" not in abstract and "+0.231" not in abstract  # per-seed rows: the appendix
    assert ("On ChestX-ray14 (GENERATED), the difference between multi-label fine-tuning and zero-shot in AUROC is "
            "-0.012 (95% CI [-0.057, +0.030]), not resolved.") in abstract
    assert "ChestX-ray14 (GENERATED), PneumoniaMNIST" in abstract or "PneumoniaMNIST, ChestX-ray14 (GENERATED)" \
        in abstract
    paired = _sub(md, "Does fine-tuning help?")
    row = next(line for line in paired.splitlines() if "+0.229 [+0.199, +0.261]" in line)
    assert "| label FT - zero-shot |" in row and "| label FT higher |" in row
    assert "+0.228 [+0.189, +0.268]" in _appendix(tmp_path)


def test_abstract_fixed_methods_no_test_set_selection(tmp_path):
    _folder(tmp_path)
    md, _ = build_report(tmp_path, "smoke")
    abstract = _abstract(md)
    main = _sub(md, "Does fine-tuning help?")
    row = next(line for line in main.splitlines() if line.startswith("| PneumoniaMNIST"))
    # data, metric, n, chance (majority class 390/624), zero-shot, caption FT (not run), label FT, ResNet-18
    assert row.split(" | ")[1:] == ["real", "accuracy", "624", "0.625", "0.625 [0.587, 0.663]", "not run",
                                    "0.853 [0.824, 0.881]", "0.819 [0.790, 0.846] |"]
    assert "medclip-tiny (random init)" in abstract  # the role-"clip" model
    for higher in ("0.978", "0.967", "16shot", "wise-ft-a"):  # sweeps score higher on test but are never picked
        assert higher not in md
    appendix = _appendix(tmp_path)
    assert "α=0.50" in appendix and "0.978" in appendix and "0.967" in appendix  # still reported, in the appendix
    data = _section(md, "Data")
    assert "| PneumoniaMNIST | real | multiclass | 2 | 4708 | 524 | 624 |" in data
    assert "| ChestX-ray14 | GENERATED |" in data
    # the remedy named is the one chosen on validation (inverse_freq), not the highest on test (focal, 0.556)
    assert "0.556" not in abstract
    classes = _sub(md, "Which classes fail, and what fixes them?")
    assert "The remedy chosen on the validation split is inverse-frequency weights on ChestX-ray14" in classes
    assert "PneumoniaMNIST: pneumonia 3494, normal 1214" in data
    assert "MIMIC-CXR (no local copy" in data
    sota = _sub(md, "How do the numbers compare with published ones?")
    assert "0.854" in sota and "Yang et al. 2023" not in sota and "[" in sota  # the source cited, not pasted


def test_majority_reference_row_and_low_auroc_note(tmp_path):
    base = _folder(tmp_path)
    rec = json.loads((base / "metrics" / f"{RUNS[0]['run']}.json").read_text())
    rec["metrics"]["auroc"] = 0.41234
    (base / "metrics" / f"{RUNS[0]['run']}.json").write_text(json.dumps(rec))
    appendix = _appendix(tmp_path)
    runs = appendix.split("Runs of notebook 02_zero_shot_baseline", 1)[1].split("*Table A", 1)[0]
    ref = next(line for line in runs.splitlines() if "majority class" in line)
    assert "| 0.625 |" in ref  # 390 of 624 test images are pneumonia
    assert "0.412 [0.510, 0.600] †" in runs and "AUROC below 0.5" in runs
    chest = appendix.split("Runs of notebook 05_class_imbalance", 1)[1].split("*Table A", 1)[0]
    assert "0.904" not in chest  # element-wise multi-label accuracy is left out


def test_abstract_skips_dataset_without_the_fixed_methods(tmp_path):
    base = _folder(tmp_path)
    rec = {"run": "03_caption_finetune__pubmedvision__tiny__caption-ft-label_aware", "notebook": "03_caption_finetune",
           "dataset": "pubmedvision", "task": "multiclass", "model": "tiny", "method": "caption-ft-label_aware",
           "n": 160, "metrics": {"acc": 0.41234}, "ci95": {}, "per_class": {}}
    (base / "metrics" / f"{rec['run']}.json").write_text(json.dumps(rec))
    md, _ = build_report(tmp_path, "smoke")
    main = _sub(md, "Does fine-tuning help?")
    assert "| PneumoniaMNIST" in main and "| PubMedVision" not in main
    assert "0.412" in _appendix(tmp_path)  # still reported among notebook 03's runs


def test_paths_are_relative_to_the_repository(tmp_path):
    base = _folder(tmp_path)
    man = json.loads((base / "manifest.json").read_text())
    man["data_dir"] = str(tmp_path.parent / "data")
    man["notebooks"]["02_zero_shot_baseline"]["executed"] = str(base / "executed" / "02.ipynb")
    (base / "manifest.json").write_text(json.dumps(man))
    md, html = build_report(tmp_path, "smoke")
    appendix = _appendix(tmp_path)
    assert str(tmp_path) not in md and str(tmp_path) not in html and str(tmp_path) not in appendix
    assert "<data dir>" not in md or "data" in md


def test_full_profile_no_banner_and_missing_inputs_not_run(tmp_path):
    base = tmp_path / "full"
    (base / "metrics").mkdir(parents=True)
    md, html = build_report(tmp_path, "full")
    assert "SMOKE" not in md and "SMOKE" not in html
    assert md.count("not run") >= 2
    with pytest.raises(MedlibError, match="run_all.sh"):
        build_report(tmp_path, "nothing")


def test_command_writes_the_group_from_scratch(tmp_path, capsys, monkeypatch):
    base = _folder(tmp_path)
    (base / "report.md").write_text("stale")
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 0
    md = (base / "report.md").read_text()
    assert md != "stale" and md.startswith("# ")
    assert (base / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (base / "report.pdf").read_bytes()[:5] == b"%PDF-"
    assert (base / "report-appendix.pdf").read_bytes()[:5] == b"%PDF-"
    assert (base / "report.typ").read_text().startswith("// The paper")
    assert not list(base.glob(".*.tmp"))
    (base / "metrics" / "bad.json").write_text("{")
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 1
    assert "bad.json" in capsys.readouterr().err
    (base / "metrics" / "bad.json").write_text(json.dumps({"run": "x", "metrics": {}}))  # no dataset/model/...
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "dataset" in err and len(err.strip().splitlines()) == 1
    assert (base / "report.md").read_text() == md  # the old report is untouched on error
    (base / "metrics" / "bad.json").unlink()
    # all or none: the PDF failing leaves report.md and report.html as they were
    pdf = (base / "report.pdf").read_bytes()
    (base / "report.md").write_text("previous")
    import medlib.report as rep

    def broken(*a, **k):
        raise MedlibError("report.pdf: typst failed. Fix: none")

    monkeypatch.setattr(rep, "render_pdf", broken)
    assert main(["--profile", "smoke", "--reports-dir", str(tmp_path)]) == 1
    assert (base / "report.md").read_text() == "previous" and (base / "report.pdf").read_bytes() == pdf


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


def test_sota_rows_with_seeds_resolution_and_not_comparable(tmp_path):
    """The comparison table as medlib.tables writes it (mean over seeds, resolution, split, majority-class rate)."""
    base = _folder(tmp_path)
    common = {"dataset": "pneumoniamnist", "resolution": "28 px", "split": "official test", "majority_rate": 0.625}
    rows = [{**common, "model": "tiny", "method": "label-ft", "metric": "acc", "value": 0.85337, "sd": 0.01012,
             "min": 0.846, "max": 0.861, "n_seeds": 2, "ci_low": 0.82, "ci_high": 0.88, "source": "measured",
             "comparable": True, "note": ""},
            {**common, "model": "tiny", "method": "label-ft", "metric": "auroc", "value": 0.91234, "sd": 0.00512,
             "min": 0.909, "max": 0.916, "n_seeds": 2, "ci_low": 0.89, "ci_high": 0.93, "source": "measured",
             "comparable": True, "note": ""},
            {**common, "model": "ResNet-18 (224)", "method": "supervised", "metric": "acc", "value": 0.864,
             "resolution": "224 px", "source": "Yang et al., MedMNIST v2, Scientific Data 2023", "comparable": False,
             "note": "NOT COMPARABLE: published at 224 px, ours at 28 px"}]
    pd.DataFrame(rows).to_csv(base / "tables" / "sota_comparison.csv", index=False)
    md, _ = build_report(tmp_path, "smoke")
    sota = _sub(md, "How do the numbers compare with published ones?")
    row = next(line for line in sota.splitlines() if line.startswith("| PneumoniaMNIST | tiny"))
    assert "| accuracy | 0.853 ± 0.010 (2 seeds) | ours |" in row  # the data set's main metric in the paper
    pub = next(line for line in sota.splitlines() if "ResNet-18 (224)" in line)
    assert "224 px" in pub and "NOT COMPARABLE; n1" in pub and "0.864" in pub
    assert "n1: NOT COMPARABLE: published at 224 px, ours at 28 px" in sota
    every = _appendix(tmp_path).split("Every measured and published row", 1)[1].split("*Table A", 1)[0]
    row = next(line for line in every.splitlines() if line.startswith("| tiny | label fine-tune"))
    assert "0.853 ± 0.010 (2 seeds)" in row and "0.912 ± 0.005 (2 seeds)" in row
    assert "Every row: majority class = 0.625." in every  # a column with one value is said once
    assert "NOT COMPARABLE" in _section(md, "Discussion")  # and why it matters
    refs = md.split("\n## References", 1)[1]
    assert "Jiancheng Yang" in refs  # the source string resolved to the bibliography entry


def test_run_with_no_real_data_says_generated_in_title_and_abstract(tmp_path):
    base = _folder(tmp_path)
    summary = pd.read_csv(base / "tables" / "data_summary.csv").assign(synthetic=True)
    summary.to_csv(base / "tables" / "data_summary.csv", index=False)
    md, html = build_report(tmp_path, "smoke")
    assert md.splitlines()[0] == ("# SMOKE — Adapting CLIP to medical images: zero-shot, caption and label fine-tuning "
                                  "(GENERATED data only)")
    assert "ChestX-ray14 (GENERATED)" in _abstract(md) and "PneumoniaMNIST (GENERATED)" in _abstract(md)
    main = _sub(md, "Does fine-tuning help?")
    assert "| GENERATED |" in main and "| real |" not in main


def test_rehearsal_profile_is_labelled_rehearsal_with_its_projection(tmp_path):
    base = _folder(tmp_path, smoke=False)
    rehearsal = base.rename(tmp_path / "full-rehearsal")  # `run_all.sh --rehearse` writes reports/full-rehearsal/
    manifest = json.loads((rehearsal / "manifest.json").read_text())
    (rehearsal / "manifest.json").write_text(json.dumps({**manifest, "kind": "rehearsal"}))
    pd.DataFrame({"notebook": ["01_data_prep"], "projected_s": [120.5], "peak_gb": [3.2]}).to_csv(
        rehearsal / "projection.csv", index=False)
    md, _ = build_report(tmp_path, "full-rehearsal")
    assert md.startswith("# REHEARSAL — ") and md.count("REHEARSAL - not results") == 1
    appendix = _appendix(tmp_path, "full-rehearsal")
    assert "`projection.csv`" in appendix and "120.5" in appendix
