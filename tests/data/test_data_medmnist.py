"""medlib.data.medmnist: real file, generated fixture, broken files, offline download."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medlib.config import DatasetSpec, Profile
from medlib.data import load_dataset, fixtures
from medlib.errors import MedlibError


def profile(tmp_path, **kw) -> Profile:
    spec = dict(name="pneumoniamnist", source="medmnist", flag="pneumoniamnist", size=28, synthetic="auto",
                fixture_n=120)
    spec.update(kw)
    return Profile(name="t", kind="smoke", seed=0, data_dir=str(tmp_path), datasets=[DatasetSpec(**spec)])


def test_fixture_shapes_dtypes_and_loud_warning(tmp_path, capsys):
    p = profile(tmp_path)
    b = load_dataset(p, "pneumoniamnist")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    assert b.synthetic and "note" in b.manifest and b.manifest["synthetic"] is True
    assert b.class_names == ["normal", "pneumonia"] and b.task == "multiclass" and b.domain == "chest_xray"
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 84, "val": 12, "test": 24}
    for s in b.splits.values():
        assert s.images.dtype == np.uint8 and s.images.shape[1:] == (28, 28)
        assert s.labels.dtype == np.int64 and s.labels.ndim == 1 and set(s.labels) <= {0, 1}
        assert s.captions is None
    assert sum(b.manifest["counts"]["train"].values()) == 84
    assert list(b.manifest["sha256"]) == ["pneumoniamnist.npz"]
    assert (tmp_path / "fixtures" / "medmnist" / "pneumoniamnist.npz").is_file()


def test_fixture_is_deterministic_and_reused(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = load_dataset(profile(tmp_path / "a"), "pneumoniamnist")
        b = load_dataset(profile(tmp_path / "b"), "pneumoniamnist")
        f = tmp_path / "a" / "fixtures" / "medmnist" / "pneumoniamnist.npz"
        mtime = f.stat().st_mtime_ns
        load_dataset(profile(tmp_path / "a"), "pneumoniamnist")
    assert f.stat().st_mtime_ns == mtime  # generated once, then reused
    for k in a.splits:
        np.testing.assert_array_equal(a.splits[k].images, b.splits[k].images)
        np.testing.assert_array_equal(a.splits[k].labels, b.splits[k].labels)


def test_multilabel_and_size(tmp_path, capsys):
    p = profile(tmp_path, name="chestmnist", flag="chestmnist", size=64, fixture_n=60)
    b = load_dataset(p, "chestmnist")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    assert b.task == "multilabel" and len(b.class_names) == 14 and b.class_names[-1] == "hernia"
    assert b.splits["train"].labels.shape == (42, 14) and b.splits["train"].images.shape == (42, 64, 64)
    assert (tmp_path / "fixtures" / "medmnist" / "chestmnist_64.npz").is_file()


def test_rgb_flag_and_max_per_split(tmp_path, capsys):
    p = profile(tmp_path, name="derma", flag="dermamnist", fixture_n=100, max_per_split=10)
    b = load_dataset(p, "derma")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    assert b.splits["train"].images.shape == (10, 28, 28, 3) and b.domain == "medical"
    assert len(b.splits["val"]) == 10 and len(b.class_names) == 7


def test_real_pneumoniamnist(tmp_path, shared_pneumonia):
    (tmp_path / "medmnist").mkdir()
    (tmp_path / "medmnist" / "pneumoniamnist.npz").symlink_to(shared_pneumonia)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # real data: no synthetic warning
        b = load_dataset(profile(tmp_path), "pneumoniamnist")
    assert not b.synthetic and "note" not in b.manifest
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 4708, "val": 524, "test": 624}
    assert b.class_names == ["normal", "pneumonia"]
    assert b.manifest["counts"]["test"] == {"normal": 234, "pneumonia": 390}


def _write_real(tmp_path, **arrays):
    d = tmp_path / "medmnist"
    d.mkdir(parents=True, exist_ok=True)
    np.savez(d / "pneumoniamnist.npz", **arrays)
    return d / "pneumoniamnist.npz"


def _good(n=10):
    rng = np.random.default_rng(0)
    out = {}
    for s in ("train", "val", "test"):
        out[f"{s}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        out[f"{s}_labels"] = rng.integers(0, 2, (n, 1)).astype(np.uint8)
    return out


@pytest.mark.parametrize("case", ["truncated", "missing_key", "wrong_shape", "wrong_dtype", "bad_label", "garbage"])
def test_broken_file_is_an_error_not_a_fallback(tmp_path, case):
    arrays = _good()
    if case == "missing_key":
        arrays.pop("val_labels")
    elif case == "wrong_shape":
        arrays["test_images"] = np.zeros((10, 32, 32), np.uint8)
    elif case == "wrong_dtype":
        arrays["train_images"] = arrays["train_images"].astype(np.float32)
    elif case == "bad_label":
        arrays["train_labels"][0, 0] = 7
    path = _write_real(tmp_path, **arrays)
    if case == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "garbage":
        path.write_bytes(b"not an npz at all")
    with pytest.raises(MedlibError, match="pneumoniamnist.npz") as exc:
        load_dataset(profile(tmp_path), "pneumoniamnist")  # synthetic auto must NOT paper over it
    assert "Fix:" in str(exc.value) and "\n" not in str(exc.value)
    assert not (tmp_path / "fixtures").exists()


def test_broken_fixture_names_the_fixture(tmp_path, capsys):
    load_dataset(profile(tmp_path), "pneumoniamnist")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    f = tmp_path / "fixtures" / "medmnist" / "pneumoniamnist.npz"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(MedlibError, match="pneumoniamnist.npz.*regenerated"):
        load_dataset(profile(tmp_path), "pneumoniamnist")


def test_missing_file_without_download_or_synthetic(tmp_path):
    with pytest.raises(MedlibError, match=r"pneumoniamnist\.npz: MedMNIST file not found.*zenodo"):
        load_dataset(profile(tmp_path, synthetic="never"), "pneumoniamnist")


def test_offline_download_names_url_and_local_path(tmp_path, monkeypatch):
    import medmnist.dataset

    def offline(self):
        raise RuntimeError("Automatic download failed!\n multi-line package message")

    monkeypatch.setattr(medmnist.dataset.MedMNIST, "download", offline)
    with pytest.raises(MedlibError) as exc:
        load_dataset(profile(tmp_path, synthetic="never", download=True, size=224), "pneumoniamnist")
    msg = str(exc.value)
    assert "pneumoniamnist_224.npz" in msg and "zenodo.org" in msg and "\n" not in msg


def test_fixture_is_learnable_but_not_trivial():
    from sklearn.linear_model import LogisticRegression

    d = fixtures.medmnist_arrays(0, 1500, 28, 2, False, 1, [0.26, 0.74])
    X = {s: d[f"{s}_images"].reshape(len(d[f"{s}_images"]), -1) / 255.0 for s in ("train", "test")}
    clf = LogisticRegression(max_iter=500, C=0.1).fit(X["train"], d["train_labels"][:, 0])
    acc = clf.score(X["test"], d["test_labels"][:, 0])
    majority = np.bincount(d["test_labels"][:, 0]).max() / len(d["test_labels"])
    assert majority + 0.08 < acc < 0.99
