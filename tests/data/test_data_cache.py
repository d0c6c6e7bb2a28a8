"""medlib.data.get_dataset: prepared-split cache round-trip, reuse and invalidation."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import medlib.data.cache as cache
from medlib.config import DatasetSpec, Profile
from medlib.data import DatasetSkipped, get_dataset, load_dataset
from helpers import rebuilt

PNEU = dict(name="pneumoniamnist", source="medmnist", flag="pneumoniamnist", size=28, synthetic="auto", fixture_n=80)
PMV = dict(name="pubmedvision", source="pubmedvision", path="pubmedvision", size=28, synthetic="auto", fixture_n=60)
MIMIC = dict(name="mimic_cxr", source="mimic_cxr", path="", size=28, synthetic="never")


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def assert_same(a, b):
    assert a.class_names == b.class_names and a.task == b.task and a.domain == b.domain
    assert a.synthetic == b.synthetic and a.license == b.license
    for k in a.splits:
        np.testing.assert_array_equal(a.splits[k].images, b.splits[k].images)
        np.testing.assert_array_equal(a.splits[k].labels, b.splits[k].labels)
        assert a.splits[k].labels.dtype == b.splits[k].labels.dtype == np.int64
        assert a.splits[k].captions == b.splits[k].captions and a.splits[k].ids == b.splits[k].ids
    assert a.manifest["counts"] == b.manifest["counts"]


def test_round_trip_and_reuse(tmp_path, monkeypatch):
    p = profile(tmp_path, PMV)
    first = get_dataset(p, "pubmedvision")
    folder, meta = cache.paths(p, "pubmedvision")
    assert folder == tmp_path / "cache" / "t" / "pubmedvision" and meta.is_file()
    assert {f.name for f in folder.iterdir()} >= {"train_images.npy", "test_labels.npy", "meta.json"}
    assert_same(first, load_dataset(p, "pubmedvision"))

    def boom(*a, **k):
        raise AssertionError("cache was not used")

    monkeypatch.setattr(cache, "load_index", boom)
    again = get_dataset(p, "pubmedvision")
    assert_same(first, again)
    assert again.manifest["cache"] == str(folder)


def test_synthetic_cache_hit_still_warns(tmp_path, capsys):
    p = profile(tmp_path, PNEU)
    get_dataset(p, "pneumoniamnist")
    capsys.readouterr()
    get_dataset(p, "pneumoniamnist")
    err = capsys.readouterr().err
    assert err.count("GENERATED") == 1 and len(err.strip().splitlines()) == 1


def test_invalidation(tmp_path, monkeypatch):
    p = profile(tmp_path, PNEU)
    get_dataset(p, "pneumoniamnist")
    assert not rebuilt(p, "pneumoniamnist", monkeypatch)
    # spec change -> rebuild
    p2 = dataclasses.replace(p, datasets=[DatasetSpec(**dict(PNEU, max_per_split=20))])
    assert rebuilt(p2, "pneumoniamnist", monkeypatch)
    assert len(get_dataset(p2, "pneumoniamnist").splits["train"]) == 20
    # seed change -> rebuild
    assert rebuilt(dataclasses.replace(p2, seed=1), "pneumoniamnist", monkeypatch)
    # refresh -> rebuild even when current
    calls = []
    real = cache.load_index
    monkeypatch.setattr(cache, "load_index", lambda *a: calls.append(1) or real(*a))
    get_dataset(p, "pneumoniamnist", refresh=True)
    assert calls


def test_real_file_appearing_invalidates_a_synthetic_cache(tmp_path, monkeypatch):
    p = profile(tmp_path, PNEU)
    assert get_dataset(p, "pneumoniamnist").synthetic
    rng = np.random.default_rng(0)
    arrays = {}
    for s, n in (("train", 30), ("val", 5), ("test", 7)):
        arrays[f"{s}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{s}_labels"] = rng.integers(0, 2, (n, 1)).astype(np.uint8)
    (tmp_path / "medmnist").mkdir()
    np.savez(tmp_path / "medmnist" / "pneumoniamnist.npz", **arrays)
    b = get_dataset(p, "pneumoniamnist")
    assert not b.synthetic and len(b.splits["test"]) == 7


def test_corrupt_cache_is_rebuilt(tmp_path):
    p = profile(tmp_path, PNEU)
    a = get_dataset(p, "pneumoniamnist")
    folder, _ = cache.paths(p, "pneumoniamnist")
    (folder / "train_images.npy").unlink()  # a new file: `a` still maps the old one (the store never rewrites in place)
    (folder / "train_images.npy").write_bytes(b"broken")
    assert_same(a, get_dataset(p, "pneumoniamnist"))


def test_skipped_dataset_is_not_cached(tmp_path):
    p = profile(tmp_path, MIMIC)
    with pytest.raises(DatasetSkipped):
        get_dataset(p, "mimic_cxr")
    assert not (tmp_path / "cache").exists()


def test_unknown_source_or_mode_is_a_profile_error(tmp_path):
    from medlib.errors import MedlibError

    with pytest.raises(MedlibError, match=r"datasets\[x\]\.source = 'dicom' is unknown"):
        load_dataset(profile(tmp_path, dict(name="x", source="dicom")), "x")
    with pytest.raises(MedlibError, match=r"datasets\[x\]\.synthetic = 'maybe' is unknown"):
        load_dataset(profile(tmp_path, dict(PNEU, name="x", synthetic="maybe")), "x")


def test_truncated_cache_file_is_rebuilt(tmp_path):
    """A truncated .npy cannot be mapped (its header promises more bytes): still a rebuild, not a crash."""
    p = profile(tmp_path, PNEU)
    a = get_dataset(p, "pneumoniamnist")
    folder, _ = cache.paths(p, "pneumoniamnist")
    f = folder / "test_images.npy"
    head = f.read_bytes()[:200]
    f.unlink()
    f.write_bytes(head)
    assert_same(a, get_dataset(p, "pneumoniamnist"))


def test_crash_between_npz_and_json_never_pairs_an_old_key_with_new_arrays(tmp_path, monkeypatch):
    p = profile(tmp_path, PNEU)
    a = get_dataset(p, "pneumoniamnist")
    p2 = dataclasses.replace(p, datasets=[DatasetSpec(**dict(PNEU, max_per_split=10))])

    def crash(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        get_dataset(p2, "pneumoniamnist")  # the npz now holds p2's splits, the JSON was not written
    monkeypatch.undo()
    assert_same(a, get_dataset(p, "pneumoniamnist"))


def test_fallback_loop_is_a_profile_error_not_a_recursion(tmp_path):
    from medlib.errors import MedlibError

    nih = dict(name="c", source="chestxray14", path="nih", size=28, synthetic="never")
    with pytest.raises(MedlibError, match=r"datasets\[c\]\.fallback names itself\. Fix:"):
        get_dataset(profile(tmp_path, dict(nih, fallback="c")), "c")
    with pytest.raises(MedlibError, match=r"datasets\[c\]\.fallback loops \(c -> d -> c\)\. Fix:"):
        get_dataset(profile(tmp_path, dict(nih, fallback="d"), dict(nih, name="d", fallback="c")), "c")
