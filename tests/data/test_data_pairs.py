"""Image-text sources: medlib.data.pubmedvision, csv_pairs, retrieval (fixtures and broken inputs)."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

from medlib.config import DatasetSpec, Profile
from medlib.data import load_dataset, fixtures
from medlib.data.sources.pubmedvision import first_gpt_answer, group_classes
from medlib.errors import MedlibError


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


PMV = dict(name="pubmedvision", source="pubmedvision", path="pubmedvision", size=28, synthetic="auto", fixture_n=120,
           n=4096, hf_id="FreedomIntelligence/PubMedVision", hf_config="PubMedVision_Alignment_VQA")
RET = dict(name="flickr30k", source="retrieval", flag="flickr30k", size=28, synthetic="always", fixture_n=40)


def quiet_load(p, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(p, name)


# ---- PubMedVision ---------------------------------------------------------------------------------------


def test_pubmedvision_fixture(tmp_path, capsys):
    b = load_dataset(profile(tmp_path, PMV), "pubmedvision")
    assert capsys.readouterr().err.count("GENERATED") == 1  # one line, on stderr
    assert b.synthetic and b.task == "multiclass" and b.domain == "medical" and b.has_captions
    assert b.class_names == sorted(b.class_names) and len(b.class_names) == 6
    sizes = {k: len(v) for k, v in b.splits.items()}
    assert sum(sizes.values()) == 120 and sizes["train"] > sizes["test"] > sizes["val"] > 0
    for s in b.splits.values():
        assert s.images.shape[1:] == (28, 28, 3) and s.images.dtype == np.uint8 and s.labels.dtype == np.int64
        assert len(s.captions) == len(s) and all(c.strip() for c in s.captions)
    # Captions mention the body part in several phrasings.
    tr = b.splits["train"]
    assert sum(b.class_names[y].lower() in c.lower() for c, y in zip(tr.captions, tr.labels)) == len(tr)
    assert len({c.split()[0] for c in tr.captions}) >= 3
    assert list(b.manifest["sha256"]) == ["records.jsonl"]


def test_pubmedvision_split_depends_on_seed_only(tmp_path):
    a = quiet_load(profile(tmp_path, PMV, seed=0), "pubmedvision")
    b = quiet_load(profile(tmp_path, PMV, seed=0), "pubmedvision")
    c = quiet_load(profile(tmp_path, PMV, seed=1), "pubmedvision")
    np.testing.assert_array_equal(a.splits["test"].images, b.splits["test"].images)
    assert a.splits["test"].ids == b.splits["test"].ids and a.splits["test"].ids != c.splits["test"].ids


def test_pubmedvision_sampling_n(tmp_path):
    b = quiet_load(profile(tmp_path, dict(PMV, n=50)), "pubmedvision")
    assert sum(len(s) for s in b.splits.values()) == 50


def _local_copy(tmp_path):
    quiet_load(profile(tmp_path / "src", PMV), "pubmedvision")
    dst = tmp_path / "real" / "pubmedvision"
    shutil.copytree(tmp_path / "src" / "fixtures" / "pubmedvision", dst)
    return dst, profile(tmp_path / "real", dict(PMV, synthetic="never"))


def test_pubmedvision_local_folder_and_rare_parts(tmp_path):
    dst, p = _local_copy(tmp_path)
    recs = [json.loads(x) for x in (dst / "records.jsonl").read_text().splitlines()]
    recs[0]["body_part"] = "Eye"  # a singleton body part -> "other"
    recs[1]["image"] = [recs[1]["image"]]  # hub style: a one-element list
    (dst / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_dataset(p, "pubmedvision")
    assert not b.synthetic and b.class_names[-1] == "other" and b.manifest["other_parts"] == ["Eye"]
    # Parquet works the same way (here with every image as a hub-style one-element list).
    pd.DataFrame([{**r, "image": r["image"] if isinstance(r["image"], list) else [r["image"]]} for r in recs]
                 ).to_parquet(dst / "records.parquet")
    (dst / "records.jsonl").unlink()
    assert load_dataset(p, "pubmedvision").class_names == b.class_names


@pytest.mark.parametrize("case,pattern", [
    ("empty_caption", r"records\.jsonl: record 3 .*empty caption"),
    ("missing_column", r"records\.jsonl: missing column\(s\) \['body_part'\]"),
    ("unreadable_image", r"pmv_00000\.png: unreadable image listed in records\.jsonl line 1 "),
    ("missing_image", r"pmv_00000\.png: image listed in records\.jsonl line 1 is missing"),
])
def test_pubmedvision_broken(tmp_path, case, pattern):
    dst, p = _local_copy(tmp_path)
    recs = [json.loads(x) for x in (dst / "records.jsonl").read_text().splitlines()]
    if case == "empty_caption":
        recs[2]["caption"] = "  "
    elif case == "missing_column":
        for r in recs:
            r.pop("body_part")
    elif case == "unreadable_image":
        (dst / "images" / "pmv_00000.png").write_bytes(b"junk")
    else:
        (dst / "images" / "pmv_00000.png").unlink()
    (dst / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    with pytest.raises(MedlibError, match=pattern):
        load_dataset(p, "pubmedvision")


def test_pubmedvision_offline_without_copy(tmp_path):
    p = profile(tmp_path, dict(PMV, synthetic="never", download=False))
    with pytest.raises(MedlibError, match=r"pubmedvision: no PubMedVision copy.*Fix: set datasets\[pubmedvision\]"):
        load_dataset(p, "pubmedvision")
    p = profile(tmp_path, dict(PMV, synthetic="never", download=True))  # HF_*_OFFLINE=1 in conftest
    with pytest.raises(MedlibError, match=r"FreedomIntelligence/PubMedVision: could not fetch .*Fix: go online once"):
        load_dataset(p, "pubmedvision")


def test_hub_helpers():
    conv = [{"from": "human", "value": "<image> What is shown?"}, {"from": "gpt", "value": "  A CT of the chest. "}]
    assert first_gpt_answer(conv) == "A CT of the chest."
    mapped, names, rare = group_classes(["Chest"] * 5 + ["Brain"] * 6 + ["Eye"])
    assert names == ["Brain", "Chest", "other"] and rare == ["Eye"] and mapped[-1] == "other"


# ---- CSV pairs ------------------------------------------------------------------------------------------


def _csv_copy(tmp_path):
    csv = fixtures.write_csv_pairs(tmp_path / "mine", 40)
    return csv, profile(tmp_path, dict(name="mine", source="csv_pairs", path="mine/pairs.csv", size=28))


def test_csv_pairs_reads_and_splits(tmp_path):
    csv, p = _csv_copy(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_dataset(p, "mine")
    assert not b.synthetic and b.has_captions and sum(len(s) for s in b.splits.values()) == 40
    assert b.splits["train"].images.shape[1:] == (28, 28, 3)
    df = pd.read_csv(csv)
    df["split"] = ["test"] * 10 + ["val"] * 5 + ["train"] * 25
    df.to_csv(csv, index=False)
    b = load_dataset(p, "mine")
    assert {k: len(v) for k, v in b.splits.items()} == {"train": 25, "val": 5, "test": 10}
    assert b.splits["test"].ids == df["image_path"][:10].tolist()


def test_csv_pairs_grayscale_images(tmp_path):
    from PIL import Image

    (tmp_path / "g").mkdir()
    rows = []
    for i in range(6):
        Image.fromarray(np.full((20, 20), i * 30, np.uint8)).save(tmp_path / "g" / f"{i}.png")
        rows.append({"image_path": f"{i}.png", "caption": f"gray level {i}", "label": "ab"[i % 2]})
    pd.DataFrame(rows).to_csv(tmp_path / "g" / "pairs.csv", index=False)
    b = load_dataset(profile(tmp_path, dict(name="g", source="csv_pairs", path="g/pairs.csv", size=16)), "g")
    assert b.splits["train"].images.shape[1:] == (16, 16) and b.class_names == ["a", "b"]


@pytest.mark.parametrize("case,pattern", [
    ("no_column", r"pairs\.csv: missing column\(s\) \['caption'\]"),
    ("empty_caption", r"pairs\.csv: line 4: empty caption"),
    ("missing_image", r"pairs\.csv: line 2: image 'images/nope\.png' not found"),
    ("unreadable_image", r"pmv_00001\.png: unreadable image listed in pairs\.csv line 3 "),
    ("label_outside", r"pairs\.csv: line 2: label 'Spleen' is not in classes\.txt"),
    ("bad_split", r"pairs\.csv: split value\(s\) \['holdout'\]"),
])
def test_csv_pairs_broken(tmp_path, case, pattern):
    csv, p = _csv_copy(tmp_path)
    df = pd.read_csv(csv)
    if case == "no_column":
        df = df.drop(columns=["caption"])
    elif case == "empty_caption":
        df.loc[2, "caption"] = ""
    elif case == "missing_image":
        df.loc[0, "image_path"] = "images/nope.png"
    elif case == "unreadable_image":
        (csv.parent / "images" / "pmv_00001.png").write_bytes(b"junk")
    elif case == "label_outside":
        (csv.parent / "classes.txt").write_text("\n".join(sorted(set(df["label"]) - {df.loc[0, "label"]})) + "\n")
        df.loc[0, "label"] = "Spleen"
    elif case == "bad_split":
        df["split"] = "holdout"
    df.to_csv(csv, index=False)
    with pytest.raises(MedlibError, match=pattern) as exc:
        load_dataset(p, "mine")
    assert "Fix:" in str(exc.value)


def test_csv_pairs_missing_csv(tmp_path):
    p = profile(tmp_path, dict(name="x", source="csv_pairs", path="nope/pairs.csv"))
    with pytest.raises(MedlibError, match=r"nope/pairs\.csv: CSV not found"):
        load_dataset(p, "x")


# ---- retrieval ------------------------------------------------------------------------------------------


def test_retrieval_offline_hub(tmp_path):
    p = profile(tmp_path, dict(RET, synthetic="never", download=True, hf_id="nlphuji/flickr_1k_test_image_text_retrieval"))
    with pytest.raises(MedlibError, match=r"nlphuji/flickr_1k_test_image_text_retrieval: could not load"):
        load_dataset(p, "flickr30k")


def test_pubmedvision_hub_path_with_fake_hub(tmp_path, monkeypatch):
    """The hub route (sample, keep single-image records, fetch only their images, write the local layout)."""
    import zipfile

    import datasets
    import huggingface_hub

    rng = np.random.default_rng(0)
    recs, zips = [], {0: {}, 1: {}}
    for i in range(40):
        n_img = 2 if i % 5 == 0 else 1  # some multi-image records, which must be dropped
        paths = [f"images/img_{i}_{j}.jpg" for j in range(n_img)]
        for j, pth in enumerate(paths):
            arr = rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)
            zips[i % 2]["x/" + pth if i % 4 == 1 else pth] = fixtures.png_bytes(arr, "JPEG")
        recs.append({"id": f"r{i}", "image": paths, "modality": "CT", "body_part": ["Chest", "Brain"][i % 2],
                     "conversations": [{"from": "human", "value": "<image>?"}, {"from": "gpt", "value": f" cap {i} "}]})
    for k, members in zips.items():
        with zipfile.ZipFile(tmp_path / f"images_{k}.zip", "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    opened = []

    class FakeFS:
        def open(self, path, mode="rb"):
            opened.append(path)
            return open(tmp_path / path.rsplit("/", 1)[-1], mode)

    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: recs)
    monkeypatch.setattr(huggingface_hub, "HfFileSystem", FakeFS)
    p = profile(tmp_path / "d", dict(PMV, synthetic="never", download=True, n=12))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = load_dataset(p, "pubmedvision")
    assert sum(len(s) for s in b.splits.values()) == 12 and b.class_names == ["Brain", "Chest"]
    assert all(c.startswith("cap ") for s in b.splits.values() for c in s.captions)
    root = tmp_path / "d" / "pubmedvision"
    lines = (root / "records.jsonl").read_text().splitlines()
    assert len(lines) == 12 and len(list((root / "images").iterdir())) == 12  # only the needed images
    assert opened[0] == "datasets/FreedomIntelligence/PubMedVision/images_0.zip"
    # Later runs are offline: the local copy is used, the hub is not touched.
    monkeypatch.setattr(datasets, "load_dataset", None)
    assert load_dataset(p, "pubmedvision").splits["test"].ids == b.splits["test"].ids


def test_unreachable_hub_fails_at_once(tmp_path, monkeypatch):
    import time

    for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid")
    t = time.perf_counter()
    with pytest.raises(MedlibError, match=r"flickr: cannot reach hub\.invalid.*HF_DATASETS_OFFLINE=1"):
        load_dataset(profile(tmp_path, dict(RET, synthetic="never", download=True, hf_id="flickr")), "flickr30k")
    assert time.perf_counter() - t < 10


def test_single_file_fixture_sidecar_never_vouches_for_a_newer_file(tmp_path, monkeypatch):
    path = tmp_path / "f.npz"
    fixtures.ensure_file(path, {"n": 1}, lambda: {"a": np.zeros(1)})

    def crash(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(fixtures.files, "write_json", crash)
    with pytest.raises(KeyboardInterrupt):
        fixtures.ensure_file(path, {"n": 2}, lambda: {"a": np.zeros(2)})  # npz written, sidecar not
    monkeypatch.undo()
    fixtures.ensure_file(path, {"n": 1}, lambda: {"a": np.zeros(1)})
    with np.load(path) as z:
        assert z["a"].shape == (1,)
