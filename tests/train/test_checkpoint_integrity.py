"""A damaged checkpoint is refused, never loaded as other weights; a full disk while writing one names the file.

Every torch file medlib writes carries a digest of its tensors and values (medlib/files/tensors.py), checked on load:
torch's zip reader checks no CRCs, so without it a flipped byte loads as a different weight.
"""

import dataclasses
import errno
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from medlib.studies import runs
from medlib.train import cnn
from medlib.train.fit import fit
from medlib.config import ModelSpec, load_profile
from medlib.errors import MedlibError
from medlib.models import CONFIG_DIR, load_checkpoint, load_model, save_checkpoint
from medlib.train import checkpoint, engine
from helpers import CFG, CLASS_TEXTS, make_data

ONE = dataclasses.replace(CFG, epochs=1)
REPO = Path(__file__).resolve().parents[2]


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
    from medlib.files import tensors as torchfile

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
    fit(bundle, data, mode="label", cfg=ONE, run_dir=run, seed=0, class_texts=CLASS_TEXTS, progress=False)
    eng = engine.Engine(bundle, data, "label", ONE, 0, CLASS_TEXTS, "ce", {}, "none", None)
    return run, data, eng


def _load_best(eng, path):
    ck = checkpoint.load(path, eng.signature)
    eng.load_model_state(ck, path)
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
    res, rec = runs.finetune(P, bundle, data, **kw)
    metrics = P.reports_path / "metrics" / f"{rec['run']}.json"
    before = metrics.read_bytes()
    best = _flip(res.run_dir / "best.pt", _middle_of_largest_tensor(res.run_dir / "best.pt"))
    with pytest.raises(MedlibError, match="damaged") as e:
        runs.finetune(P, bundle, data, **kw)
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
        fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                     progress=False, on_epoch_end=stop)
    last = _flip(tmp_path / "last.pt", _middle_of_largest_tensor(tmp_path / "last.pt"))
    with pytest.raises(MedlibError, match="damaged") as e:
        fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
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


# ---- a full disk while writing a checkpoint -----------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs (needs root and mount; skipped elsewhere): a disk that really fills."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    """Take every free byte of ``folder``'s disk."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as fh:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_while_training_names_the_checkpoint_and_keeps_the_last_good_one(bundle, small_disk):
    """The disk fills after epoch 1: epoch 2's checkpoint fails with a one-line error naming it (torch alone says
    "unexpected pos ..."), epoch 1's last.pt is left as it was, and once space is freed the run resumes from it."""
    data = make_data(n_train=64)
    run = small_disk / "run"
    fillers = []

    def fill_after_epoch_1(epoch, row):
        if epoch == 1:
            fillers.append(_fill(small_disk))

    with pytest.raises(MedlibError, match="no space left on device") as e:
        fit(bundle, data, mode="label", cfg=CFG, run_dir=run, seed=0, class_texts=CLASS_TEXTS,
                     progress=False, on_epoch_end=fill_after_epoch_1)
    msg = str(e.value)
    assert "\n" not in msg and f"df -h {run}" in msg and ("last.pt" in msg or "best.pt" in msg), msg
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]
    assert checkpoint.load(run / "last.pt")["epoch"] == 1
    fillers[0].unlink()
    again = fit(bundle, data, mode="label", cfg=CFG, run_dir=run, seed=0, class_texts=CLASS_TEXTS,
                         progress=False)
    assert again.resumed_from == 1 and again.history["epoch"].max() == 2


def test_a_full_disk_while_saving_a_model_names_it_and_keeps_the_previous_file(tiny, small_disk):
    from medlib.models import read_checkpoint

    path = save_checkpoint(tiny, small_disk / "model.pt", extra={"epoch": 1})
    filler = _fill(small_disk)
    with pytest.raises(MedlibError, match="no space left on device") as e:
        save_checkpoint(tiny, path, extra={"epoch": 2})
    _one_line_naming(e, path)
    filler.unlink()
    assert read_checkpoint(path)["extra"] == {"epoch": 1}
    assert sorted(p.name for p in small_disk.iterdir()) == ["model.pt"]


def test_a_file_size_limit_is_named_too_without_root(tmp_path):
    """The same short write, for real and without root: a process under ``ulimit -f`` (Python ignores SIGXFSZ, so
    the write fails with EFBIG) saving a checkpoint larger than the limit, over a smaller good one."""
    script = (
        "import resource, sys, torch\n"
        "from medlib.files import tensors as torchfile\n"  # the writer of checkpoint.save and save_checkpoint (imports less)
        "from medlib.errors import MedlibError\n"
        "p = sys.argv[1]\n"
        "torchfile.save(p, {'w': torch.zeros(1000)})\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "try:\n"
        "    torchfile.save(p, {'w': torch.zeros(1 << 20)})\n"
        "except MedlibError as e:\n"
        "    print(e)\n")
    from medlib.files import tensors as torchfile

    path = tmp_path / "last.pt"
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    line = out.stdout.strip()
    assert line.startswith(f"{path}: file too large") and "ulimit -f" in line and "\n" not in line, line
    assert torchfile.verify(path, torchfile.load(path), "-")["w"].numel() == 1000
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_torchs_short_write_report_is_turned_into_the_disk_full_line(tmp_path, monkeypatch):
    """torch's exact words for a short write, and a disk that is still full when asked again."""
    from medlib.files import tensors as torchfile

    checkpoint.save(tmp_path / "best.pt", {"w": torch.ones(3)})

    def short_write(obj, f, *a, **k):
        Path(f).write_bytes(b"half a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", short_write)
    monkeypatch.setattr(torchfile, "_write_probe", lambda tmp: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    with pytest.raises(MedlibError) as e:
        checkpoint.save(tmp_path / "best.pt", {"w": torch.zeros(3)})
    assert str(e.value).startswith(f"{tmp_path / 'best.pt'}: no space left on device. Fix: free space on the disk "
                                   f"holding {tmp_path} (df -h {tmp_path}) and rerun")
    monkeypatch.undo()
    assert torch.equal(checkpoint.load(tmp_path / "best.pt")["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]


# ---- a local-dir: model whose weights file is not plain tensors --------------------------------------


class _RunsACommand:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_local_dir_weights_file_is_named_without_torchs_unsafe_advice(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    cfg = json.loads((CONFIG_DIR / "medclip-tiny.json").read_text())
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    marker = tmp_path / "pwned"
    torch.save({"x": _RunsACommand(marker)}, folder / "open_clip_model.bin")
    with pytest.raises(MedlibError, match="would run code") as e:
        load_model(ModelSpec(name="t", arch=f"local-dir:{folder}"))
    msg = _one_line_naming(e, folder / "open_clip_model.bin")
    assert "weights_only" not in msg and "False" not in msg
    assert not marker.exists()
