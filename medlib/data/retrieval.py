"""General-domain image-text retrieval (Flickr30K test 1k, COCO 5k): how much general ability fine-tuning costs.

Task ``retrieval``: only a ``test`` split (train/val are empty arrays), labels all -1, RGB images,
one caption per image in ``captions`` (the first) and every caption in ``manifest["all_captions"]``
(list per image, test order) for the usual 5-captions-per-image protocol.

Sources, in order: ``synthetic: always`` -> generated fixture; a local folder ``<data_dir>/<spec.path>/``
with ``captions.jsonl`` ({"id", "image", "captions": [...]}) + images; ``download`` and ``hf_id`` -> the hub
dataset through ``datasets`` (first split among test/validation/train, columns found by name);
``synthetic: auto`` -> generated fixture; else MedlibError. Fixture: coloured shapes on coloured
backgrounds with captions such as "a small red circle on a blue background".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..progress import enabled as progress_enabled
from ..config import DatasetSpec, Profile
from ..errors import fail
from . import synthetic
from .base import DatasetBundle, Split
from .common import (cap_indices, check_hub_reachable, empty_split, finish, fixture_dir, pil_to_array, read_images,
                     resolve_path, rng_for)

INDEX = "captions.jsonl"
DEFAULT_FIXTURE_N = 300
LICENSES = {"flickr30k": "Flickr30K: research use under Flickr terms (Young et al., TACL 2014)",
            "coco": "COCO: annotations CC BY 4.0, images under Flickr terms (Lin et al., ECCV 2014)"}
_IMAGE_COLS = ("image", "img", "jpg")
_CAPTION_COLS = ("caption", "captions", "sentences", "text", "raw")


def _choose(profile: Profile, spec: DatasetSpec, make: bool) -> tuple[str, Path | None]:
    """('fixture'|'local'|'hub', folder)."""
    fix = fixture_dir(profile, "retrieval", spec.flag or spec.name)
    n = spec.fixture_n or DEFAULT_FIXTURE_N
    if spec.synthetic == "always":
        return "fixture", synthetic.ensure_retrieval(fix, n) if make else fix
    local = resolve_path(profile, spec)
    if spec.path and (local / INDEX).is_file():
        return "local", local
    if spec.download and spec.hf_id:
        return "hub", None
    if spec.synthetic == "auto":
        return "fixture", synthetic.ensure_retrieval(fix, n) if make else fix
    where = resolve_path(profile, spec, default=spec.flag or spec.name)
    raise fail(where / INDEX, "no retrieval set (local copy absent, download off)",
               f"set datasets[{spec.name}].download: true with an hf_id while online, or put captions.jsonl + "
               "images there")


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    _, root = _choose(profile, spec, make=False)
    return [root / INDEX] if root is not None else []


def read_local(root: Path) -> tuple[list[Path], list[list[str]], list[str]]:
    """captions.jsonl -> (image paths, captions per image, ids); the images are read by the caller."""
    path = root / INDEX
    recs = []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
            caps = r["captions"]
            caps = [str(c).strip() for c in ([caps] if isinstance(caps, str) else caps)]  # a bare string: one caption
            img, rid = str(r["image"]), str(r.get("id", r["image"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise fail(path, f"line {i + 1}: bad record ({type(exc).__name__})",
                       'one JSON object per line: {"id", "image", "captions": [...]}') from None
        if not caps or not all(caps):
            raise fail(path, f"line {i + 1}: empty caption", "give every image at least one non-empty caption")
        recs.append((img, caps, rid))
    if not recs:
        raise fail(path, "no records", "add one JSON line per image")
    return [root / r[0] for r in recs], [r[1] for r in recs], [r[2] for r in recs]


def read_hub(spec: DatasetSpec) -> tuple[np.ndarray, list[list[str]], list[str]]:
    check_hub_reachable(spec.hf_id, f"put captions.jsonl + images under a folder and set datasets[{spec.name}].path")
    try:
        import datasets

        dd = datasets.load_dataset(spec.hf_id, spec.hf_config or None)
    except Exception as exc:  # offline, unknown id, ...
        raise fail(spec.hf_id, f"could not load the retrieval set from the hub ({type(exc).__name__})",
                   f"go online once, or put captions.jsonl + images under a folder and set datasets[{spec.name}].path")
    split = next((s for s in ("test", "validation", "train") if s in dd), None)
    ds = dd[split] if split else next(iter(dd.values()))
    icol = next((c for c in _IMAGE_COLS if c in ds.column_names), None)
    ccol = next((c for c in _CAPTION_COLS if c in ds.column_names), None)
    if icol is None or ccol is None:
        raise fail(spec.hf_id, f"no image/caption columns in {ds.column_names}",
                   f"use a dataset with one of {_IMAGE_COLS} and one of {_CAPTION_COLS}")
    from tqdm.auto import tqdm

    imgs, caps, ids = [], [], []
    for i, r in enumerate(tqdm(ds, desc=spec.name, leave=False, disable=not progress_enabled())):
        c = r[ccol]
        c = [c] if isinstance(c, str) else [x.get("raw", "") if isinstance(x, dict) else str(x) for x in c]
        c = [x.strip() for x in c if x and x.strip()]
        if not c:
            raise fail(spec.hf_id, f"record {i}: no caption", "use another dataset revision")
        imgs.append(pil_to_array(r[icol], spec.size, rgb=True))
        caps.append(c)
        ids.append(str(r.get("filename", r.get("id", i))))
    return np.stack(imgs), caps, ids


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    kind, root = _choose(profile, spec, make=True)
    cap = lambda n: cap_indices(np.zeros(n, np.int64), spec.max_per_split, rng_for(profile, spec, "cap"))  # noqa: E731
    if kind == "hub":
        images, all_caps, ids = read_hub(spec)
        keep = cap(len(images))
        images, files, src = images[keep], [], spec.hf_id
    else:  # cap the index before any image is read
        paths, all_caps, ids = read_local(root)
        keep = cap(len(paths))
        images = read_images([paths[i] for i in keep], spec.size, rgb=True, index_file=root / INDEX, desc=root.name)
        files, src = [root / INDEX], str(root)
    all_caps, ids = [all_caps[i] for i in keep], [ids[i] for i in keep]
    test = Split(images, np.full(len(images), -1, np.int64), [c[0] for c in all_caps], ids)
    flag = (spec.flag or spec.name).lower()
    return finish(
        profile, spec, task="retrieval", class_names=[],
        splits={"train": empty_split(spec.size, rgb=True), "val": empty_split(spec.size, rgb=True), "test": test},
        source=src, synthetic=kind == "fixture", license=LICENSES.get(flag, "see the dataset card"),
        domain="general", files=files, extra={"all_captions": all_caps, "flag": flag},
    )
