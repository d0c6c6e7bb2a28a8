"""More faults in the data layer: decompression bombs, image paths that leave the dataset folder (every source
that reads image paths from a file), and same-size replacements of input files that keep the old mtime."""

from __future__ import annotations

import io
import json
import os
import struct
import warnings
import zlib

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from medlib.config import DatasetSpec, Profile
from medlib.data import decode, digests, get_dataset, load_dataset, fixtures
from medlib.data.decode import read_image
from medlib.data.decode import ImageFiles
from medlib.errors import MedlibError
from helpers import rebuilt


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", kind="smoke", seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and "Fix:" in msg
    return msg


# ---- decompression bombs ----------------------------------------------------------------------------------


def write_bomb(path, side: int = 50_000) -> None:
    """A real (tiny) PNG whose IHDR declares ``side`` x ``side`` pixels, with a valid chunk CRC."""
    Image.new("L", (1, 1)).save(path, format="PNG")  # PNG content even under a .jpg name
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", side, side)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    assert path.stat().st_size < 100  # small on disk; PIL refuses it at open, before decoding a pixel


def assert_bomb_message(msg: str, image, where: str) -> None:
    assert msg.startswith(f"{image}: image listed in {where} is too large to decode: its header declares "
                          "2,500,000,000 pixels"), msg
    assert "decompression bomb" in msg and "Fix: downscale the image" in msg and "Image size" not in msg


def test_bomb_in_csv_pairs_names_the_image_the_csv_line_and_the_fix(tmp_path):
    csv = fixtures.write_csv_pairs(tmp_path / "mine", 20)
    df = pd.read_csv(csv)
    write_bomb(csv.parent / df["image_path"][4])  # listed on line 6
    p = profile(tmp_path, dict(name="mine", source="csv_pairs", path="mine/pairs.csv", size=16))
    for read in (load_dataset, get_dataset):  # in memory, and prepared into the store
        with pytest.raises(MedlibError) as e:
            read(p, "mine")
        assert_bomb_message(one_line(e), csv.parent / df["image_path"][4], "pairs.csv line 6")
        assert f"remove its row from {csv}" in str(e.value)


def test_bomb_in_a_karpathy_set_names_the_json_entry(tmp_path):
    dst = tmp_path / "local" / "flickr30k"
    fixtures.write_retrieval(dst, 40, "flickr30k")
    doc = json.loads((dst / "dataset_flickr30k.json").read_text())
    victim = doc["images"][7]["filename"]
    write_bomb(dst / "images" / victim)
    p = profile(tmp_path, dict(name="flickr30k", source="retrieval", flag="flickr30k", size=28, synthetic="never",
                               path=str(dst)))
    with pytest.raises(MedlibError) as e:
        load_dataset(p, "flickr30k")
    assert_bomb_message(one_line(e), dst / "images" / victim, f"dataset_flickr30k.json images[7] ({victim})")


def test_bomb_reads_the_same_in_the_pool_and_in_one_process(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(paths[-1])
    write_bomb(paths[9])
    wheres = [f"line {i + 2}" for i in range(12)]
    monkeypatch.setattr(decode, "PARALLEL_MIN", 0)
    msgs = []
    for workers in (1, 2):
        with pytest.raises(MedlibError) as e:
            ImageFiles(paths, 8, False, tmp_path / "index.csv", wheres, workers=workers).decode()
        msgs.append(one_line(e))
    with pytest.raises(MedlibError) as e:
        read_image(paths[9], 8, False, tmp_path / "index.csv", "line 11")
    msgs.append(one_line(e))
    assert msgs[0] == msgs[1] == msgs[2]
    assert_bomb_message(msgs[0], paths[9], "index.csv line 11")


# ---- image paths that leave the dataset folder: one rule for every source that reads them from a file ------


def outside_warnings(rec) -> list[str]:
    return [str(w.message) for w in rec if "outside the dataset folder" in str(w.message)]


def load_recording(p, name):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        b = load_dataset(p, name)
    return b, outside_warnings(rec)


def test_csv_absolute_paths_into_its_own_folder_are_inside(tmp_path):
    csv = fixtures.write_csv_pairs(tmp_path / "mine", 12)
    df = pd.read_csv(csv)
    df["image_path"] = [str(csv.parent / p) for p in df["image_path"]]
    df.to_csv(csv, index=False)
    b, said = load_recording(profile(tmp_path, dict(name="mine", source="csv_pairs", path=str(csv), size=16)), "mine")
    assert said == [] and b.manifest["images_outside_folder"] == {"folder": str(csv.parent), "n": 0, "examples": []}


def test_karpathy_paths_leaving_the_dataset_folder_are_read_warned_and_recorded(tmp_path):
    dst = tmp_path / "local" / "flickr30k"
    fixtures.write_retrieval(dst, 40, "flickr30k")
    spec = dict(name="flickr30k", source="retrieval", flag="flickr30k", size=28, synthetic="never", path=str(dst))
    before, said = load_recording(profile(tmp_path, spec), "flickr30k")
    assert said == [] and before.manifest["images_outside_folder"]["n"] == 0
    path = dst / "dataset_flickr30k.json"
    doc = json.loads(path.read_text())
    (tmp_path / "shared").mkdir()
    up, absolute = doc["images"][5], doc["images"][6]
    os.replace(dst / "images" / up["filename"], tmp_path / "shared" / up["filename"])
    os.replace(dst / "images" / absolute["filename"], tmp_path / "shared" / absolute["filename"])
    up["filename"] = f"../../../shared/{up['filename']}"  # from local/flickr30k/images/: three folders up
    absolute["filepath"] = str(tmp_path / "shared")
    path.write_text(json.dumps(doc))
    b, said = load_recording(profile(tmp_path, spec), "flickr30k")
    assert len(said) == 1 and said[0].startswith(f"{path}: 2 image path(s) point outside the dataset folder {dst} ")
    assert f"images[5] ({up['filename']}): {tmp_path / 'shared'}" in said[0]
    rec = b.manifest["images_outside_folder"]
    assert rec["folder"] == str(dst) and rec["n"] == 2
    assert sorted(rec["examples"]) == sorted(str(tmp_path / "shared" / e["filename"].split("/")[-1])
                                             for e in (up, absolute))
    for s in b.splits:  # still read: the same pixels as before the move
        np.testing.assert_array_equal(b.splits[s].images, before.splits[s].images)
    with pytest.warns(UserWarning, match="2 image path"):  # prepared: the record is kept in the cache
        assert get_dataset(profile(tmp_path, spec), "flickr30k").manifest["images_outside_folder"]["n"] == 2


def test_pubmedvision_record_paths_leaving_the_folder_are_read_warned_and_recorded(tmp_path):
    pmv = dict(name="pubmedvision", source="pubmedvision", path="pubmedvision", size=28, synthetic="never")
    root = fixtures.ensure_pubmedvision(tmp_path / "pubmedvision", 60)
    recs = [json.loads(x) for x in (root / "records.jsonl").read_text().splitlines()]
    (tmp_path / "shared").mkdir()
    os.replace(root / recs[2]["image"], tmp_path / "shared" / "x.png")
    recs[2]["image"] = "../shared/x.png"
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    b, said = load_recording(profile(tmp_path, pmv), "pubmedvision")
    assert len(said) == 1 and said[0].startswith(f"{root / 'records.jsonl'}: 1 image path(s) point outside the "
                                                 f"dataset folder {root} (first: line 3: {tmp_path / 'shared'}/x.png)")
    assert b.manifest["images_outside_folder"] == {"folder": str(root), "n": 1,
                                                   "examples": [str(tmp_path / "shared" / "x.png")]}
    assert sum(len(s) for s in b.splits.values()) == 60


def test_mimic_dicom_ids_leaving_the_folder_are_read_warned_and_recorded(tmp_path):
    root = tmp_path / "mimic"
    fixtures.ensure_mimic_cxr(root, 40)
    spec = dict(name="mimic_cxr", source="mimic_cxr", path="mimic", size=28, synthetic="never")
    before, said = load_recording(profile(tmp_path, spec), "mimic_cxr")
    assert said == [] and before.manifest["images_outside_folder"] == {"folder": str(root), "n": 0, "examples": []}
    dicom = before.splits["train"].ids[0]
    split = pd.read_csv(root / "mimic-cxr-2.0.0-split.csv.gz")
    meta = pd.read_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz")
    line = int(np.flatnonzero(split["dicom_id"] == dicom)[0]) + 2
    subject, study = (int(v) for v in split.loc[split["dicom_id"] == dicom, ["subject_id", "study_id"]].iloc[0])
    (tmp_path / "shared").mkdir()
    os.replace(root / "files" / f"p{str(subject)[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg",
               tmp_path / "shared" / "x.jpg")
    new = "../../../../../shared/x"  # from files/pNN/pX/sY/: five folders up is the MIMIC folder's parent
    for df, name in ((split, "split"), (meta, "metadata")):
        df.loc[df["dicom_id"] == dicom, "dicom_id"] = new
        df.to_csv(root / f"mimic-cxr-2.0.0-{name}.csv.gz", index=False, compression="gzip")
    b, said = load_recording(profile(tmp_path, spec), "mimic_cxr")
    assert len(said) == 1 and said[0].startswith(
        f"{root / 'mimic-cxr-2.0.0-split.csv.gz'}: 1 image path(s) point outside the dataset folder {root} "
        f"(first: line {line}: {tmp_path / 'shared'}/x.jpg)")
    assert b.manifest["images_outside_folder"]["n"] == 1
    np.testing.assert_array_equal(b.splits["train"].images[b.splits["train"].ids.index(new)],
                                  before.splits["train"].images[0])


def test_chestxray14_reads_images_by_name_inside_its_folder_and_records_so(tmp_path):
    root = fixtures.ensure_chestxray14(tmp_path / "chestxray14", 120)
    spec = dict(name="chestxray14", source="chestxray14", path="chestxray14", size=28, synthetic="never")
    b, said = load_recording(profile(tmp_path, spec), "chestxray14")
    assert said == [] and b.manifest["images_outside_folder"] == {"folder": str(root), "n": 0, "examples": []}
    # An Image Index that climbs out names a file it never finds: images are looked up by name in the folder.
    csv = root / "Data_Entry_2017.csv"
    df = pd.read_csv(csv)
    first = df["Image Index"][0]
    Image.new("L", (8, 8)).save(tmp_path / first)
    for f in (csv, root / "train_val_list.txt", root / "test_list.txt"):
        f.write_text(f.read_text().replace(first, f"../{first}"))
    with pytest.raises(MedlibError, match=rf"image\(s\) of the \w+ split are missing \(first: \.\./{first}\)"):
        load_dataset(profile(tmp_path, spec), "chestxray14")


# ---- an input replaced by one of the same size, keeping the old mtime (cp -p, rsync -a -I, os.utime) --------


def replace_keeping_size_and_mtime(path, data: bytes) -> None:
    st = os.stat(path)
    assert len(data) == st.st_size
    path.write_bytes(data)  # in place, as cp -p does
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)


PNEU = dict(name="pneumoniamnist", source="medmnist", flag="pneumoniamnist", size=28, synthetic="never")


@pytest.mark.parametrize("racy_s", [digests.RACY_S, 0.0])  # a fresh file is hashed each time / memoized
def test_same_size_npz_replacement_keeping_the_mtime_rebuilds_the_cache(tmp_path, monkeypatch, racy_s):
    monkeypatch.setattr(digests, "RACY_S", racy_s)
    arrays = fixtures.medmnist_arrays(0, 60, 28, 2, False, 1)
    npz = tmp_path / "medmnist" / "pneumoniamnist.npz"
    npz.parent.mkdir()
    np.savez(npz, **arrays)
    p = profile(tmp_path, PNEU)
    old = np.array(get_dataset(p, "pneumoniamnist").splits["train"].images[0])
    assert not rebuilt(p, "pneumoniamnist", monkeypatch)
    arrays["train_images"][0] = 255 - arrays["train_images"][0]
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    replace_keeping_size_and_mtime(npz, buf.getvalue())
    assert rebuilt(p, "pneumoniamnist", monkeypatch)
    np.testing.assert_array_equal(get_dataset(p, "pneumoniamnist").splits["train"].images[0], 255 - old)


def test_same_size_image_replacement_keeping_the_mtime_rebuilds_csv_pairs(tmp_path, monkeypatch):
    root = tmp_path / "bmp"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(10):  # uncompressed: a different image of the same shape has the same size
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / f"{i}.bmp")
    pd.DataFrame({"image_path": [f"{i}.bmp" for i in range(10)], "caption": [f"image {i}" for i in range(10)],
                  "label": ["ab"[i % 2] for i in range(10)]}).to_csv(root / "pairs.csv", index=False)
    p = profile(tmp_path, dict(name="bmp", source="csv_pairs", path=str(root / "pairs.csv"), size=16))
    first = get_dataset(p, "bmp")
    split, k = next((s, sp.ids.index("3.bmp")) for s, sp in first.splits.items() if "3.bmp" in sp.ids)
    new = 255 - np.asarray(Image.open(root / "3.bmp"))
    buf = io.BytesIO()
    Image.fromarray(new).save(buf, format="BMP")
    replace_keeping_size_and_mtime(root / "3.bmp", buf.getvalue())
    assert rebuilt(p, "bmp", monkeypatch)
    np.testing.assert_array_equal(get_dataset(p, "bmp").splits[split].images[k], new)


def test_a_cache_hit_reads_no_file_content_and_a_touch_does_not_rebuild(tmp_path, monkeypatch):
    monkeypatch.setattr(digests, "RACY_S", 0.0)  # the files were written just now: memoize them anyway
    csv = fixtures.write_csv_pairs(tmp_path / "mine", 12)
    p = profile(tmp_path, dict(name="mine", source="csv_pairs", path=str(csv), size=16))
    get_dataset(p, "mine")
    read = []
    real = digests.sha256_file
    monkeypatch.setattr(digests, "sha256_file", lambda path: read.append(path) or real(path))
    assert not rebuilt(p, "mine", monkeypatch) and read == []  # a hit: one stat per file, no content read
    img = csv.parent / pd.read_csv(csv)["image_path"][0]
    st = os.stat(img)
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))  # touched: same bytes, a new mtime
    assert not rebuilt(p, "mine", monkeypatch) and read == [str(img)]  # read once, the same digest: no rebuild
    assert not rebuilt(p, "mine", monkeypatch) and read == [str(img)]  # and memoized again
