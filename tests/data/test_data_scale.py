"""The data layer at scale (issue 12): reduced-size decoding within its stated tolerance, worker errors that name
the file and the index line, resumable preparation equal to an uninterrupted one, memory-mapped prepared splits
that open without reading any image file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import medlib.data.cache as cache
from medlib.config import DatasetSpec, Profile
from medlib.data import decode, get_dataset, load_dataset, store, fixtures
from medlib.data.decode import TOLERANCE_MEAN_ABS, ImageFiles, decode_file
from medlib.errors import MedlibError

NIH = dict(name="chestxray14", source="chestxray14", path="chestxray14", size=28, synthetic="always", fixture_n=300)


def profile(tmp_path, *specs: dict, workers: int = 1) -> Profile:
    return Profile(name="t", kind="smoke", seed=0, data_dir=str(tmp_path), data_workers=workers,
                   datasets=[DatasetSpec(**s) for s in specs])


def _scan(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A chest-film-like 8-bit image: smooth anatomy, edges and fine noise (what the decoders see in practice)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = 0.5 + 0.25 * np.sin(6 * x) * np.cos(4 * y) - 0.3 * (((x - .35) / .18) ** 2 + ((y - .5) / .3) ** 2 < 1)
    img += 0.3 * (((x - .7) / .15) ** 2 + ((y - .45) / .28) ** 2 < 1) + rng.normal(0, 0.03, (h, w))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


@pytest.mark.parametrize("fmt,shape", [("PNG", (1024, 1024)), ("JPEG", (3056, 2544))])
def test_reduced_decoding_is_within_the_stated_tolerance_of_the_full_decode(tmp_path, fmt, shape):
    path = tmp_path / f"x.{fmt.lower()}"
    Image.fromarray(_scan(*shape)).save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    full = decode_file(path, 224, rgb=False, reduced=False)
    fast = decode_file(path, 224, rgb=False, reduced=True)
    diff = np.abs(full.astype(int) - fast.astype(int))
    assert diff.mean() <= TOLERANCE_MEAN_ABS, diff.mean()
    assert np.percentile(diff, 99) <= 8  # no structural change, only resampling noise
    assert not np.array_equal(full, fast)  # it is a different (cheaper) path


def test_small_images_take_exactly_the_old_path(tmp_path):
    for fmt in ("PNG", "JPEG"):
        path = tmp_path / f"s.{fmt.lower()}"
        Image.fromarray(_scan(64, 64)).save(path, fmt)
        np.testing.assert_array_equal(decode_file(path, 28, False, reduced=True),
                                      decode_file(path, 28, False, reduced=False))


def test_a_worker_error_names_the_file_and_the_index_line(tmp_path, monkeypatch):
    root = tmp_path / "pairs"
    fixtures.write_csv_pairs(root, 200)
    import pandas as pd

    df = pd.read_csv(root / "pairs.csv")
    bad = root / df["image_path"][150]
    bad.write_bytes(b"not an image")
    monkeypatch.setattr(decode, "PARALLEL_MIN", 0)  # a pool even for 200 images
    p = profile(tmp_path, dict(name="pairs", source="csv_pairs", path=str(root / "pairs.csv"), size=16), workers=2)
    with pytest.raises(MedlibError) as e:
        get_dataset(p, "pairs")
    msg = str(e.value)
    assert msg.startswith(f"{bad}: unreadable image listed in pairs.csv line 152") and "Fix:" in msg
    assert "\n" not in msg


def test_pool_and_one_process_give_the_same_arrays(tmp_path, monkeypatch):
    root = tmp_path / "pairs"
    fixtures.write_csv_pairs(root, 150)
    import pandas as pd

    paths = [root / p for p in pd.read_csv(root / "pairs.csv")["image_path"]]
    monkeypatch.setattr(decode, "PARALLEL_MIN", 0)
    one = ImageFiles(paths, 16, True, root / "pairs.csv", workers=1).decode()
    two = ImageFiles(paths, 16, True, root / "pairs.csv", workers=2).decode()
    np.testing.assert_array_equal(one, two)


def test_interrupted_preparation_resumes_and_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    monkeypatch.setattr(decode, "CHUNK", 16)
    monkeypatch.setattr(store, "COMMIT_EVERY_S", 0.0)
    real_chunk = decode._decode_chunk
    decoded: list[int] = []

    def counting(job):
        decoded.append(len(job[0]))
        return real_chunk(job)

    def interrupting(job):
        if len(decoded) == 5:  # Ctrl-C / kill while the 6th chunk of the first split is decoded
            raise KeyboardInterrupt
        return counting(job)

    p = profile(tmp_path / "a", NIH)
    monkeypatch.setattr(decode, "_decode_chunk", interrupting)
    with pytest.raises(KeyboardInterrupt):
        get_dataset(p, "chestxray14")
    folder, meta = cache.paths(p, "chestxray14")
    assert not meta.exists() and cache.read(p, "chestxray14") is None  # never read as complete
    assert (folder / "train_images.npy.partial").is_file() and not (folder / "train_images.npy").exists()
    assert store._record(folder, "train")["done"] == 5 * 16

    decoded.clear()
    monkeypatch.setattr(decode, "_decode_chunk", counting)
    resumed = get_dataset(p, "chestxray14")
    n_total = sum(len(s) for s in resumed.splits.values())
    assert sum(decoded) == n_total - 5 * 16  # continued from image 80, not from 0

    fresh = get_dataset(profile(tmp_path / "b", NIH), "chestxray14")
    for k in resumed.splits:
        np.testing.assert_array_equal(resumed.splits[k].images, fresh.splits[k].images)
        np.testing.assert_array_equal(resumed.splits[k].labels, fresh.splits[k].labels)
        assert resumed.splits[k].ids == fresh.splits[k].ids


def test_opening_a_prepared_split_maps_it_and_reads_no_image_file(tmp_path, monkeypatch):
    p = profile(tmp_path, NIH)
    first = get_dataset(p, "chestxray14")
    copy = {k: np.array(s.images) for k, s in first.splits.items()}
    for d in (tmp_path / "fixtures" / "chestxray14").glob("images_*"):  # the source images are gone...
        d.rename(tmp_path / f"moved_{d.name}")

    def no_reading(*a, **k):
        raise AssertionError("an image file was opened")

    monkeypatch.setattr(Image, "open", no_reading)  # ...and no image file may be opened
    again = get_dataset(p, "chestxray14")
    for k, s in again.splits.items():
        assert isinstance(s.images, np.memmap) and not s.images.flags.writeable
        np.testing.assert_array_equal(s.images, copy[k])
    batches = list(store.iter_batches(again.splits["train"].images, 64))
    np.testing.assert_array_equal(np.concatenate(batches), copy["train"])


def test_load_dataset_decodes_into_memory(tmp_path):
    b = load_dataset(profile(tmp_path, NIH), "chestxray14")
    assert all(type(s.images) is np.ndarray and s.images.dtype == np.uint8 for s in b.splits.values())


@pytest.mark.slow  # generates MIMIC-size JPEGs (~1 min on a loaded 2-core machine)
def test_prepare_benchmark_reports_both_paths_and_the_split(tmp_path):
    from tools.bench_data import run

    r = run(n=2, size=64, workers=2, split_n=300, batch_size=64, workdir=str(tmp_path))
    for fmt in ("png", "jpg"):
        assert r[fmt]["old_img_s"] > 0 and r[fmt]["new_img_s"] > 0 and r[fmt]["mean_abs_diff"] <= TOLERANCE_MEAN_ABS
        assert r[fmt]["ratio"] == pytest.approx(r[fmt]["new_img_s"] / r[fmt]["old_img_s"])
        assert r[fmt]["old_cpu_ms"] > 0 and r[fmt]["new_cpu_ms"] > 0
    assert r["jpg"]["new_cpu_ms"] < r["jpg"]["old_cpu_ms"]  # DCT-domain reduced decoding does less work
    s = r["split"]
    assert s["n"] == 300 and s["open_s"] < 1.0 and s["checksum"] >= 0
    assert s["open"]["rss_mb"] - s["base_rss_mb"] < 50  # opening maps the file, it does not read it
