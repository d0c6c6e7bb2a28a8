"""medlib.data.retrieval: Karpathy JSON + image folder (Flickr30K, COCO), the hub route, and several captions per
image through the cache and the CSV source."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from medlib.config import DatasetSpec, Profile
from medlib.data import get_dataset, load_dataset, fixtures
from medlib.errors import MedlibError

RET = dict(name="flickr30k", source="retrieval", flag="flickr30k", size=28, synthetic="always", fixture_n=40)
COCO = dict(RET, name="coco", flag="coco")


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


def quiet_load(p, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(p, name)


def local_copy(tmp_path, flag="flickr30k", n=40):
    """A Karpathy-layout folder (dataset_<flag>.json + images/) written by the fixture generator."""
    dst = tmp_path / "local" / flag
    fixtures.write_retrieval(dst, n, flag)
    return dst


def test_reads_karpathy_json_and_image_folder(tmp_path):
    dst = local_copy(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real local copy: no "generated fixture" warning
        b = load_dataset(profile(tmp_path, dict(RET, synthetic="never", path=str(dst))), "flickr30k")
    assert not b.synthetic and b.task == "retrieval" and b.domain == "general" and b.class_names == []
    doc = json.loads((dst / "dataset_flickr30k.json").read_text())
    want = {s: sum(e["split"] == s for e in doc["images"]) for s in ("train", "val", "test")}
    assert {k: len(v) for k, v in b.splits.items()} == want == {"train": 24, "val": 8, "test": 8}
    for s in b.splits.values():
        assert s.images.shape[1:] == (28, 28, 3) and (s.labels == -1).all()
        assert all(len(c) == 5 for c in s.all_captions) and [c[0] for c in s.all_captions] == s.captions
    by_name = {e["filename"]: [x["raw"] for x in e["sentences"]] for e in doc["images"]}
    test = b.splits["test"]
    assert [by_name[i] for i in test.ids] == test.all_captions  # captions stay with their image
    assert b.manifest["n_captions"] == {"train": 120, "val": 40, "test": 40}


def test_coco_layout_filepath_and_restval_count_as_train(tmp_path):
    dst = local_copy(tmp_path, "coco")
    doc = json.loads((dst / "dataset_coco.json").read_text())
    assert {e["split"] for e in doc["images"]} == {"train", "restval", "val", "test"}
    b = load_dataset(profile(tmp_path, dict(COCO, synthetic="never", path=str(dst))), "coco")
    assert len(b.splits["train"]) == sum(e["split"] in ("train", "restval") for e in doc["images"])
    assert {i.split("/")[0] for i in b.splits["train"].ids} == {"train2014", "val2014"}


def test_path_may_name_the_json_and_images_may_sit_in_flickr30k_images(tmp_path):
    dst = local_copy(tmp_path)
    (dst / "images").rename(dst / "flickr30k-images")
    p = profile(tmp_path, dict(RET, synthetic="never", path=str(dst / "dataset_flickr30k.json")))
    assert len(load_dataset(p, "flickr30k").splits["test"]) == 8


def test_missing_image_is_one_line_naming_the_json_entry(tmp_path):
    dst = local_copy(tmp_path)
    doc = json.loads((dst / "dataset_flickr30k.json").read_text())
    victim = doc["images"][30]  # a val image
    (dst / "images" / victim["filename"]).unlink()
    with pytest.raises(MedlibError) as exc:
        load_dataset(profile(tmp_path, dict(RET, synthetic="never", path=str(dst))), "flickr30k")
    msg = str(exc.value)
    assert "\n" not in msg and f"images[30] ({victim['filename']})" in msg and "dataset_flickr30k.json" in msg
    assert "Fix:" in msg


@pytest.mark.parametrize("edit, match", [
    (lambda e: e.update(split="holdout"), r"images\[3\] \(1000003\.jpg\): unknown split 'holdout'"),
    (lambda e: e.update(sentences=[{"raw": " "}]), r"images\[3\] \(1000003\.jpg\): empty caption"),
    (lambda e: e.pop("sentences"), r"images\[3\]: bad entry"),
])
def test_broken_json_entry_is_named(tmp_path, edit, match):
    dst = local_copy(tmp_path)
    path = dst / "dataset_flickr30k.json"
    doc = json.loads(path.read_text())
    edit(doc["images"][3])
    path.write_text(json.dumps(doc))
    with pytest.raises(MedlibError, match=match):
        load_dataset(profile(tmp_path, dict(RET, synthetic="never", path=str(dst))), "flickr30k")


def test_not_a_karpathy_file(tmp_path):
    dst = local_copy(tmp_path)
    (dst / "dataset_flickr30k.json").write_text('{"annotations": []}')
    with pytest.raises(MedlibError, match="not a Karpathy caption file"):
        load_dataset(profile(tmp_path, dict(RET, synthetic="never", path=str(dst))), "flickr30k")


def test_absent_copy_without_download_names_the_json(tmp_path):
    with pytest.raises(MedlibError, match=r"flickr30k/dataset_flickr30k\.json: no retrieval set"):
        load_dataset(profile(tmp_path, dict(RET, synthetic="never", path="flickr30k")), "flickr30k")


def test_fixture_goes_through_the_same_loader(tmp_path, capsys):
    b = load_dataset(profile(tmp_path, RET), "flickr30k")
    assert capsys.readouterr().err.count("GENERATED") == 1
    assert b.synthetic and b.source.endswith("dataset_flickr30k.json (generated fixture)")
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 24, "val": 8, "test": 8}
    assert all(len(c) == 5 for c in b.splits["test"].all_captions)
    coco = quiet_load(profile(tmp_path, COCO), "coco")
    assert not np.array_equal(coco.splits["test"].images, b.splits["test"].images)  # its own images


def test_cap_reads_only_the_kept_images(tmp_path):
    """max_per_split is applied to the index before images are read."""
    dst = local_copy(tmp_path)
    spec = dict(RET, synthetic="never", path=str(dst), max_per_split=5)
    full = load_dataset(profile(tmp_path, dict(spec, max_per_split=0)), "flickr30k")
    capped = load_dataset(profile(tmp_path, spec), "flickr30k")
    assert {k: len(v) for k, v in capped.splits.items()} == {"train": 5, "val": 5, "test": 5}
    keep = [full.splits["test"].ids.index(i) for i in capped.splits["test"].ids]
    np.testing.assert_array_equal(capped.splits["test"].images, full.splits["test"].images[keep])
    assert capped.splits["test"].all_captions == [full.splits["test"].all_captions[k] for k in keep]
    dropped = sorted(set(full.splits["test"].ids) - set(capped.splits["test"].ids))[0]
    (dst / "images" / dropped).write_bytes(b"junk")
    assert load_dataset(profile(tmp_path, spec), "flickr30k").splits["test"].ids == capped.splits["test"].ids


def test_cache_keeps_every_caption(tmp_path):
    p = profile(tmp_path, RET)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = get_dataset(p, "flickr30k")
        again = get_dataset(p, "flickr30k")  # read back from the cache
    assert "cache" in again.manifest
    for s in first.splits:
        assert again.splits[s].all_captions == first.splits[s].all_captions and len(again.splits[s].all_captions[0]) == 5


class FakeHubSplit:
    """The little of a ``datasets.Dataset`` the loader uses (columns, select_columns, iteration, row access)."""

    def __init__(self, rows):
        self.rows = rows
        self.column_names = list(rows[0])

    def select_columns(self, cols):
        return FakeHubSplit([{c: r[c] for c in cols} for r in self.rows])

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def test_hub_splits_and_split_column(tmp_path, monkeypatch):
    import datasets
    from PIL import Image

    rng = np.random.default_rng(0)
    img = lambda: Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))  # noqa: E731
    rows = [{"image": img(), "caption": [f"cap {i} {k}" for k in range(5)], "filename": f"{i}.jpg",
             "split": ["train", "val", "test", "restval"][i % 4]} for i in range(16)]
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: {"test": FakeHubSplit(rows)})
    b = load_dataset(profile(tmp_path, dict(RET, synthetic="never", download=True, hf_id="x/flickr")), "flickr30k")
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 8, "val": 4, "test": 4}
    assert b.splits["val"].all_captions[0] == [f"cap 1 {k}" for k in range(5)]
    assert b.source == "x/flickr" and b.splits["test"].images.shape == (4, 28, 28, 3)


def test_hub_captions_only_reads_images_from_the_local_folder(tmp_path, monkeypatch):
    """yerevann/coco-karpathy's shape: splits and sentences on the hub, no image column, filepath/filename on disk."""
    import datasets

    dst = local_copy(tmp_path, "coco", n=10)
    doc = json.loads((dst / "dataset_coco.json").read_text())
    by_split: dict[str, list] = {}
    for e in doc["images"]:
        by_split.setdefault({"val": "validation"}.get(e["split"], e["split"]), []).append(
            {"filepath": e["filepath"], "filename": e["filename"], "sentences": [s["raw"] for s in e["sentences"]]})
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: {s: FakeHubSplit(r) for s, r in by_split.items()})
    p = profile(tmp_path, dict(COCO, synthetic="never", download=True, hf_id="y/coco-karpathy",
                               path=str(dst / "images")))
    b = load_dataset(p, "coco")
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 6, "val": 2, "test": 2}
    local = load_dataset(profile(tmp_path, dict(COCO, synthetic="never", path=str(dst))), "coco")
    np.testing.assert_array_equal(b.splits["test"].images, local.splits["test"].images)
    (dst / "images" / local.splits["test"].ids[0]).unlink()
    with pytest.raises(MedlibError, match=r"val2014/.*: image of y/coco-karpathy test\[0\] is missing"):
        load_dataset(p, "coco")


# ---- several captions per image from the CSV source ------------------------------------------------------------


def test_csv_repeated_image_rows_are_one_image_with_several_captions(tmp_path):
    csv = fixtures.write_csv_pairs(tmp_path / "mine", 12)
    df = pd.read_csv(csv)
    extra = df.iloc[[0, 0, 3]].assign(caption=["second caption", "third caption", "another view"])
    pd.concat([df, extra]).to_csv(csv, index=False)
    p = profile(tmp_path, dict(name="mine", source="csv_pairs", path="mine/pairs.csv", size=28))
    b = load_dataset(p, "mine")
    assert sum(len(s) for s in b.splits.values()) == 12  # images, not rows
    every = {i: c for s in b.splits.values() for i, c in zip(s.ids, s.all_captions)}
    assert every[df["image_path"][0]] == [df["caption"][0], "second caption", "third caption"]
    assert every[df["image_path"][3]] == [df["caption"][3], "another view"]
    assert all(s.captions == [c[0] for c in s.all_captions] for s in b.splits.values())
    bad = pd.concat([df, df.iloc[[2]].assign(label="other", caption="x")])
    bad.to_csv(csv, index=False)
    with pytest.raises(MedlibError, match=r"line 14: image .* has label 'other', but .* on line 4"):
        load_dataset(p, "mine")


def test_preflight_counts_a_local_karpathy_copy_as_present(tmp_path):
    from medlib.run.preflight import _dataset_missing

    spec = dict(RET, synthetic="never", download=True, hf_id="x/never-cached", path="flickr30k")
    p = profile(tmp_path, spec)
    assert "x/never-cached" in _dataset_missing(p, p.datasets[0])  # nothing local: the hub download is needed
    fixtures.write_retrieval(tmp_path / "flickr30k", 10, "flickr30k")
    assert _dataset_missing(p, p.datasets[0]) is None
