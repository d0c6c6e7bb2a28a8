"""Every weighting scheme reaches the loss it names; an option a loss does not use is an error."""

import numpy as np
import pytest
import torch

from medlib.train import class_weights, losses
from medlib.errors import MedlibError
from medlib.studies.remedies import remedy_kwargs
from medlib.config import load_profile


def _batch():
    rng = np.random.default_rng(0)
    labels = (rng.random((400, 3)) < [0.4, 0.1, 0.02]).astype(np.int64)
    z = torch.from_numpy(rng.normal(0, 1, (32, 3))).float()
    y = torch.from_numpy(labels[:32])
    return labels, z, y


def test_multilabel_inverse_freq_and_effective_number_give_different_losses():
    labels, z, y = _batch()
    P = load_profile("smoke")
    values = {}
    for remedy in ("none", "inverse_freq", "effective_number"):
        kw = remedy_kwargs(remedy, "multilabel", P)
        fn = losses.make_loss("multilabel", kw["loss"], kw.get("loss_kwargs", {}), labels, 3, torch.device("cpu"))
        values[remedy] = float(fn(z, y))
    assert values["inverse_freq"] != pytest.approx(values["effective_number"], rel=1e-4)
    assert values["none"] != pytest.approx(values["inverse_freq"], rel=1e-4)
    # the per-label positive weights are the schemes' w_pos / w_neg
    pos, neg = labels.sum(0), len(labels) - labels.sum(0)
    np.testing.assert_allclose(class_weights.pos_weights(labels, "inverse_freq"), neg / pos)
    b = P.imbalance.cb_beta
    np.testing.assert_allclose(class_weights.pos_weights(labels, "effective_number", b), (1 - b ** neg) / (1 - b ** pos))


@pytest.mark.parametrize("mode,loss,kw", [("label", "ce", {"gamma": 2.0}),
                                          ("label", "logit_adjust", {"weights": "inverse_freq"}),
                                          ("label", "weighted_ce", {"weights": "inverse_freq", "beta": 0.99}),
                                          ("multilabel", "bce", {"tau": 1.0}),
                                          ("multilabel", "focal", {"weights": "inverse_freq"}),
                                          ("multilabel", "weighted_bce", {"gamma": 2.0})])
def test_an_option_the_loss_does_not_use_is_an_error(mode, loss, kw):
    labels, _, _ = _batch()
    y = labels if mode == "multilabel" else labels[:, 0]
    c = 3 if mode == "multilabel" else 2
    with pytest.raises(MedlibError, match="does not use|only with"):
        losses.make_loss(mode, loss, kw, y, c, torch.device("cpu"))
