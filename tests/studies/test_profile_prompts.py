"""Prompts and class texts come from the profile: a dataset's own templates and class phrases; the medical ensembles
only for the sources that use them."""

import dataclasses

import pytest

from helpers import make_data
from medlib.config import DatasetSpec, load_profile
from medlib.errors import MedlibError
from medlib.models.prompts import templates_for
from medlib.studies import setup


def _with(profile, spec):
    return dataclasses.replace(profile, datasets=[*profile.datasets, spec])


def test_a_datasets_own_templates_and_class_phrases_make_its_prompts():
    p = _with(load_profile("smoke"), DatasetSpec(name="toy", source="csv_pairs", templates=["a dermoscopy photo of {}."],
                                                 class_texts={"pneumonia": "a melanoma"}))
    data = make_data(n_train=8, n_val=8)
    assert setup.class_texts(p, data) == [["a dermoscopy photo of normal."], ["a dermoscopy photo of a melanoma."]]


def test_a_csv_dataset_without_templates_gets_clips_general_ones_not_the_medical_ones():
    p = _with(load_profile("smoke"), DatasetSpec(name="toy", source="csv_pairs"))
    data = dataclasses.replace(make_data(n_train=8, n_val=8), domain="medical")  # what the CSV loader says
    assert setup.templates(p, data) == templates_for("general")
    p = _with(load_profile("smoke"), DatasetSpec(name="toy", source="csv_pairs", domain="medical"))
    assert setup.templates(p, data) == templates_for("medical")


def test_the_medical_sources_keep_their_ensembles():
    p = load_profile("smoke")
    data = dataclasses.replace(make_data(n_train=8, n_val=8), name="pneumoniamnist")
    assert setup.templates(p, data) == templates_for("chest_xray")
    assert setup.class_texts(p, data)[1][0] == "a chest X-ray showing pneumonia."


def test_a_class_text_for_a_class_the_data_lacks_is_one_line():
    p = _with(load_profile("smoke"), DatasetSpec(name="toy", source="csv_pairs", class_texts={"mel": "melanoma"}))
    with pytest.raises(MedlibError, match=r"datasets\[toy\].class_texts: names class\(es\) \['mel'\].*Fix"):
        setup.class_texts(p, make_data(n_train=8, n_val=8))
