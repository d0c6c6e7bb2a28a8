import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medlib.train import class_weights, losses
from medlib.errors import MedlibError


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(32, 4, generator=g) * 3
    target = torch.randint(0, 4, (32,), generator=g)
    return logits, target


def test_focal_gamma0_is_cross_entropy(batch):
    logits, target = batch
    torch.testing.assert_close(losses.focal_loss(logits, target, gamma=0.0), F.cross_entropy(logits, target),
                               rtol=0, atol=1e-6)
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    torch.testing.assert_close(losses.focal_loss(logits, target, gamma=0.0, weight=w),
                               F.cross_entropy(logits, target, weight=w), rtol=0, atol=1e-6)


def test_focal_downweights_easy_examples(batch):
    logits, target = batch
    ce = F.cross_entropy(logits, target, reduction="none")
    fl = torch.stack([losses.focal_loss(logits[i:i + 1], target[i:i + 1], gamma=2.0) for i in range(32)])
    assert (fl <= ce + 1e-7).all()
    p = torch.softmax(logits, 1).gather(1, target[:, None]).squeeze(1)
    torch.testing.assert_close(fl, (1 - p) ** 2 * ce)


def test_logit_adjust_tau0_is_cross_entropy(batch):
    logits, target = batch
    priors = np.array([0.7, 0.2, 0.05, 0.05])
    torch.testing.assert_close(losses.logit_adjusted_loss(logits, target, priors, tau=0.0),
                               F.cross_entropy(logits, target), rtol=0, atol=0)
    adj = logits + 1.0 * torch.log(torch.tensor(priors, dtype=torch.float32))
    torch.testing.assert_close(losses.logit_adjusted_loss(logits, target, priors, tau=1.0),
                               F.cross_entropy(adj, target))


def test_class_balanced_weights_formula():
    counts = np.array([1000, 100, 10])
    w = class_weights.class_balanced_weights(counts, beta=0.99)
    raw = (1 - 0.99) / (1 - 0.99 ** counts)
    np.testing.assert_allclose(w, raw / raw.sum() * 3)
    assert w.sum() == pytest.approx(3.0)
    assert w[2] > w[1] > w[0]
    np.testing.assert_allclose(class_weights.class_balanced_weights(counts, beta=0.0), np.ones(3))  # beta 0: no reweighting
    with pytest.raises(MedlibError, match="cb_beta"):  # a profile value: one-line error naming the key
        class_weights.class_balanced_weights(counts, beta=1.0)


def test_label_aware_targets_hand_made():
    t = losses.label_aware_targets(torch.tensor([0, 1, 0, 2, 1, 0]))
    third, half = 1 / 3, 1 / 2
    expected = torch.tensor([
        [third, 0, third, 0, 0, third],
        [0, half, 0, 0, half, 0],
        [third, 0, third, 0, 0, third],
        [0, 0, 0, 1, 0, 0],
        [0, half, 0, 0, half, 0],
        [third, 0, third, 0, 0, third],
    ])
    torch.testing.assert_close(t, expected)
    ml = losses.label_aware_targets(torch.tensor([[1, 0], [1, 0], [1, 1]]))
    torch.testing.assert_close(ml, torch.tensor([[.5, .5, 0], [.5, .5, 0], [0, 0, 1.]]))


def test_label_aware_equals_clip_loss_when_labels_distinct():
    g = torch.Generator().manual_seed(1)
    img = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    txt = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    scale = torch.tensor(10.0)
    torch.testing.assert_close(losses.label_aware_clip_loss(img, txt, scale, torch.arange(8)),
                               losses.clip_loss(img, txt, scale))
    # a duplicated label makes the pair a positive: perfect same-class texts lower the loss
    lab = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    txt2 = img[torch.tensor([1, 0, 3, 2, 5, 4, 7, 6])]  # each image's text is its same-label partner's image
    assert losses.label_aware_clip_loss(img, txt2, scale, lab) < losses.clip_loss(img, txt2, scale)


def test_multilabel_losses_reduce_to_bce():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(16, 5, generator=g)
    y = (torch.rand(16, 5, generator=g) > 0.7).float()
    bce = F.binary_cross_entropy_with_logits(z, y)
    torch.testing.assert_close(losses.binary_focal_loss(z, y, gamma=0.0), bce)
    torch.testing.assert_close(losses.logit_adjusted_bce(z, y, np.full(5, 0.1), tau=0.0), bce)
    torch.testing.assert_close(losses.weighted_bce(z, y), bce)
    pw = torch.full((5,), 3.0)
    torch.testing.assert_close(losses.weighted_bce(z, y, pos_weight=pw),
                               F.binary_cross_entropy_with_logits(z, y, pos_weight=pw))
