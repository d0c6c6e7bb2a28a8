import inspect

import numpy as np
import pytest
from sklearn.metrics import f1_score

from medlib.metrics import thresholds

from medlib.train import class_weights
from medlib.errors import MedlibError
from medlib.train.class_weights import class_balanced_weights


def test_inverse_frequency_and_effective_number_weights():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    w = class_weights.inverse_frequency_weights(labels, 3)
    assert w.sum() == pytest.approx(3.0)
    np.testing.assert_allclose(w / w[0], [1.0, 80 / 15, 16.0])
    e = class_weights.effective_number_weights(labels, 3, beta=0.9)
    np.testing.assert_allclose(e, class_balanced_weights([80, 15, 5], 0.9))
    # beta -> 1 approaches inverse frequency (Cui et al.)
    np.testing.assert_allclose(class_weights.effective_number_weights(labels, 3, beta=1 - 1e-9), w, rtol=1e-4)
    assert class_weights.class_priors(labels, 3) == pytest.approx([0.8, 0.15, 0.05])


def test_multilabel_counts_and_pos_weights():
    y = np.array([[1, 0], [1, 0], [0, 0], [1, 1]])
    np.testing.assert_array_equal(class_weights.class_counts(y, 2), [3, 1])
    np.testing.assert_allclose(class_weights.pos_weights(y), [1 / 3, 3.0])


def test_balanced_sampler_converges_to_uniform():
    labels = np.array([0] * 900 + [1] * 90 + [2] * 10)
    s = class_weights.balanced_sampler(labels, seed=0, num_samples=30000)
    idx = np.array(list(s))
    freq = np.bincount(labels[idx], minlength=3) / len(idx)
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.015)
    # seeded: a new sampler with the same seed draws the same indices
    np.testing.assert_array_equal(idx, np.array(list(class_weights.balanced_sampler(labels, 0, 30000))))


def test_multilabel_sampler_oversamples_rare_label():
    rng = np.random.default_rng(0)
    y = np.zeros((2000, 3), dtype=int)
    y[:, 0] = rng.random(2000) < 0.5
    y[:40, 2] = 1  # 2% prevalence
    idx = np.array(list(class_weights.balanced_sampler(y, seed=1)))
    assert y[idx, 2].mean() > 0.2


def test_tune_thresholds_uses_only_validation_arrays():
    params = list(inspect.signature(thresholds.tune_thresholds).parameters)
    assert params == ["y_true_val", "y_score_val", "metric"]
    rng = np.random.default_rng(0)
    y_val = (rng.random(400) < 0.3).astype(int)
    p1 = np.clip(0.25 + 0.3 * y_val + rng.normal(0, 0.12, 400), 0, 1)
    s_val = np.stack([1 - p1, p1], 1)
    (t,) = thresholds.tune_thresholds(y_val, s_val, metric="f1")
    # the chosen threshold is the F1-best cut on validation (brute force over the val scores)
    best = max(f1_score(y_val, (p1 >= c).astype(int)) for c in np.unique(p1))
    assert f1_score(y_val, thresholds.apply_thresholds(s_val, [t], "multiclass")) == pytest.approx(best)
    assert t < 0.5  # the positive class is under-scored: a lower cut than argmax
    (tb,) = thresholds.tune_thresholds(y_val, s_val, metric="balanced_acc")
    assert 0 < tb < 1


def test_multilabel_thresholds_per_class_and_apply():
    rng = np.random.default_rng(1)
    y = (rng.random((300, 3)) < [0.5, 0.2, 0.05]).astype(int)
    s = np.clip(0.2 + 0.4 * y + rng.normal(0, 0.1, y.shape), 0, 1)
    t = thresholds.tune_thresholds(y, s, metric="f1")  # this test checks F1; the default is balanced_acc
    assert t.shape == (3,)
    pred = thresholds.apply_thresholds(s, t, "multilabel")
    assert pred.shape == y.shape and set(np.unique(pred)) <= {0, 1}
    for c in range(3):
        assert f1_score(y[:, c], pred[:, c]) >= f1_score(y[:, c], (s[:, c] >= 0.5).astype(int))


def test_thresholds_reject_many_class_scores():
    with pytest.raises(MedlibError):
        thresholds.tune_thresholds(np.array([0, 1, 2]), np.eye(3))
    with pytest.raises(MedlibError, match="unknown metric"):  # also when a label has one class only
        thresholds.tune_thresholds(np.zeros((4, 2), dtype=int), np.full((4, 2), 0.5), metric="accuracy")
