"""Published numbers: spot checks against ../shared/REFERENCES.md, every row cited, fractions in [0, 1]."""

import re
from pathlib import Path

import pytest

from medlib.outputs.references import DATASET_FACTS, REFERENCES, published

REFERENCES_MD = Path(__file__).resolve().parents[3] / "shared" / "REFERENCES.md"


def _value(dataset, metric, model=None, method=None, label=""):
    df = published(dataset=dataset, metric=metric)
    if model is not None:
        df = df[df["model"] == model]
    if method is not None:
        df = df[df["method"].str.contains(method, regex=False)]
    df = df[df["label"] == label]
    assert len(df) == 1, (dataset, metric, model, method, label, df)
    return float(df["value"].iloc[0])


def test_spot_checks():
    assert _value("pneumoniamnist", "auroc", "ResNet-18 (28)") == 0.944
    assert _value("pneumoniamnist", "acc", "ResNet-50 (224)") == 0.884
    assert _value("pneumoniamnist", "acc", "Google AutoML Vision") == 0.946
    assert _value("chestmnist", "auroc", "auto-sklearn") == 0.649
    assert _value("dermamnist", "acc", "ResNet-18 (28)") == 0.735
    assert _value("pneumoniamnist", "acc", "CLIP ViT-B/16", "linear probe") == pytest.approx(0.8499)  # 84.99 %
    assert _value("chestmnist", "auroc", "DenseNet-121") == pytest.approx(0.8222)
    assert _value("pubmedvision", "acc", method="pretrained") == pytest.approx(0.494)
    assert _value("pubmedvision", "top3", method="labels") == pytest.approx(0.921)
    assert _value("chestxray14", "auroc", label="Hernia") == pytest.approx(0.9164)
    assert _value("chestxray14", "auroc", label="") == pytest.approx(0.841)
    assert _value("rsna_pneumonia", "acc", "BiomedCLIP") == pytest.approx(0.7895)
    assert DATASET_FACTS["pneumoniamnist"] == {**DATASET_FACTS["pneumoniamnist"], "train": 4708, "val": 524,
                                               "test": 624}


def test_every_row_cited_and_a_fraction():
    assert len(REFERENCES) >= 60
    df = published()
    assert (df["source"].str.len() > 20).all()
    assert df["value"].between(0, 1).all()
    assert set(df["metric"]) <= {"acc", "top3", "auroc", "i2t_R@5", "t2i_R@5"}
    chex = published("chestxray14")
    assert chex["note"].str.startswith("NOT COMPARABLE").all()  # CheXNet's split is not the official one
    pmv = published("pubmedvision")  # the study's own 4,096 sample, not ours
    assert len(pmv) == 6 and pmv["note"].str.startswith("NOT COMPARABLE").all()
    assert df["resolution"].str.match(r"^\d+ px").all()
    assert set(published("pneumoniamnist").query("model == 'ResNet-18 (224)'")["resolution"]) == {
        "224 px (28 px images resized)"}
    assert published(metric="top3")["dataset"].unique().tolist() == ["pubmedvision"]


@pytest.mark.skipif(not REFERENCES_MD.is_file(), reason="../shared/REFERENCES.md not present")
def test_every_value_appears_in_references_md():
    text = REFERENCES_MD.read_text()
    numbers = set(re.findall(r"\d+\.\d+", text))
    for ref in REFERENCES:
        # stored as a fraction; published either as a fraction (0.944) or in percent (83.81, 49.4)
        candidates = {f"{ref.value:.3f}", f"{ref.value:.4f}", f"{ref.value * 100:.2f}", f"{ref.value * 100:.1f}"}
        assert candidates & numbers, ref
