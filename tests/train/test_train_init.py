"""The fine-tuning head starts at the zero-shot classifier, and every run logs where it started (epoch 0)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from medlib.models import zeroshot
from medlib.config import ModelSpec, TrainConfig
from medlib.models import load_model
from medlib.models.prompts import class_prompts, negative_prompts, negative_templates_for, templates_for
from medlib.train import engine, heads
from medlib.train.fit import fit
from medlib.train.validation import val_metric
from helpers import make_data

CFG = TrainConfig(epochs=1, batch_size=64, lr=1e-3, weight_decay=0.05, warmup_steps=2, patience=0, augment=False)


@pytest.fixture(scope="module")
def tiny():
    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))


@pytest.fixture(scope="module")
def vit_b32():
    """ViT-B-32 with random weights (no download): logit scale 1/0.07, 512-d embeddings."""
    return load_model(ModelSpec(name="vitb32", arch="ViT-B-32"))


@pytest.mark.parametrize("model", ["tiny", "vit_b32"])
@pytest.mark.parametrize("task", ["multiclass", "multilabel"])
def test_initial_head_reproduces_zero_shot_scores(request, model, task):
    bundle = request.getfixturevalue(model)
    data = make_data(n_train=8, n_val=8, multilabel=task == "multilabel")
    images = data.splits["test"].images[:12]
    templates = templates_for("chest_xray")
    zs = zeroshot.zero_shot_scores(bundle, images, data.class_names, task, templates, progress=False)
    texts = class_prompts(data.class_names, templates)
    mode = "multilabel" if task == "multilabel" else "label"
    neg = negative_prompts(data.class_names, "chest_xray") if mode == "multilabel" else None
    head = heads.head_from_texts(bundle, texts, neg)
    got = heads.predict(bundle, images, mode=mode, head=head)
    assert np.abs(got - zs).max() <= 1e-5
    # the engine builds the same head by default (multilabel: the domain's negative prompts)
    eng = engine.Engine(bundle, data, mode, CFG, 0, texts, "ce", {}, "none", None)
    np.testing.assert_allclose(heads.predict(bundle, images, mode=mode, head=eng.classifier.head), zs, atol=1e-5)


def test_multilabel_zero_shot_head_is_not_positive_prompts_alone(tiny):
    """The old head (s * pos, zero bias) gives sigmoid(s * cos) -- not the pairwise zero-shot score."""
    data = make_data(n_train=8, n_val=8, multilabel=True)
    texts = class_prompts(data.class_names, templates_for("chest_xray"))
    neg = class_prompts(data.class_names, negative_templates_for("chest_xray"))
    w = heads.head_from_texts(tiny, texts, neg).weight.detach()
    pos = zeroshot.classifier_weights(tiny, texts)
    assert not np.allclose(w.numpy(), pos.numpy(), atol=1e-3)


@pytest.mark.parametrize("mode", ["label", "multilabel"])
def test_log_starts_with_epoch_zero_equal_to_zero_shot(tiny, tmp_path, mode):
    data = make_data(n_train=64, n_val=32, multilabel=mode == "multilabel")
    texts = class_prompts(data.class_names, templates_for("chest_xray"))
    fit(tiny, data, mode=mode, cfg=CFG, run_dir=tmp_path, seed=0, class_texts=texts, progress=False)
    log = pd.read_csv(tmp_path / "log.csv")
    assert list(log["epoch"]) == [0, 1]
    task = "multilabel" if mode == "multilabel" else "multiclass"
    val = data.splits["val"]
    zs = zeroshot.zero_shot_scores(tiny, val.images, data.class_names, task, templates_for("chest_xray"),
                                   progress=False)
    assert log["val_metric"].iloc[0] == pytest.approx(val_metric(val.labels, zs, mode == "multilabel"), abs=1e-9)
    assert np.isnan(log["train_loss"].iloc[0])


def test_one_prompt_ensembling_for_zero_shot_and_heads(tiny):
    texts = class_prompts(["normal", "pneumonia"], templates_for("chest_xray"))
    np.testing.assert_array_equal(zeroshot.class_embeddings(tiny, ["normal", "pneumonia"], templates_for("chest_xray")),
                                  zeroshot.class_text_embeddings(tiny, texts).cpu().numpy())
    assert not hasattr(heads, "class_text_embeddings")  # the second implementation is gone
    with pytest.raises(Exception, match="same number of prompts"):
        zeroshot.class_text_embeddings(tiny, [["a", "b"], ["c"]])


def test_a_contrastive_set_smaller_than_one_batch_names_the_setting_that_fits(tiny, tmp_path):
    from medlib.errors import MedlibError

    with pytest.raises(MedlibError) as err:
        fit(tiny, make_data(n_train=42), mode="contrastive", cfg=dataclasses.replace(CFG, lock_text=False),
            run_dir=tmp_path / "run", seed=0, progress=False)
    line = str(err.value)
    assert "\n" not in line and "42 training pairs < batch size 64" in line
    assert "--set caption_finetune.train.batch_size=32" in line
