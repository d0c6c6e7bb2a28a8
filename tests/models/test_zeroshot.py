"""medlib.models.zeroshot: prompt ensembles, score shapes and ranges, determinism, a rigged model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import medlib.models.zeroshot as zs
from medlib.config import ModelSpec
from medlib.models import load_model, logit_scale
from medlib.models.prompts import class_prompts, negative_templates_for, templates_for

CLASSES = ["normal", "pneumonia", "effusion"]


@pytest.fixture(scope="module")
def tiny():
    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)


def test_encode_images_normalised_batch_invariant_and_restores_mode(tiny, images):
    tiny.model.train()
    a = zs.encode_images(tiny, images, batch_size=7, progress=False)
    assert tiny.model.training  # mode restored
    tiny.model.eval()
    b = zs.encode_images(tiny, images, batch_size=256, progress=False)
    assert a.shape == (40, 64) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(a, b, atol=1e-5)
    t = zs.encode_texts(tiny, ["a", "b", "c"], batch_size=2)
    assert t.shape == (3, 64) and t.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)


def test_class_embeddings_is_mean_of_normalised_then_renormalised(tiny):
    templates = templates_for("chest_xray")
    got = zs.class_embeddings(tiny, CLASSES, templates)
    expected = []
    for prompts in class_prompts(CLASSES, templates):
        with torch.no_grad():
            e = tiny.model.encode_text(tiny.tokenizer(prompts))
        e = e / e.norm(dim=-1, keepdim=True)
        m = e.mean(0)
        expected.append((m / m.norm()).numpy())
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_multiclass_scores_are_softmax_of_scaled_cosines(tiny, images):
    templates = templates_for("chest_xray")
    s = zs.zero_shot_scores(tiny, images, CLASSES, "multiclass", templates, progress=False)
    assert s.shape == (40, 3) and s.dtype == np.float64
    np.testing.assert_allclose(s.sum(1), 1.0, atol=1e-12)
    logits = logit_scale(tiny) * zs.encode_images(tiny, images, progress=False) @ \
        zs.class_embeddings(tiny, CLASSES, templates).T
    expected = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(s, expected / expected.sum(1, keepdims=True), atol=1e-5)
    again = zs.zero_shot_scores(tiny, images, CLASSES, "multiclass", templates, progress=False)
    assert np.array_equal(s, again)  # deterministic


def test_multilabel_scores_in_unit_interval_and_pairwise(tiny, images):
    templates = templates_for("chest_xray")
    s = zs.zero_shot_scores(tiny, images, CLASSES, "multilabel", templates, progress=False)
    assert s.shape == (40, 3) and ((s >= 0) & (s <= 1)).all()
    img = zs.encode_images(tiny, images, progress=False)
    pos = zs.class_embeddings(tiny, CLASSES, templates)
    neg = zs.class_embeddings(tiny, CLASSES, negative_templates_for("chest_xray"))
    pair = logit_scale(tiny) * np.stack([img @ pos.T, img @ neg.T], axis=-1)
    soft = np.exp(pair) / np.exp(pair).sum(-1, keepdims=True)
    np.testing.assert_allclose(s, soft[..., 0], atol=1e-5)
    assert np.array_equal(s, zs.zero_shot_scores(tiny, images, CLASSES, "multilabel", templates, progress=False))
    with pytest.raises(ValueError, match="task"):
        zs.zero_shot_scores(tiny, images, CLASSES, "retrieval", templates, progress=False)


def _rig(monkeypatch, image_emb: np.ndarray) -> None:
    """Text embeddings: e_k for a prompt naming class k, -e_k for its negative ("no <class>")."""
    dim = image_emb.shape[1]

    def texts(bundle, prompts, batch_size=256):
        out = np.zeros((len(prompts), dim), np.float32)
        for i, p in enumerate(prompts):
            k = next(j for j, c in enumerate(CLASSES) if c in p)
            out[i, k] = -1.0 if (" no " in f" {p}" or "without" in p) else 1.0
        return out

    monkeypatch.setattr(zs, "encode_images", lambda bundle, imgs, batch_size=256, progress=True: image_emb)
    def class_text_embeddings(bundle, class_texts):  # the one ensembling step, fed the rigged prompt embeddings
        flat = texts(bundle, [t for per_class in class_texts for t in per_class])
        return torch.from_numpy(zs.ensemble(flat.reshape(len(class_texts), len(class_texts[0]), dim)))

    monkeypatch.setattr(zs, "class_text_embeddings", class_text_embeddings)


def test_rigged_embeddings_give_expected_predictions(tiny, monkeypatch):
    y = np.array([2, 0, 1, 1, 2, 0])
    img = np.eye(4, dtype=np.float32)[y] * 0.9 + 0.1 / 4  # mostly its own class direction
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    _rig(monkeypatch, img)
    s = zs.zero_shot_scores(tiny, np.zeros((6, 28, 28), np.uint8), CLASSES, "multiclass", templates_for("chest_xray"))
    assert np.array_equal(s.argmax(1), y)

    present = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]])
    img = np.concatenate([np.where(present == 1, 1.0, -1.0), np.zeros((4, 1))], axis=1).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    _rig(monkeypatch, img)
    s = zs.zero_shot_scores(tiny, np.zeros((4, 28, 28), np.uint8), CLASSES, "multilabel", templates_for("chest_xray"))
    assert np.array_equal(s > 0.5, present.astype(bool))
