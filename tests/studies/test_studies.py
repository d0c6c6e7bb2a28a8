import dataclasses

import numpy as np
import pytest

from medlib.studies import few_shot, remedies
from medlib.config import TrainConfig
from medlib.data.base import DatasetBundle, Split


def _bundle(n=60, c=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % c
    split = Split(images=rng.integers(0, 255, (n, 8, 8), dtype=np.uint8), labels=labels,
                  captions=[f"c{y}" for y in labels], ids=[str(i) for i in range(n)])
    return DatasetBundle(name="toy", task="multiclass", class_names=[f"k{i}" for i in range(c)],
                         splits={"train": split, "val": split, "test": split}, source="toy")


def test_few_shot_takes_k_per_class_in_train_and_val_and_leaves_test():
    b = _bundle()
    cut = few_shot.few_shot(b, 4, seed=0)
    tr, va = cut.splits["train"], cut.splits["val"]
    assert np.bincount(tr.labels).tolist() == [4, 4, 4] and np.bincount(va.labels).tolist() == [4, 4, 4]
    assert cut.splits["test"] is b.splits["test"]
    assert few_shot.few_shot(b, 4, seed=0, val=False).splits["val"] is b.splits["val"]
    assert [tr.captions[i] for i in range(len(tr))] == [f"c{y}" for y in tr.labels]
    again = few_shot.few_shot(b, 4, seed=0)
    assert np.array_equal(again.splits["train"].images, tr.images)  # same seed, same subset
    assert few_shot.few_shot(b, 0, seed=0) is b  # 0 = all


def test_few_shot_draws_are_nested_and_differ_between_draws():
    b = _bundle(n=300)
    ids = {(d, k): set(few_shot.few_shot(b, k, seed=0, draw=d).splits["train"].ids) for d in range(3) for k in (1, 4, 16)}
    for d in range(3):
        assert ids[d, 1] <= ids[d, 4] <= ids[d, 16]
    assert len({frozenset(ids[d, 4]) for d in range(3)}) == 3  # three different draws
    val = [set(few_shot.few_shot(b, k, seed=0, draw=1).splits["val"].ids) for k in (1, 4, 16)]
    assert val[0] <= val[1] <= val[2]


def test_few_shot_config_reaches_min_steps_without_early_stopping():
    cfg = TrainConfig(epochs=3, batch_size=128, warmup_steps=20, patience=2)
    k = few_shot.few_shot_config(cfg, n_train=8, min_steps=20)
    assert k.epochs == 20 and k.patience == 20 and k.warmup_steps == 2
    big = few_shot.few_shot_config(cfg, n_train=10_000, min_steps=20)
    assert big.epochs == 3  # already more than 20 steps
    assert dataclasses.replace(big, warmup_steps=20, patience=2) == cfg


def test_remedies_map_to_engine_arguments():
    from medlib.config import load_profile

    P = load_profile("smoke")
    assert remedies.remedy_kwargs("none", "multiclass", P) == {"loss": "ce"}
    assert remedies.remedy_kwargs("none", "multilabel", P) == {"loss": "bce"}
    assert remedies.remedy_kwargs("focal", "multiclass", P)["loss_kwargs"]["gamma"] == P.imbalance.focal_gamma
    assert remedies.remedy_kwargs("balanced_sampler", "multiclass", P)["sampler"] == "balanced"
    with pytest.raises(ValueError):
        remedies.remedy_kwargs("magic", "multiclass", P)


def test_progress_bars_can_be_switched_off_for_headless_runs(monkeypatch):
    from medlib import progress

    monkeypatch.delenv("MEDLIB_PROGRESS", raising=False)
    assert progress.enabled() and not progress.enabled(False)
    monkeypatch.setenv("MEDLIB_PROGRESS", "0")
    assert not progress.enabled(True)
