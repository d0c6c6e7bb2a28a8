"""A damaged checkpoint is refused, never loaded as other weights.

Every torch file medlib writes carries a digest of its tensors and values (medlib/torchfile.py), checked on load:
torch's zip reader checks no CRCs and the packed weights' Zstandard frames carry no checksum, so without it a
flipped byte loads as a different weight.
"""

import dataclasses
import json
import struct
import zipfile
from pathlib import Path

import pytest
import torch

from medlib import cnn, pipeline
from medlib.config import ModelSpec, load_profile
from medlib.errors import MedlibError
from medlib.models import load_checkpoint, load_model, save_checkpoint
from medlib.train import checkpoint, engine
from tests.test_finetune import CFG, CLASS_TEXTS, bundle, make_data  # noqa: F401 - fixture

ONE = dataclasses.replace(CFG, epochs=1)


def _records(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of each tensor's bytes in a torch zip file, read from the local file headers."""
    raw = path.read_bytes()
    out = []
    for info in zipfile.ZipFile(path).infolist():
        if "/data/" not in info.filename:
            continue
        name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
        out.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return out


def _flip(path: Path, pos: int, into: Path | None = None) -> Path:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0xFF
    (into or path).write_bytes(bytes(data))
    return into or path


def _middle_of_largest_tensor(path: Path) -> int:
    offset, size = max(_records(path), key=lambda r: r[1])
    return offset + size // 2


def _one_line_naming(exc: pytest.ExceptionInfo | BaseException, path: Path) -> str:
    msg = str(exc.value if isinstance(exc, pytest.ExceptionInfo) else exc)
    assert "\n" not in msg and str(path) in msg and "Fix:" in msg, msg
    return msg


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and torch.equal(a[k].reshape(-1).view(torch.uint8), b[k].reshape(-1).view(torch.uint8)) for k in a)


# ---- the digest -----------------------------------------------------------------------------------------


def test_the_digest_covers_names_dtypes_shapes_bytes_and_values_but_not_their_order():
    from medlib import torchfile

    t = torch.arange(6, dtype=torch.float32)
    ref = torchfile.digest({"a": t, "b": t.clone(), "n": 1})
    assert torchfile.digest({"n": 1, "b": t.clone(), "a": t}) == ref  # the order entries are stored in
    changed = [{"a": t, "c": t.clone(), "n": 1}, {"a": t.double(), "b": t.clone(), "n": 1},
               {"a": t.reshape(2, 3), "b": t.clone(), "n": 1}, {"a": t, "b": t.clone(), "n": 1.0},
               {"a": t, "b": t.clone(), "n": 2}]
    one_bit = t.clone()
    one_bit.view(torch.int32)[3] ^= 1  # the lowest mantissa bit of one weight
    changed.append({"a": one_bit, "b": t.clone(), "n": 1})
    assert len({torchfile.digest(c) for c in changed} | {ref}) == len(changed) + 1


# ---- a flipped byte in a training checkpoint ----------------------------------------------------------


@pytest.fixture(scope="module")
def trained(bundle, tmp_path_factory):
    """A finished one-epoch label run: its best.pt, and an engine built as the run's (its start: the base)."""
    run = tmp_path_factory.mktemp("run")
    data = make_data(n_train=128)
    engine.train(bundle, data, mode="label", cfg=ONE, run_dir=run, seed=0, class_texts=CLASS_TEXTS, progress=False)
    eng = engine.Engine(bundle, data, "label", ONE, 0, CLASS_TEXTS, "ce", {}, "none", None)
    return run, data, eng


def _load_best(eng, path):
    ck = checkpoint.load(path, eng.signature)
    eng.load_model_state(ck["model"], path)
    return eng.model_state(), {k: v for k, v in ck.items() if k != "model"}


def test_a_flipped_byte_in_best_pt_is_refused_or_provably_harmless(trained, tmp_path):
    """Flips across the whole file (zip headers, the pickle, every tensor): each is refused with a one-line error
    naming the file, or loads the very same tensors and values (a byte torch does not read); none loads others."""
    run, _, eng = trained
    best = run / "best.pt"
    ref = _load_best(eng, best)
    size = best.stat().st_size
    middles = [offset + n // 2 for offset, n in _records(best)]
    first_tensor = min(offset for offset, _ in _records(best))  # before it: the zip's first headers and the pickle
    positions = sorted(set(range(0, first_tensor, 211)) | set(range(0, size, size // 100)) | set(middles))
    outcome = {}
    for pos in positions:
        f = _flip(best, pos, into=tmp_path / "best.pt")
        try:
            got = _load_best(eng, f)
        except MedlibError as e:
            _one_line_naming(e, f)
            outcome[pos] = "refused"
            continue
        assert _same(got[0], ref[0]) and repr(got[1]) == repr(ref[1]), f"byte {pos} loaded other weights"
        outcome[pos] = "identical"
    assert all(outcome[p] == "refused" for p in middles)  # a flipped weight byte is never harmless
    assert "refused" in outcome.values()


def test_a_damaged_best_pt_leaves_the_metrics_file_as_it_was(bundle, tmp_path):
    """As a notebook calls it: the re-run of a finished run whose best.pt lost a byte stops with a one-line error,
    and the run's metrics file is not rewritten."""
    P = load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs")})
    data = make_data(n_train=128)
    kw = dict(notebook="04_label_finetune", method="label-ft", mode="label", cfg=ONE, class_texts=CLASS_TEXTS)
    res, rec = pipeline.finetune(P, bundle, data, **kw)
    metrics = P.reports_path / "metrics" / f"{rec['run']}.json"
    before = metrics.read_bytes()
    best = _flip(res.run_dir / "best.pt", _middle_of_largest_tensor(res.run_dir / "best.pt"))
    with pytest.raises(MedlibError, match="damaged") as e:
        pipeline.finetune(P, bundle, data, **kw)
    assert "fresh=True" in _one_line_naming(e, best)
    assert metrics.read_bytes() == before
    assert json.loads(before)["run"] == rec["run"]


def test_a_flipped_byte_in_an_unfinished_runs_last_pt_is_refused(bundle, tmp_path):
    """last.pt of a run stopped after epoch 1 (its weights, optimizer and RNG states): resuming from a damaged one
    is refused, not continued from other weights or optimizer moments."""
    data = make_data(n_train=128)

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.train(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                     progress=False, on_epoch_end=stop)
    last = _flip(tmp_path / "last.pt", _middle_of_largest_tensor(tmp_path / "last.pt"))
    with pytest.raises(MedlibError, match="damaged") as e:
        engine.train(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                     progress=False)
    _one_line_naming(e, last)


def test_a_flipped_byte_in_the_resnet_baselines_best_pt_is_refused(tmp_path):
    data = make_data(n_train=96)
    kw = dict(epochs=1, batch_size=32, lr=1e-3, seed=0, run_dir=tmp_path, weights="none", progress=False)
    cnn.train_cnn(data, **kw)
    best = _flip(tmp_path / "best.pt", _middle_of_largest_tensor(tmp_path / "best.pt"))
    with pytest.raises(MedlibError, match="damaged") as e:
        cnn.train_cnn(data, **kw)
    _one_line_naming(e, best)


def test_a_checkpoint_of_the_older_format_without_a_digest_is_refused(trained, tmp_path):
    run, data, eng = trained
    ck = checkpoint.load(run / "last.pt")
    ck["version"] = 2  # the format before the digest: written (and loaded) without one
    torch.save(ck, tmp_path / "last.pt")
    with pytest.raises(MedlibError, match="another medlib version") as e:
        checkpoint.load(tmp_path / "last.pt")
    assert "fresh=True" in _one_line_naming(e, tmp_path / "last.pt")


# ---- save_checkpoint's whole-model files --------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))


def test_a_flipped_byte_in_a_saved_model_is_refused(tiny, tmp_path):
    path = save_checkpoint(tiny, tmp_path / "model.pt")
    _flip(path, _middle_of_largest_tensor(path))
    with pytest.raises(MedlibError, match="damaged") as e:
        load_checkpoint(path)
    _one_line_naming(e, path)
    with pytest.raises(MedlibError, match="damaged"):  # the same file as a profile's `pretrained:`
        load_model(ModelSpec(name="ft", arch="medclip-tiny", pretrained=str(path)))


def test_a_saved_model_of_the_older_format_is_refused(tiny, tmp_path):
    blob = {"format": "medlib-clip-checkpoint", "version": 1, "arch": tiny.arch, "pretrained": "", "name": "tiny",
            "display": "tiny", "preprocess": tiny.preprocess_cfg(), "state_dict": tiny.model.state_dict(), "extra": {}}
    torch.save(blob, tmp_path / "old.pt")
    with pytest.raises(MedlibError, match="another version") as e:
        load_checkpoint(tmp_path / "old.pt")
    _one_line_naming(e, tmp_path / "old.pt")
