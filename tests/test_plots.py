import matplotlib

matplotlib.use("Agg")
import numpy as np
from sklearn.metrics import multilabel_confusion_matrix, recall_score

from medlib import plots


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
