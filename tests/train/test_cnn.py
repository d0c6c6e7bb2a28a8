import dataclasses

import numpy as np
import pytest

from medlib.train import cnn
from medlib.data.base import DatasetBundle, Split
from medlib.errors import MedlibError


def _bars(n, seed):
    """Class 1 has a bright vertical bar: learnable in one epoch."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    x[y == 1, :, 12:16] = 220
    return Split(images=x, labels=y)


def test_resnet18_learns_resumes_and_says_which_weights(tmp_path):
    data = DatasetBundle(name="bars", task="multiclass", class_names=["no", "bar"],
                         splits={"train": _bars(512, 0), "val": _bars(64, 1), "test": _bars(64, 2)}, source="toy")
    kw = dict(batch_size=64, lr=1e-3, seed=0, weights="none", progress=False)
    calls = []

    def interrupt_in_epoch_2(*a, **k):  # validation of epoch 2: the run dies after epoch 1's checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_predict(*a, **k)

    real_predict = cnn.predict_cnn
    with pytest.MonkeyPatch.context() as m:
        m.setattr(cnn, "predict_cnn", interrupt_in_epoch_2)
        with pytest.raises(KeyboardInterrupt):
            cnn.train_cnn(data, epochs=3, run_dir=tmp_path / "a", **kw)
    two = cnn.train_cnn(data, epochs=3, run_dir=tmp_path / "a", **kw)  # resumes after epoch 1
    assert two.weights.startswith("none")
    straight = cnn.train_cnn(data, epochs=3, run_dir=tmp_path / "b", **kw)
    assert list(two.history["epoch"]) == [1, 2, 3]
    p_resumed = cnn.predict_cnn(two.model, data.splits["test"].images, "multiclass")
    p_straight = cnn.predict_cnn(straight.model, data.splits["test"].images, "multiclass")
    assert np.array_equal(p_resumed, p_straight)
    assert np.allclose(p_resumed.sum(1), 1)
    assert (p_resumed.argmax(1) == data.splits["test"].labels).mean() > 0.9


def test_resnet18_skips_a_last_batch_of_one_and_refuses_stale_checkpoints(tmp_path):
    # 65 = 64 + 1: a batch of one 28 px image reaches BatchNorm as 1x1 -- it used to crash training
    data = DatasetBundle(name="bars", task="multiclass", class_names=["no", "bar"],
                         splits={"train": _bars(65, 0), "val": _bars(16, 1), "test": _bars(16, 2)}, source="toy")
    kw = dict(batch_size=64, seed=0, weights="none", progress=False, run_dir=tmp_path)
    res = cnn.train_cnn(data, epochs=2, lr=1e-3, **kw)
    assert list(res.history["epoch"]) == [1, 2]
    with pytest.raises(MedlibError, match="fresh=True"):  # other settings: no silent resume
        cnn.train_cnn(data, epochs=3, lr=1e-2, **kw)
    with pytest.raises(MedlibError, match="more than epochs=1"):  # would return a longer run than asked for
        cnn.train_cnn(data, epochs=1, lr=1e-3, **kw)
    with pytest.raises(MedlibError, match="epochs >= 1"):
        cnn.train_cnn(data, epochs=0, lr=1e-3, **kw)
    (tmp_path / "last.pt").write_bytes(b"half a checkpoint")
    with pytest.raises(MedlibError, match="unreadable checkpoint"):
        cnn.train_cnn(data, epochs=1, lr=1e-3, **kw)
    with pytest.raises(MedlibError, match="'val' split"):
        cnn.train_cnn(dataclasses.replace(data, splits={"train": data.splits["train"]}), epochs=1, lr=1e-3, **kw)
