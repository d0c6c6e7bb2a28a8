"""Training curves in TensorBoard when the profile asks (``log_to: [tensorboard]``), off by default."""

import sys
import types

import pandas as pd
import pytest

from medlib.config import load_profile
from medlib.errors import MedlibError
from medlib.train.fit import fit
from helpers import CFG, CLASS_TEXTS, make_data


class _Writer:
    """Records what torch's SummaryWriter is asked to write."""
    made: list["_Writer"] = []

    def __init__(self, log_dir):
        self.log_dir, self.scalars, self.closed, self.flushes = log_dir, [], False, 0
        _Writer.made.append(self)

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, step, value))

    def flush(self):
        self.flushes += 1

    def close(self):
        self.closed = True


@pytest.fixture
def fake_tensorboard(monkeypatch):
    _Writer.made = []
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=_Writer))
    return _Writer.made


def test_each_epoch_of_log_csv_goes_to_tensorboard_under_the_run_when_asked(bundle, tmp_path, fake_tensorboard):
    fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path / "off", seed=0,
        class_texts=CLASS_TEXTS, progress=False)  # off by default
    assert not fake_tensorboard and not (tmp_path / "off" / "tensorboard").exists()
    fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
        progress=False, log_to=["tensorboard"])
    [writer] = fake_tensorboard
    assert writer.log_dir == str(tmp_path / "tensorboard") and writer.closed and writer.flushes == 3
    log = pd.read_csv(tmp_path / "log.csv")
    got = {(tag, step): value for tag, step, value in writer.scalars}
    want = {("val/acc", int(r.epoch)): r.val_metric for r in log.itertuples()}
    want.update({(k, int(r.epoch)): v for r in log.itertuples() if r.epoch > 0
                 for k, v in (("train/loss", r.train_loss), ("train/lr", r.lr))})
    assert set(got) == set(want) and all(got[k] == pytest.approx(want[k], rel=1e-12) for k in want)
    # a finished run returns at once and writes no curves again
    fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
        progress=False, log_to=["tensorboard"])
    assert len(fake_tensorboard) == 1


def test_tensorboard_without_its_package_is_a_one_line_error_before_training(bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails as without the package
    with pytest.raises(MedlibError, match="pip install tensorboard") as e:
        fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path, seed=0,
            class_texts=CLASS_TEXTS, progress=False, log_to=["tensorboard"])
    assert "\n" not in str(e.value) and "log_to" in str(e.value)
    assert not (tmp_path / "last.pt").exists()


def test_the_profile_asks_with_log_to_which_changes_no_number(tmp_path):
    plain = load_profile("smoke")
    assert plain.log_to == []
    asked = load_profile("smoke", {"log_to": ["tensorboard"]})
    assert asked.log_to == ["tensorboard"] and asked.hash() == plain.hash()
    with pytest.raises(MedlibError, match="tensorboard") as e:
        load_profile("smoke", {"log_to": ["tensorbord"]})
    assert "\n" not in str(e.value)


def test_the_event_files_hold_the_curves(bundle, tmp_path):
    """With the real package (pip install tensorboard): TensorBoard's own reader finds the curves."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
        progress=False, log_to=["tensorboard"])
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    log = pd.read_csv(tmp_path / "log.csv")
    assert [e.step for e in events.Scalars("val/acc")] == log["epoch"].tolist()
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx(log["train_loss"].dropna().tolist())
