"""Checkpoints never run code, hold only what a run changed, and shrink to a small record when it finishes."""

import dataclasses
import os

import numpy as np
import pytest
import torch

from medlib.train import cnn
from medlib.train.fit import fit
from medlib.config import ModelSpec, TrainConfig
from medlib.errors import MedlibError
from medlib.models import load_model
from medlib.train import checkpoint, engine
from helpers import CLASS_TEXTS, make_data

CFG = TrainConfig(epochs=2, batch_size=64, lr=1e-3, weight_decay=0.05, warmup_steps=2, patience=0, augment=False)


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def bundle():
    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))


def _craft(path, marker):
    """A real torch zip file whose pickle runs ``touch marker`` when unpickled with weights_only=False."""
    torch.save({"format": checkpoint.FORMAT, "version": checkpoint.VERSION, "x": _RunsACommand(marker)}, path)


def test_crafted_engine_checkpoint_is_refused_and_runs_nothing(bundle, tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    run.mkdir()
    _craft(run / "last.pt", marker)
    with pytest.raises(MedlibError, match=r"last\.pt.*would run code") as e:
        fit(bundle, make_data(n_train=64), mode="label", cfg=CFG, run_dir=run, seed=0,
                     class_texts=CLASS_TEXTS, progress=False)
    assert "\n" not in str(e.value) and "fresh=True" in str(e.value)
    assert not marker.exists()


def test_crafted_cnn_checkpoint_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    _craft(tmp_path / "last.pt", marker)
    data = make_data(n_train=64)
    with pytest.raises(MedlibError, match="would run code"):
        cnn.train_cnn(data, epochs=1, batch_size=32, lr=1e-3, seed=0, run_dir=tmp_path, weights="none",
                      progress=False)
    assert not marker.exists()


def _names(model: dict) -> set:
    """The tensor names a checkpoint's "model" holds (a plain state dict)."""
    return set(model)


def _sizes(run):
    return {p.name: p.stat().st_size for p in run.iterdir() if p.suffix == ".pt"}


def test_checkpoints_hold_only_what_the_run_changed(bundle, tmp_path):
    data = make_data(n_train=128)
    n_text = sum(p.numel() for n, p in bundle.model.named_parameters() if not n.startswith("visual."))
    # full label fine-tune: image tower + head, no text tower (the tiny text tower is ~90% of the model)
    r = fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path / "ft", seed=0, class_texts=CLASS_TEXTS,
                     progress=False)
    best = _names(torch.load(tmp_path / "ft" / "best.pt", weights_only=True)["model"])
    assert "head.weight" in best and any(k.startswith("clip.visual.") for k in best)
    assert not any(k.startswith(("clip.transformer.", "clip.token_embedding")) for k in best)
    last = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)
    assert last["finished"] and "optimizer" not in last and "model" not in last  # a small record
    assert _sizes(tmp_path / "ft")["last.pt"] < 50_000
    assert _sizes(tmp_path / "ft")["best.pt"] < 4 * (sum(p.numel() for p in bundle.model.parameters()) - n_text) + 1e6
    # a linear probe's checkpoint is its head alone
    probe = dataclasses.replace(CFG, lock_image=True)
    fit(bundle, data, mode="label", cfg=probe, run_dir=tmp_path / "lp", seed=0, class_texts=CLASS_TEXTS,
                 progress=False)
    assert _names(torch.load(tmp_path / "lp" / "best.pt", weights_only=True)["model"]) == {"head.weight", "head.bias"}
    # the re-run of a finished run returns the same model at once, from best.pt
    again = fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path / "ft", seed=0,
                         class_texts=CLASS_TEXTS, progress=False)
    assert again.resumed_from == 2
    for k, v in r.model.model.state_dict().items():
        assert torch.equal(v, again.model.model.state_dict()[k]), k


def test_rng_state_round_trips_through_weights_only(tmp_path):
    import random
    gen = torch.Generator().manual_seed(3)
    random.seed(1)
    np.random.seed(2)
    st = checkpoint.rng_state({"g": gen})
    checkpoint.save(tmp_path / "r.pt", {"rng": st})
    a = (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item())
    checkpoint.set_rng_state(checkpoint.load(tmp_path / "r.pt")["rng"], {"g": gen})
    assert (random.random(), np.random.rand(), torch.rand(1).item(), torch.rand(1, generator=gen).item()) == a


def test_crafted_user_weights_file_is_refused_and_runs_nothing(tmp_path):
    """A `pretrained:` file (models.py) is read the same way: refused with the one-line error, nothing runs."""
    marker = tmp_path / "pwned"
    path = tmp_path / "weights.pt"
    torch.save({"state_dict": {}, "x": _RunsACommand(marker)}, path)
    with pytest.raises(MedlibError, match="would run code") as e:
        load_model(ModelSpec(name="tiny", arch="medclip-tiny", pretrained=str(path)))
    assert "\n" not in str(e.value)
    assert not marker.exists()
