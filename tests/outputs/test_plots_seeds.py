"""Plot helpers for several seeds, label efficiency, the comparison bars and paired differences."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd

from medlib.outputs import plots
def test_seed_bars_draw_the_mean_with_min_max_whiskers_and_the_majority_rate():
    summary = pd.DataFrame({"method": ["zero-shot", "label-ft"], "metric": ["acc", "acc"], "mean": [0.6, 0.8],
                            "min": [0.6, 0.75], "max": [0.6, 0.85], "n_seeds": [1, 2], "sd": [np.nan, 0.07]})
    fig = plots.seed_bars(summary, "acc", majority=0.625)
    ax = fig.axes[0]
    assert [round(b.get_height(), 3) for b in ax.patches] == [0.6, 0.8]
    whisker = [c for c in ax.collections if len(c.get_segments())][0].get_segments()[0]
    assert np.allclose(sorted(whisker[:, 1]), [0.75, 0.85])
    assert any(np.allclose(line.get_ydata(), 0.625) for line in ax.lines)
    assert ax.get_ylim() == (0.0, 1.0)


def test_sota_bars_grey_and_label_not_comparable_rows():
    df = pd.DataFrame({"model": ["tiny", "ResNet-18 (224)", "ResNet-18 (28)"], "method": ["label-ft", "sup", "sup"],
                       "metric": ["acc"] * 3, "value": [0.8, 0.86, 0.85], "ci_low": [0.75, None, None],
                       "ci_high": [0.85, None, None], "source": ["measured", "MedMNIST v2", "MedMNIST v2"],
                       "comparable": [True, False, True], "resolution": ["28 px", "224 px", "28 px"],
                       "majority_rate": [0.625] * 3})
    fig = plots.sota_bars(df)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert "NOT COMPARABLE" in labels[1] and "NOT COMPARABLE" not in labels[2] and "published" not in labels[0]
    bars = ax.patches
    assert bars[1].get_facecolor() == matplotlib.colors.to_rgba("lightgrey") and bars[1].get_hatch() == "//"
    assert any(np.allclose(line.get_xdata(), 0.625) for line in ax.lines)


def test_label_efficiency_plot_draws_mean_and_sd_band_per_method():
    s = pd.DataFrame({"method": ["label-ft"] * 3, "shots_per_class": ["1", "4", "all"], "mean": [0.5, 0.6, 0.8],
                      "sd": [0.1, 0.05, np.nan]})
    fig = plots.label_efficiency_plot(s, zero_shot=0.55, majority=0.62)
    ax = fig.axes[0]
    assert np.allclose(ax.lines[0].get_ydata(), [0.5, 0.6, 0.8])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert np.isclose(band.max(), 0.8) and np.isclose(band.min(), 0.4)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "all"]


def test_paired_differences_plot_one_interval_per_row():
    df = pd.DataFrame({"dataset": ["d", "d"], "method_a": ["label FT", "caption FT"], "method_b": ["zero-shot"] * 2,
                       "metric": ["acc", "acc"], "seed": ["pooled"] * 2, "diff": [0.2, -0.01],
                       "ci_low": [0.1, -0.05], "ci_high": [0.3, 0.03]})
    fig = plots.paired_differences_plot(df)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == 2 and "label FT − zero-shot" in labels[0]


def test_sota_bars_draw_seed_range_for_several_seeds():
    df = pd.DataFrame({"model": ["tiny"], "method": ["label-ft"], "metric": ["acc"], "value": [0.5], "ci_low": [None],
                       "ci_high": [None], "min": [0.4], "max": [0.6], "n_seeds": [2], "source": ["measured"],
                       "comparable": [True], "resolution": ["28 px"], "majority_rate": [0.6]})
    ax = plots.sota_bars(df).axes[0]
    whisker = [c for c in ax.collections if len(c.get_segments())][0].get_segments()[0]
    assert np.allclose(sorted(whisker[:, 0]), [0.4, 0.6])
    assert "mean of 2 seeds" in ax.get_yticklabels()[0].get_text()
