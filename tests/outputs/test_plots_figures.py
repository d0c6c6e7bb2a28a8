"""Figures that do not mislead (issue 13): LP-FT stages in order, integer epochs, 14 distinct class colours with the
legend outside, labels that neither overlap nor get cut, fixed 0..1 scales, chance lines, NOT COMPARABLE and
GENERATED marks on the figure itself."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from medlib.outputs import plots  # noqa: E402
from medlib.config import load_profile  # noqa: E402

CHEST = ["atelectasis", "cardiomegaly", "effusion", "infiltration", "mass", "nodule", "pneumonia", "pneumothorax",
         "consolidation", "edema", "emphysema", "fibrosis", "pleural thickening", "hernia"]


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts] + [fig.get_suptitle()]


def test_lp_ft_stages_are_drawn_one_after_the_other():
    h = pd.DataFrame({"epoch": [0, 1, 2, 0, 1, 2, 3], "train_loss": [np.nan, .7, .6, np.nan, .5, .4, .3],
                      "val_metric": [.5, .6, .62, .62, .7, .72, .71], "stage": ["probe"] * 3 + ["ft"] * 4})
    fig = plots.learning_curve(h, title="lp-ft")
    val = fig.axes[1].lines[0].get_xdata()
    assert len(val) == 7 and np.all(np.diff(val) > 0)  # not both stages over epochs 0..n
    assert {"linear probe", "fine-tune"} <= set(_texts(fig))
    assert fig.axes[1].get_ylim() == (0.0, 1.02)  # a val metric in [0, 1] on the full scale
    plt.close(fig)


def test_epoch_ticks_are_integers():
    h = pd.DataFrame({"epoch": [1, 2, 3], "train_loss": [1.0, .8, .7], "val_metric": [.6, .61, .62]})
    fig = plots.learning_curve(h)
    fig.canvas.draw()
    ticks = [t for t in fig.axes[0].get_xticks() if 1 <= t <= 3]
    assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def test_fourteen_classes_get_distinct_colours_and_the_legend_sits_outside():
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, (120, 14)), rng.uniform(size=(120, 14))
    fig = plots.pr_curves(y, s, CHEST)
    ax = fig.axes[0]
    assert len({to_hex(line.get_color()) for line in ax.lines}) == 14
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # right of the curves, not over them
    plt.close(fig)


def test_scatter_labels_do_not_overlap():
    t = pd.DataFrame({"remedy": ["none", "inverse_freq", "effective_number", "focal", "logit_adjust", "sampler"],
                      "acc": [.600, .601, .602, .600, .599, .601], "wcr": [.100, .101, .099, .100, .102, .100]})
    fig = plots.tradeoff_scatter(t, "acc", "wcr", "remedy")
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, r) for a in fig.axes[0].texts]  # the label, not its leader line
    assert len(boxes) == 6
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(6) for j in range(i + 1, 6))
    assert fig.axes[0].get_xlim() == (-0.02, 1.02)  # noise of 0.003 is not blown up to fill the axis
    plt.close(fig)


def test_all_zero_plot_says_so():
    fig = plots.per_class_bars({c: {"recall": 0.0, "support": 3} for c in CHEST[:5]}, "recall")
    assert any("is 0" in t for t in _texts(fig))
    fig2 = plots.per_class_bars({"a": {"recall": 0.5, "support": 3}, "b": {"recall": 0.0, "support": 3}}, "recall")
    assert not any("is 0" in t for t in _texts(fig2))
    plt.close("all")


def test_wise_ft_title_says_what_is_interpolated():
    fig = plots.wise_curve([0, .5, 1], [.6, .62, .61], title="pneumoniamnist")
    assert "interpolated" in fig.axes[0].get_title() and "zero-shot" in fig.axes[0].get_title()
    assert fig.axes[0].get_ylim() == (0.0, 1.02)
    plt.close(fig)


def _sota(metric, values, notes):
    return pd.DataFrame({"label": ["medclip-tiny (random init) · zero-shot", "ResNet-18 · supervised",
                                   "ResNet-18 (28) · supervised, trained from scratch by the authors of the study"],
                         "value": values, "ci_low": [values[0] - .02, values[1] - .02, None],
                         "ci_high": [values[0] + .02, values[1] + .02, None], "published": [False, False, True],
                         "metric": [metric] * 3, "note": notes})


def test_sota_bars_mark_not_comparable_and_draw_chance_lines():
    df = _sota("acc", [.45, .82, .854], ["", "", "NOT COMPARABLE: our data here is a generated fixture; 28 px"])
    fig = plots.bar_with_ci(df, x="label", y="value", lo="ci_low", hi="ci_high", hatch="published",
                            horizontal=True, majority=0.625)
    ax = fig.axes[0]
    bars = ax.patches
    assert to_hex(bars[2].get_facecolor()) == to_hex("0.75") and to_hex(bars[0].get_facecolor()) != to_hex("0.75")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "NOT COMPARABLE" in labels[2] and "NOT COMPARABLE" not in labels[0]
    assert all(len(line) <= 34 for lab in labels for line in lab.split("\n"))  # wrapped, not cut off
    assert [tuple(line.get_xdata()) for line in ax.lines if line.get_linestyle() == ":"] == [(0.625, 0.625)]
    plt.close(fig)
    df = _sota("auroc", [.41, .82, .944], ["", "", ""])
    fig = plots.bar_with_ci(df, x="label", y="value", lo="ci_low", hi="ci_high", hatch="published", horizontal=True)
    ax = fig.axes[0]
    assert [tuple(line.get_xdata()) for line in ax.lines if line.get_linestyle() == "--"] == [(0.5, 0.5)]
    assert "AUROC < 0.5" in ax.get_xlabel()
    plt.close(fig)


def test_wide_class_count_figure_fits_the_page():
    counts = pd.DataFrame({"train": range(10, 24), "val": range(1, 15), "test": range(2, 16)}, index=CHEST)
    fig = plots.class_counts_bar(counts, log=True)
    w, h = fig.get_size_inches()
    assert w <= plots.PAGE_WIDTH_IN and h <= 9.0
    plt.close(fig)


def test_figures_of_generated_data_say_generated(tmp_path):
    prof = load_profile("full", {"reports_dir": str(tmp_path)})
    tables = tmp_path / "full" / "tables"
    tables.mkdir(parents=True)
    pd.DataFrame({"dataset": ["pneumoniamnist", "chestxray14"], "synthetic": [False, True]}).to_csv(
        tables / "data_summary.csv", index=False)
    fig = plots.per_class_bars({"a": {"recall": .5, "support": 3}}, "recall", title="chest recall")
    plots.save_figure(fig, prof, "02_per_class_recall__chestxray14__tiny__zero-shot")
    assert fig.get_suptitle().startswith("GENERATED DATA — chest recall")
    fig = plots.per_class_bars({"a": {"recall": .5, "support": 3}}, "recall", title="pneumonia recall")
    plots.save_figure(fig, prof, "02_per_class_recall__pneumoniamnist__tiny__zero-shot")
    assert "GENERATED" not in fig.get_suptitle()
    plt.close("all")
