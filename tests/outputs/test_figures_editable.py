"""Figures a reader can trust and a student can reuse: vector PDF and SVG beside every PNG, LaTeX beside every table,
labels that never overlap, sample captions that stay under their image, human names on every axis, and the
GENERATED mark on figures that show a generated general-domain set."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from medlib.config import load_profile  # noqa: E402
from medlib.outputs import plots  # noqa: E402
from medlib.outputs.names import axis_label, humanize, method_name, metric_name  # noqa: E402
from medlib.outputs.records import save_table  # noqa: E402


def _boxes(fig, texts):
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    return [Text.get_window_extent(t, r) for t in texts]


def test_save_figure_writes_vector_pdf_and_svg_beside_the_png(tmp_path):
    prof = load_profile("smoke", {"reports_dir": str(tmp_path)})
    figs = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [0.2, 0.5, 0.4])
        ax.set_title("x")
        figs.append(plots.save_figure(fig, prof, "04_wise_ft__x__tiny__wise-ft"))
        pdf = (tmp_path / "smoke" / "figures" / "04_wise_ft__x__tiny__wise-ft.pdf").read_bytes()
        figs.append(pdf)
        plt.close(fig)
    png = figs[0]
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert figs[1][:5] == b"%PDF-" and b"/Subtype /Image" not in figs[1]  # drawn as vectors, not a picture
    assert figs[1] == figs[3]  # no creation date: the same figure gives the same bytes
    svg = png.with_suffix(".svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "<image" not in svg
    assert "SMOKE" in svg or "SMOKE" in figs[1].decode("latin-1")  # the run's notice travels with each copy


def test_save_table_writes_booktabs_latex_beside_the_csv(tmp_path):
    prof = load_profile("smoke", {"reports_dir": str(tmp_path)})
    df = pd.DataFrame({"remedy": ["logit_adjust", "50% & more #1"], "worst_class_recall": [0.12345, None],
                       "n": [240.0, None]})
    csv = save_table(prof, "05_remedies__x", df)
    tex = csv.with_suffix(".tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "\\begin{tabular}" in tex
    assert "logit\\_adjust" in tex and "50\\% \\& more \\#1" in tex  # text escaped for LaTeX
    assert "0.123" in tex and "240 " in tex and "240.0" not in tex  # 3 decimals; counts stay integers
    assert "not\\_results" not in tex and "SMOKE" in tex  # the notice is the caption, not a column
    long = save_table(prof, "07_runs", pd.DataFrame({"a": range(108)}))
    assert "\\begin{longtable}" in long.with_suffix(".tex").read_text()


def test_crowded_tradeoff_labels_never_overlap_points_ticks_or_each_other():
    """Seven remedies on one spot (all 0 worst-class recall, accuracy 0.5), one at the plot's corner."""
    df = pd.DataFrame({"acc": [0.5, 0.5, 0.501, 0.502, 0.5, 0.499, 0.0, 0.0],
                       "worst_class_recall": [0.0, 0.0, 0.001, 0.0, 0.002, 0.0, 0.0, 1.0],
                       "remedy": ["none", "logit_adjust", "focal", "inverse_freq", "effective_number",
                                  "balanced_sampler", "threshold", "none"]})
    fig = plots.tradeoff_scatter(df, "acc", "worst_class_recall", "remedy", title="x: worst-class recall vs acc")
    ax = fig.axes[0]
    labels = [t for t in ax.texts]
    assert len(labels) == len(df)
    assert {t.get_text() for t in labels} >= {"no remedy", "logit adjustment", "focal loss"}  # names, not ids
    boxes = _boxes(fig, labels)
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert not a.overlaps(b), (a, b)
    ticks = [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_visible() and t.get_text()]
    for box in boxes:
        assert not any(box.overlaps(t) for t in _boxes(fig, ticks + [ax.xaxis.label, ax.yaxis.label]))
    assert ax.get_xlabel() == "accuracy" and ax.get_ylabel() == "worst-class recall"
    plt.close(fig)


def test_general_vs_medical_axes_carry_names_and_alpha_labels_do_not_overlap():
    curve = pd.DataFrame({"alpha": [0, 0.25, 0.5, 0.75, 1.0], "medical_acc": [0.62, 0.62, 0.621, 0.62, 0.62],
                          "general_R@5": [0.31, 0.31, 0.31, 0.309, 0.31]})
    fig = plots.tradeoff_scatter(curve.assign(label=[f"α={a:g}" for a in curve["alpha"]]), x="general_R@5",
                                 y="medical_acc", label="label", title="medical accuracy vs general-domain recall")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "general-domain R@5" and ax.get_ylabel() == "medical accuracy"
    boxes = _boxes(fig, ax.texts)
    assert len(boxes) == 5 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    plt.close(fig)


def test_sample_grid_captions_stay_under_their_own_image():
    rng = np.random.default_rng(0)
    caps = ["a chest radiograph with bilateral lower-lobe infiltrates and a small effusion, more words"] * 8
    fig = plots.sample_grid(rng.integers(0, 255, (8, 28, 28), dtype=np.uint8), caps, title="x")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    images = [ax.images[0].get_window_extent(r) for ax in fig.axes if ax.images]
    captions = [ax.texts[0].get_window_extent(r) for ax in fig.axes if ax.texts]
    assert len(images) == len(captions) == 8
    for cap in captions:
        assert not any(cap.overlaps(img) for img in images)
    plt.close(fig)


def test_axes_and_ticks_show_names_not_identifiers():
    assert metric_name("balanced_acc") == "balanced accuracy" and axis_label("general_R@5") == "general-domain R@5"
    assert method_name("ft-nall-both-wise_ft") == "fine-tune, all images, image+text augmentation, WiSE-FT"
    assert method_name("label-ft-16shot-d1") == "label fine-tune, 16 shots (draw 1)"
    assert humanize("pneumoniamnist · caption-ft-plain") == "PneumoniaMNIST · caption fine-tune"
    paired = pd.DataFrame({"dataset": ["pneumoniamnist"], "method_a": ["label-ft"], "method_b": ["zero-shot"],
                           "metric": ["balanced_acc"], "seed": ["pooled"], "diff": [0.1], "ci_low": [0.05],
                           "ci_high": [0.15]})
    fig = plots.paired_differences_plot(paired)
    tick = " ".join(fig.axes[0].get_yticklabels()[0].get_text().split())
    assert "label fine-tune" in tick and "balanced accuracy" in tick and "PneumoniaMNIST" in tick
    assert "_" not in tick and "label-ft" not in tick
    plt.close(fig)
    summary = pd.DataFrame({"method": ["zero-shot"], "metric": ["auroc"], "mean": [0.6], "sd": [np.nan],
                            "min": [0.6], "max": [0.6], "n_seeds": [1]})
    fig = plots.seed_bars(summary, "acc", title="mimic_cxr: test accuracy")  # no accuracy: a multi-label set
    assert "not applicable" in " ".join(t.get_text() for t in fig.axes[0].texts)
    assert fig.get_suptitle().startswith("MIMIC-CXR")
    plt.close(fig)


def test_general_domain_figure_of_a_generated_retrieval_set_is_marked(tmp_path):
    prof = load_profile("smoke", {"reports_dir": str(tmp_path)})
    tables = tmp_path / "smoke" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"dataset": ["pneumoniamnist", prof.sota.retrieval_dataset], "synthetic": [False, True]}).to_csv(
        tables / "data_summary.csv", index=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    plots.save_figure(fig, prof, "06_general_vs_medical__pneumoniamnist__tiny__wise-ft")
    assert "GENERATED DATA" in fig.get_suptitle()
    fig2, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    plots.save_figure(fig2, prof, "06_sota__pneumoniamnist__acc")  # real data only
    assert "GENERATED DATA" not in fig2.get_suptitle()
    plt.close("all")
