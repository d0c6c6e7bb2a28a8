"""medlib.models.prompts: phrases, templates, prompts, captions from labels."""

from __future__ import annotations

import numpy as np
import pytest

from medlib.errors import MedlibError
from medlib.models.prompts import (NO_FINDING, captions_from_labels, class_phrase, class_prompts, join_phrases,
                         negative_prompts, negative_templates_for, templates_for)

CHEST = ["Atelectasis", "Pleural_Thickening", "Effusion"]


@pytest.mark.parametrize("raw,phrase", [
    ("pleural_thickening", "pleural thickening"), ("Pleural_Thickening", "pleural thickening"),
    ("No Finding", "no finding"), ("  ground-glass__opacity ", "ground glass opacity"), ("CHEST", "chest"),
])
def test_class_phrase(raw, phrase):
    assert class_phrase(raw) == phrase


def test_class_phrase_rejects_empty():
    with pytest.raises(MedlibError, match="empty"):
        class_phrase(" _ ")


@pytest.mark.parametrize("domain", ["chest_xray", "medical", "general"])
def test_templates_per_domain(domain):
    pos, neg = templates_for(domain), negative_templates_for(domain)
    assert len(pos) >= 5 and len(neg) >= 3 and len(set(pos)) == len(pos)
    assert all(t.count("{}") == 1 for t in pos + neg)
    templates_for(domain).append("mutated {}")
    assert templates_for(domain) == pos  # callers get a copy


def test_known_templates_and_unknown_domain():
    assert templates_for("chest_xray")[0] == "a chest X-ray showing {}."
    assert templates_for("general")[0] == "a photo of {}."
    with pytest.raises(MedlibError, match="domain 'dental'.*chest_xray"):
        templates_for("dental")


def test_class_prompts_shape_and_format():
    prompts = class_prompts(CHEST, ["a chest X-ray showing {}.", "{} on X-ray"])
    assert prompts == [
        ["a chest X-ray showing atelectasis.", "atelectasis on X-ray"],
        ["a chest X-ray showing pleural thickening.", "pleural thickening on X-ray"],
        ["a chest X-ray showing effusion.", "effusion on X-ray"],
    ]
    assert negative_prompts(CHEST[:1], "chest_xray")[0][0] == "a chest X-ray with no atelectasis."
    with pytest.raises(MedlibError, match="placeholder"):
        class_prompts(CHEST, ["no placeholder"])
    with pytest.raises(MedlibError, match="empty template list"):
        class_prompts(CHEST, [])


def test_join_phrases():
    assert join_phrases([]) == "" and join_phrases(["a"]) == "a"
    assert join_phrases(["a", "b"]) == "a and b" and join_phrases(["a", "b", "c"]) == "a, b and c"


def test_captions_multiclass_deterministic_and_varied():
    labels = np.array([0, 1, 1, 0, 1] * 20)
    a = captions_from_labels(labels, ["normal", "pneumonia"], "chest_xray", np.random.default_rng(0))
    b = captions_from_labels(labels, ["normal", "pneumonia"], "chest_xray", np.random.default_rng(0))
    assert a == b and len(a) == 100
    assert all(("pneumonia" in c) == bool(y) and ("normal" in c) == (not y) for c, y in zip(a, labels))
    filled = {t.format("pneumonia") for t in templates_for("chest_xray")}
    assert {c for c, y in zip(a, labels) if y} <= filled and len(set(a)) > 4  # templates are sampled


def test_captions_multilabel_lists_positives_and_no_finding():
    labels = np.array([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    caps = captions_from_labels(labels, CHEST, "chest_xray", np.random.default_rng(1), templates=["X: {}."])
    assert caps == ["X: atelectasis and effusion.", f"X: {NO_FINDING}.", "X: pleural thickening."]


def test_captions_reject_bad_labels():
    rng = np.random.default_rng(0)
    with pytest.raises(MedlibError, match="label 2 outside the class list"):
        captions_from_labels(np.array([0, 2]), ["a", "b"], "medical", rng)
    with pytest.raises(MedlibError, match="3 label columns for 2"):
        captions_from_labels(np.zeros((2, 3), int), ["a", "b"], "medical", rng)
    with pytest.raises(MedlibError, match="0 or 1"):
        captions_from_labels(np.full((2, 2), 2), ["a", "b"], "medical", rng)
