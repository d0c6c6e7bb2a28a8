"""Class names -> readable phrases -> prompts; prompt-template ensembles; captions built from labels.

Domains pick the template set: ``chest_xray`` (ChestX-ray14, ChestMNIST, PneumoniaMNIST, MIMIC-CXR),
``medical`` (PubMedVision and other mixed-modality sets) and ``general`` (Flickr30K/COCO, CLIP's own
"a photo of {}." family). A profile may give a dataset its own templates and the phrase each class name stands
for (``DatasetSpec.templates``, ``class_texts``; :func:`phrases_for`), which ``medlib.studies.setup`` prefers.

Multi-label zero-shot scores each class with a positive-vs-negative prompt pair
("a chest X-ray showing effusion." vs "a chest X-ray with no effusion."): :func:`negative_templates_for`
gives the negative ensemble for a domain, :func:`negative_prompts` fills it.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..errors import fail

TEMPLATES: dict[str, list[str]] = {
    "chest_xray": [
        "a chest X-ray showing {}.",  # the ChestX-ray14 CLIP study's prompt
        "a chest radiograph with {}.",
        "a frontal chest X-ray with findings of {}.",
        "a radiology image of the chest showing {}.",
        "a chest X-ray of a patient with {}.",
        "{} seen on a chest X-ray.",
    ],
    "medical": [
        "a medical image showing {}.",
        "a medical image of {}.",
        "a clinical image of {}.",
        "a radiology image of {}.",
        "a scan showing {}.",
        "an image from a medical article showing {}.",
    ],
    "general": [
        "a photo of {}.",
        "a picture of {}.",
        "an image of {}.",
        "a close-up photo of {}.",
        "a photo showing {}.",
    ],
}

NEGATIVE_TEMPLATES: dict[str, list[str]] = {
    "chest_xray": [
        "a chest X-ray with no {}.",
        "a chest radiograph without {}.",
        "a chest X-ray showing no evidence of {}.",
        "a chest X-ray of a patient without {}.",
        "no {} seen on a chest X-ray.",
    ],
    "medical": [
        "a medical image with no {}.",
        "a medical image without {}.",
        "a clinical image showing no {}.",
        "a scan showing no evidence of {}.",
    ],
    "general": [
        "a photo without {}.",
        "a picture with no {}.",
        "an image without {}.",
    ],
}

NO_FINDING = "no finding"
_SEP = re.compile(r"[\s_\-]+")


def class_phrase(name: str) -> str:
    """Raw class name -> readable lowercase phrase: ``"Pleural_Thickening"`` -> ``"pleural thickening"``."""
    phrase = _SEP.sub(" ", str(name)).strip().lower()
    if not phrase:
        raise fail(f"class name {name!r}", "empty after cleaning", "give every class a non-empty name")
    return phrase


def phrases_for(class_names: Sequence[str], class_texts: dict[str, str] | None, where: str = "class_texts") -> list[str]:
    """The text each class stands for in prompts: ``class_texts[name]`` where the profile gives one (``{"mel":
    "melanoma"}``), else the class name itself (cleaned by :func:`class_prompts`). A key that is not one of the
    data's class names is a one-line error naming ``where`` and the class names."""
    names = [str(c) for c in class_names]
    unknown = sorted(set(class_texts or {}) - set(names))
    if unknown:
        raise fail(where, f"names class(es) {unknown} the data does not have",
                   f"use the data's class names {names}")
    return [str((class_texts or {}).get(c, c)).strip() for c in names]


def _check_domain(domain: str, table: dict[str, list[str]]) -> list[str]:
    if domain not in table:
        raise fail(f"domain {domain!r}", "no prompt templates for this domain", f"use one of {sorted(table)}")
    return list(table[domain])


def templates_for(domain: str) -> list[str]:
    """The prompt ensemble for ``domain`` (each template has one ``{}`` for the class phrase)."""
    return _check_domain(domain, TEMPLATES)


def negative_templates_for(domain: str) -> list[str]:
    """The "absent" prompt ensemble for ``domain`` (multi-label zero-shot's negative side)."""
    return _check_domain(domain, NEGATIVE_TEMPLATES)


def _check_templates(templates: Sequence[str]) -> None:
    if not templates:
        raise fail("templates", "empty template list", "give at least one template such as 'a photo of {}.'")
    for t in templates:
        if t.count("{}") != 1:
            raise fail(f"template {t!r}", "must contain exactly one '{}' placeholder", "add/remove '{}'")


def class_prompts(class_names: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """``[[template.format(phrase) for template in templates] for each class]`` (C lists of T prompts)."""
    _check_templates(templates)
    return [[t.format(class_phrase(c)) for t in templates] for c in class_names]


def negative_prompts(class_names: Sequence[str], domain: str = "chest_xray",
                     templates: Sequence[str] | None = None) -> list[list[str]]:
    """Negative prompts per class ("a chest X-ray with no effusion."), same shape as class_prompts."""
    return class_prompts(class_names, list(templates) if templates else negative_templates_for(domain))


def join_phrases(phrases: Sequence[str]) -> str:
    """``["a"]`` -> "a"; ``["a", "b", "c"]`` -> "a, b and c"."""
    phrases = list(phrases)
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def captions_from_labels(labels: np.ndarray, class_names: Sequence[str], domain: str,
                         rng: np.random.Generator, templates: Sequence[str] | None = None) -> list[str]:
    """One caption per example from its label(s), with a template sampled from ``rng``.

    ``labels`` (N,) int class indices -> "a chest X-ray showing pneumonia.";
    ``labels`` (N, C) 0/1 multi-label -> every positive listed ("... effusion and mass."),
    "no finding" where none is positive.
    """
    templates = list(templates) if templates else templates_for(domain)
    _check_templates(templates)
    phrases = [class_phrase(c) for c in class_names]
    labels = np.asarray(labels)
    n_cls = len(phrases)
    picks = rng.integers(0, len(templates), size=labels.shape[0])
    if labels.ndim == 1:
        bad = (labels < 0) | (labels >= n_cls)
        if bad.any():
            raise fail("labels", f"label {labels[bad][0]} outside the class list (0..{n_cls - 1})",
                       "check the dataset's labels against its class_names")
        return [templates[p].format(phrases[int(y)]) for p, y in zip(picks, labels)]
    if labels.ndim == 2:
        if labels.shape[1] != n_cls:
            raise fail("labels", f"{labels.shape[1]} label columns for {n_cls} class names",
                       "pass one column per class name")
        if not np.isin(labels, (0, 1)).all():
            raise fail("labels", "multi-label values must be 0 or 1", "binarise the label matrix")
        out = []
        for p, row in zip(picks, labels):
            pos = [phrases[j] for j in np.flatnonzero(row)]
            out.append(templates[p].format(join_phrases(pos) if pos else NO_FINDING))
        return out
    raise fail("labels", f"expected shape (N,) or (N, C), got {labels.shape}", "pass class indices or a 0/1 matrix")
