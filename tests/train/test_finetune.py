import copy
import dataclasses
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medlib import train as training

from medlib.train import losses
from medlib.train import engine
from medlib.models.augment import AugmentConfig, augment_batch
from medlib.config import ModelSpec, TrainConfig
from medlib.data.base import DatasetBundle, Split
from medlib.errors import MedlibError
from medlib.models import load_model
from medlib.models.preprocess import bundle_input

from helpers import CFG, CLASS_TEXTS, make_data


@pytest.fixture(scope="module")
def data():
    return make_data()


def _fit(bundle, data, tmp, mode="label", cfg=CFG, **kw):
    return training.train(bundle, data, mode=mode, cfg=cfg, run_dir=tmp, seed=0, class_texts=CLASS_TEXTS,
                          progress=False, **kw)


# ---- losses fall -----------------------------------------------------------------------------------


def test_label_and_contrastive_losses_fall_on_a_small_batch(bundle, data):
    torch.manual_seed(0)
    tr = data.splits["train"]
    x = bundle_input(bundle, tr.images[:32])
    y = torch.as_tensor(tr.labels[:32])
    clf = training.ClipClassifier(copy.deepcopy(bundle.model), training.head_from_texts(bundle, CLASS_TEXTS))
    opt = torch.optim.AdamW(clf.parameters(), lr=1e-3)
    ls = []
    for _ in range(8):
        loss = F.cross_entropy(clf(x), y)
        opt.zero_grad(), loss.backward(), opt.step()
        ls.append(loss.item())
    assert ls[-1] < 0.7 * ls[0]  # cross-entropy

    model = copy.deepcopy(bundle.model)
    tok = bundle.tokenizer([CLASS_TEXTS[int(c)][0] + f" case {i}" for i, c in enumerate(y)])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    ls = []
    for _ in range(20):
        img_f, txt_f, scale = model(x, tok)[:3]
        loss = losses.clip_loss(img_f, txt_f, scale)
        opt.zero_grad(), loss.backward(), opt.step()
        ls.append(loss.item())
    assert ls[-1] < 0.9 * ls[0] and ls[-1] < min(ls[:5])  # CLIP loss


# ---- determinism, resume, checkpoints ----------------------------------------------------------------


@pytest.mark.parametrize("mode,extra", [("label", {}), ("contrastive", {"label_aware": True, "lock_text": False})])
def test_resume_after_interruption_equals_uninterrupted_and_seed_is_deterministic(bundle, data, tmp_path, mode, extra):
    cfg = dataclasses.replace(CFG, **extra)
    test_x = data.splits["test"].images
    full = _fit(bundle, data, tmp_path / "a", mode, cfg)
    p_full = training.predict(full, test_x, mode=mode)
    assert full.resumed_from is None and list(full.history["epoch"]) == [0, 1, 2]  # epoch 0: before training
    assert np.allclose(p_full.sum(1), 1)

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _fit(bundle, data, tmp_path / "b", mode, cfg, on_epoch_end=interrupt)
    resumed = _fit(bundle, data, tmp_path / "b", mode, cfg)
    assert resumed.resumed_from == 1
    np.testing.assert_array_equal(training.predict(resumed, test_x, mode=mode), p_full)
    cols = ["epoch", "train_loss", "val_metric", "lr"]
    assert resumed.history[cols].equals(full.history[cols])
    assert resumed.best_epoch == full.best_epoch

    # same seed, fresh run elsewhere -> identical; fresh=True on a used dir -> starts over, identical
    again = _fit(bundle, data, tmp_path / "b", mode, cfg, fresh=True)
    assert again.resumed_from is None
    np.testing.assert_array_equal(training.predict(again, test_x, mode=mode), p_full)


def test_finished_run_returns_stored_model_immediately(bundle, data, tmp_path):
    first = _fit(bundle, data, tmp_path)
    t0 = time.perf_counter()
    again = _fit(bundle, data, tmp_path)
    assert again.resumed_from == 2 and time.perf_counter() - t0 < 5
    assert again.history.equals(first.history)
    x = data.splits["test"].images
    np.testing.assert_array_equal(training.predict(again, x, mode="label"), training.predict(first, x, mode="label"))
    log = (tmp_path / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,train_loss,val_metric,lr,seconds,images_per_s") and len(log) == 4
    assert log[1].startswith("0,")  # epoch 0: the validation metric before the first update


def test_failed_checkpoint_save_keeps_previous_last_pt(bundle, data, tmp_path, monkeypatch):
    real_save = torch.save
    calls = {"n": 0}

    def flaky_save(obj, f, *a, **k):
        if isinstance(obj, dict) and "history" in obj and obj["epoch"] == 2:  # last.pt of epoch 2
            with open(f, "wb") as fh:
                fh.write(b"half a checkpoint")
            raise OSError("disk full")
        calls["n"] += 1
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError):
        _fit(bundle, data, tmp_path)
    monkeypatch.setattr(torch, "save", real_save)
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck["epoch"] == 1 and not ck["finished"]
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert _fit(bundle, data, tmp_path).resumed_from == 1


def test_interrupted_fresh_start_does_not_resume_the_old_run(bundle, data, tmp_path, monkeypatch):
    cfg = dataclasses.replace(CFG, epochs=1)
    first = _fit(bundle, data, tmp_path, cfg=cfg)

    def boom(self, epoch, progress):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:  # fresh=True, interrupted before its first checkpoint
        m.setattr(engine.Engine, "train_epoch", boom)
        with pytest.raises(KeyboardInterrupt):
            _fit(bundle, data, tmp_path, cfg=cfg, fresh=True)
    again = _fit(bundle, data, tmp_path, cfg=cfg)  # starts over, not from the old (finished) run
    assert again.resumed_from is None
    x = data.splits["test"].images
    np.testing.assert_array_equal(training.predict(again, x, mode="label"), training.predict(first, x, mode="label"))


def test_validation_problems_fail_before_training(bundle, tmp_path):
    d = make_data(multilabel=True)
    d.splits["val"].labels[:] = 0  # no label has a positive in val: AUROC undefined for every label
    with pytest.raises(MedlibError, match="'val' split"):
        _fit(bundle, d, tmp_path / "ml", mode="multilabel")
    assert not (tmp_path / "ml" / "last.pt").exists()
    d = make_data(multilabel=True)
    for s in d.splits.values():
        s.captions = [f"finding {i}" for i in range(len(s))]
    d.splits["val"].captions = None  # multi-label contrastive is validated by retrieval: needs val captions
    with pytest.raises(MedlibError, match="'val' split"):
        _fit(bundle, d, tmp_path / "c", mode="contrastive")
    with pytest.raises(MedlibError, match="one weight per class"):
        _fit(bundle, make_data(), tmp_path / "w", loss="weighted_ce", loss_kwargs={"weights": [1.0, 2.0, 3.0]})


def test_contrastive_on_multilabel_names_its_retrieval_metric(bundle, tmp_path):
    d = make_data(multilabel=True)
    for s in d.splits.values():
        s.captions = [f"{'opacity' if y[0] else 'clear lungs'} in image {i}" for i, y in enumerate(s.labels)]
    r = _fit(bundle, d, tmp_path, mode="contrastive", cfg=dataclasses.replace(CFG, epochs=1, lock_text=False))
    assert r.metric_name == "recall@1"  # was reported as "acc" though validate() computed retrieval R@1
    assert r.best_metric == r.history["val_metric"].iloc[1]  # row 0 is epoch 0, before training


def test_changed_settings_refuse_to_resume(bundle, data, tmp_path):
    _fit(bundle, data, tmp_path, cfg=dataclasses.replace(CFG, epochs=1))
    with pytest.raises(MedlibError, match="fresh=True"):
        _fit(bundle, data, tmp_path, cfg=dataclasses.replace(CFG, epochs=1, lr=5e-4))


def test_train_never_reads_the_test_split(bundle, tmp_path):
    class Poison:
        def __getattr__(self, name):
            raise AssertionError("train() touched the test split")

        def __getitem__(self, item):
            raise AssertionError("train() touched the test split")

    d = make_data()
    d.splits["test"] = Split(images=Poison(), labels=Poison())  # type: ignore[arg-type]
    _fit(bundle, d, tmp_path, cfg=dataclasses.replace(CFG, epochs=1))


# ---- variants ---------------------------------------------------------------------------------------


def test_linear_probe_freezes_image_tower_and_lp_ft_runs(bundle, data, tmp_path):
    cfg = dataclasses.replace(CFG, lock_image=True, epochs=3, lr=1e-2)
    probe = _fit(bundle, data, tmp_path / "probe", cfg=cfg)
    for (n, p0), p1 in zip(bundle.model.named_parameters(), probe.model.model.parameters()):
        assert torch.equal(p0, p1), n
    zs_head = training.head_from_texts(bundle, CLASS_TEXTS)
    assert not torch.equal(zs_head.weight, probe.head.weight)
    assert probe.history["val_metric"].iloc[-1] > 0.6
    res = training.lp_ft(bundle, data, cfg=dataclasses.replace(CFG, epochs=1), probe_epochs=2,
                         run_dir=tmp_path / "lpft", seed=0, class_texts=CLASS_TEXTS, progress=False)
    assert list(res.history["stage"]) == ["probe"] * 3 + ["ft"] * 2  # each stage starts with its epoch 0


def test_wise_interpolation_endpoints_are_exact(bundle, data, tmp_path):
    a = {"w": torch.randn(3, 3), "n": torch.tensor(5)}
    b = {"w": torch.randn(3, 3), "n": torch.tensor(7)}
    assert torch.equal(training.wise_interpolate(a, b, 0.0)["w"], a["w"])
    assert torch.equal(training.wise_interpolate(a, b, 1.0)["w"], b["w"])
    torch.testing.assert_close(training.wise_interpolate(a, b, 0.25)["w"], 0.75 * a["w"] + 0.25 * b["w"])
    ft = _fit(bundle, data, tmp_path, cfg=dataclasses.replace(CFG, epochs=1))
    x = data.splits["test"].images
    p0 = training.predict(training.wise_ft(ft, bundle, CLASS_TEXTS, 0.0), x, mode="label")
    np.testing.assert_allclose(p0, training.predict(bundle, x, mode="label", class_texts=CLASS_TEXTS), atol=1e-6)
    p1 = training.predict(training.wise_ft(ft, bundle, CLASS_TEXTS, 1.0), x, mode="label")
    np.testing.assert_array_equal(p1, training.predict(ft, x, mode="label"))


@pytest.mark.parametrize("loss,kw,sampler", [("weighted_ce", {"weights": "effective_number", "beta": 0.99}, "none"),
                                             ("focal", {"gamma": 2.0}, "none"),
                                             ("logit_adjust", {"tau": 1.0}, "balanced")])
def test_imbalance_losses_and_sampler_train(bundle, data, tmp_path, loss, kw, sampler):
    cfg = dataclasses.replace(CFG, lock_image=True, epochs=2, lr=1e-2)
    r = _fit(bundle, data, tmp_path, cfg=cfg, loss=loss, loss_kwargs=kw, sampler=sampler)
    assert np.isfinite(r.history["train_loss"].iloc[1:]).all()


def test_multilabel_mode(bundle, tmp_path):
    d = make_data(multilabel=True)
    r = _fit(bundle, d, tmp_path, mode="multilabel", loss="weighted_bce",
             cfg=dataclasses.replace(CFG, epochs=1, optimizer="adam", weight_decay=0.0))
    assert r.metric_name == "auroc" and 0 <= r.best_metric <= 1
    p = training.predict(r, d.splits["test"].images, mode="multilabel")
    assert p.shape == (64, 2) and ((p >= 0) & (p <= 1)).all()
    with pytest.raises(MedlibError):
        _fit(bundle, d, tmp_path / "x", mode="label")


def test_contrastive_uses_free_captions(bundle, tmp_path):
    d = make_data()
    for s in d.splits.values():
        s.captions = [f"{'opacity' if y else 'clear lungs'} in image {i}" for i, y in enumerate(s.labels)]
    r = _fit(bundle, d, tmp_path, mode="contrastive", cfg=dataclasses.replace(CFG, epochs=1, lock_text=False))
    assert r.metric_name == "acc" and r.head is not None
    d.splits["train"].captions[3] = "  "
    with pytest.raises(MedlibError, match="empty"):
        _fit(bundle, d, tmp_path / "bad", mode="contrastive", cfg=CFG)


# ---- augmentation -----------------------------------------------------------------------------------


def test_augment_is_seeded_and_identity_when_disabled(bundle, data):
    x = bundle_input(bundle, data.splits["train"].images[:16])
    a1 = augment_batch(x, torch.Generator().manual_seed(3), bundle.mean, bundle.std)
    a2 = augment_batch(x, torch.Generator().manual_seed(3), bundle.mean, bundle.std)
    assert torch.equal(a1, a2) and a1.shape == x.shape and not torch.allclose(a1, x)
    off = AugmentConfig(scale=(1, 1), ratio=(1, 1), degrees=0, brightness=0, contrast=0)
    torch.testing.assert_close(augment_batch(x, torch.Generator(), bundle.mean, bundle.std, off), x,
                               atol=1e-4, rtol=0)
