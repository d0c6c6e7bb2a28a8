"""More faults in the data layer: decompression bombs, image paths that leave the dataset folder (every source
that reads image paths from a file), and same-size replacements of input files that keep the old mtime."""

from __future__ import annotations

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
from medlib.data import decode, get_dataset, load_dataset, synthetic
from medlib.data.common import read_image
from medlib.data.decode import ImageFiles
from medlib.errors import MedlibError


def profile(tmp_path, *specs: dict, seed: int = 0) -> Profile:
    return Profile(name="t", smoke=True, seed=seed, data_dir=str(tmp_path), datasets=[DatasetSpec(**s) for s in specs])


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
    csv = synthetic.write_csv_pairs(tmp_path / "mine", 20)
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
    synthetic.write_retrieval(dst, 40, "flickr30k")
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
