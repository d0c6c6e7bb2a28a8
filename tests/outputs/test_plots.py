import matplotlib

matplotlib.use("Agg")
import numpy as np
from sklearn.metrics import multilabel_confusion_matrix, recall_score

from medlib.outputs import plots
def test_multilabel_confusion_shows_sklearn_recall_per_label():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 3))
    pred = np.where(rng.uniform(size=(200, 3)) < 0.8, y, 1 - y)
    cms = multilabel_confusion_matrix(y, pred)
    fig = plots.multilabel_confusion_plot(cms.tolist(), ["a", "b", "c"], title="t")
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (3, 4)
    assert np.allclose(shown[:, 3], recall_score(y, pred, average=None))  # TPR column = recall
    assert np.allclose(shown[:, 0] + shown[:, 1], 1) and np.allclose(shown[:, 2] + shown[:, 3], 1)
    assert "SMOKE" not in fig._suptitle.get_text()


def test_horizontal_bars_draw_one_bar_per_row_and_hatch_published():
    import pandas as pd

    df = pd.DataFrame({"label": ["ours", "theirs"], "value": [0.8, 0.9], "lo": [0.7, None], "hi": [0.85, None],
                       "published": [False, True]})
    fig = plots.bar_with_ci(df, x="label", y="value", lo="lo", hi="hi", hatch="published", horizontal=True)
    bars = fig.axes[0].patches
    assert [round(b.get_width(), 3) for b in bars] == [0.8, 0.9]
    assert [b.get_hatch() for b in bars] == [None, "//"]


def test_horizontal_bars_refuse_hue_instead_of_dropping_it():
    import pandas as pd
    import pytest

    from medlib.errors import MedlibError

    df = pd.DataFrame({"label": ["a", "b"], "value": [0.8, 0.9], "group": ["x", "y"]})
    with pytest.raises(MedlibError, match="hue"):
        plots.bar_with_ci(df, x="label", y="value", hue="group", horizontal=True)
