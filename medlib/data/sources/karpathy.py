"""General-domain image-text sets: Flickr30K (29k/1k/1k) and COCO (113k/5k/5k), Karpathy splits, every caption.

Task ``retrieval``: splits train/val/test (Karpathy's ``restval`` counts as train), labels all -1, RGB images.
In memory (:class:`~medlib.data.base.Split`): ``all_captions[i]`` lists image i's captions (five for
Flickr30K/COCO) and ``captions[i]`` is its first one, so code written for one caption per image keeps working;
``medlib.data.base.caption_index(split)`` flattens them into (captions, text_to_image) for Recall@K.
``ids`` are the file names.

Sources, in order:
1. ``synthetic: always`` -> a generated fixture in Karpathy's layout (read by the same code as 2).
2. A local copy in Karpathy's layout: ``<data_dir>/<spec.path>/dataset_<flag>.json`` (or ``spec.path`` naming
   the JSON itself) with ``images[]`` entries ``{"filename", "filepath" (COCO: train2014|val2014), "split",
   "sentences": [{"raw": ...}, ...]}`` and the images at ``<folder>/<filepath>/<filename>``, where ``<folder>``
   is the first of ``images/``, ``flickr30k-images/``, the JSON's own folder that holds the first listed image.
3. ``download`` and ``hf_id`` -> the hub dataset through ``datasets``: its splits (train/validation|val/test/
   restval) or one split with a ``split`` column; an image column (image/img/jpg) or, without one,
   ``filepath``/``filename`` columns naming images under the local folder (e.g. ``yerevann/coco-karpathy``,
   captions and splits only, with the COCO 2014 images on disk); captions from caption/captions/sentences/
   alt_text/text/raw (a string or a list).
4. ``synthetic: auto`` -> the fixture; else a MedlibError naming what to provide.

``spec.max_per_split`` caps each split's index (seeded) before any image is read.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from ...config import DatasetSpec, Profile
from ...errors import fail
from ...progress import enabled as progress_enabled
from .. import fixtures
from ..base import SPLITS, DatasetBundle, Split
from ..bundle import finish
from ..decode import image_files, pil_to_array
from ..locate import check_hub_reachable, check_kind, choose_source, fixture_dir, resolve_path
from ..splits import cap_indices, rng_for

DEFAULT_FIXTURE_N = 300
LICENSES = {"flickr30k": "Flickr30K: research use under Flickr terms (Young et al., TACL 2014)",
            "coco": "COCO: annotations CC BY 4.0, images under Flickr terms (Lin et al., ECCV 2014)"}
KARPATHY_SPLITS = {"train": "train", "restval": "train", "val": "val", "validation": "val", "test": "test"}
IMAGE_FOLDERS = ("images", "flickr30k-images", "")
_IMAGE_COLS = ("image", "img", "jpg")
_CAPTION_COLS = ("caption", "captions", "sentences", "alt_text", "text", "raw")


def json_name(flag: str) -> str:
    return f"dataset_{flag}.json"


def _flag(spec: DatasetSpec) -> str:
    return (spec.flag or spec.name).lower()


def local_json(profile: Profile, spec: DatasetSpec) -> Path:
    """Where the Karpathy JSON of a local copy is (``spec.path`` naming it or its folder)."""
    p = resolve_path(profile, spec, default=_flag(spec))
    return p if p.suffix == ".json" else p / json_name(_flag(spec))


def _choose(profile: Profile, spec: DatasetSpec, make: bool) -> tuple[str, Path | None]:
    """('fixture'|'local'|'hub', Karpathy JSON or None), by the ladder every source follows (common.choose_source)."""
    flag = _flag(spec)
    fix = fixture_dir(profile, "retrieval", flag)
    local = local_json(profile, spec)
    how = (f"put Karpathy's {json_name(flag)} and the images there, or set datasets[{spec.name}].download: true "
           "with an hf_id while online")
    if spec.path and spec.synthetic != "always":
        check_kind(local, "file", f"datasets[{spec.name}].path (Karpathy's {json_name(flag)} or its folder)", how,
                   stop=profile.data_path)
    kind = choose_source(spec, present=bool(spec.path) and local.is_file(), remote=spec.download and bool(spec.hf_id),
                         missing=fail(local, "no retrieval set (local copy absent, download off)", how))
    if kind == "generated":
        if make:  # each set its own images (seed per flag), both in Karpathy's layout
            fixtures.ensure_retrieval(fix, spec.fixture_n or DEFAULT_FIXTURE_N, flag,
                                       fixtures.FIXTURE_SEED + zlib.crc32(flag.encode()) % 997)
        return "fixture", fix / json_name(flag)
    return ("local", local) if kind == "real" else ("hub", None)


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    _, path = _choose(profile, spec, make=False)
    return [path] if path is not None else []


# ---- Karpathy JSON + image folder ----------------------------------------------------------------------------


def read_karpathy(path: Path) -> list[dict[str, Any]]:
    """The JSON's image entries as ``{"index", "file" (filepath/filename), "split" (train|val|test), "captions"}``.

    Checks every entry (filename, a known split, at least one non-empty ``sentences[].raw``); a bad one is a
    one-line MedlibError naming ``images[i]``.
    """
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        entries = doc["images"]
        if not isinstance(entries, list):
            raise TypeError
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise fail(path, f"not a Karpathy caption file ({type(exc).__name__})",
                   'use Karpathy\'s dataset_<name>.json: {"images": [{"filename", "split", "sentences"}, ...]}') \
            from None
    out = []
    for i, e in enumerate(entries):
        try:
            name, split = str(e["filename"]), str(e["split"])
            caps = [str(s["raw"]).strip() for s in e["sentences"]]
        except (KeyError, TypeError) as exc:
            raise fail(path, f"images[{i}]: bad entry (missing {exc})", "give each entry filename, split and "
                       "sentences[].raw") from None
        if split not in KARPATHY_SPLITS:
            raise fail(path, f"images[{i}] ({name}): unknown split {split!r}", f"use one of {sorted(KARPATHY_SPLITS)}")
        if not caps or not all(caps):
            raise fail(path, f"images[{i}] ({name}): empty caption", "give every image non-empty sentences[].raw")
        out.append({"index": i, "file": str(Path(str(e.get("filepath") or "")) / name),
                    "split": KARPATHY_SPLITS[split], "captions": caps})
    if not out:
        raise fail(path, "no images listed", "add entries to images[]")
    return out


def image_folder(json_path: Path, first_file: str) -> Path:
    """Where the images are: the first of :data:`IMAGE_FOLDERS` (beside the JSON) that holds ``first_file``."""
    for sub in IMAGE_FOLDERS:
        folder = json_path.parent / sub
        if (folder / first_file).is_file():
            return folder
    return json_path.parent / IMAGE_FOLDERS[0]  # the missing image is reported by read_entries, naming its entry


def read_entries(entries: list[dict[str, Any]], folder: Path, json_path: Path, size: int, desc: str,
                 workers: int = 0) -> Any:
    """The images of ``entries`` as a not-yet-decoded RGB column (``common.image_files``: pooled, reduced-size
    decoding when prepared); a missing or unreadable image is a one-line MedlibError naming its JSON entry
    (``images[i]`` and the file) and the fix."""
    return image_files([folder / e["file"] for e in entries], size, True, json_path, desc=desc,
                       wheres=[f"images[{e['index']}] ({e['file']})" for e in entries], workers=workers)


def _capped(profile: Profile, spec: DatasetSpec, entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Entries per split, each split capped to ``spec.max_per_split`` (seeded) before any image is read."""
    out = {}
    for s in SPLITS:
        rows = [e for e in entries if e["split"] == s]
        keep = cap_indices(np.zeros(len(rows), np.int64), spec.max_per_split, rng_for(profile, spec, f"cap-{s}"))
        out[s] = [rows[i] for i in keep]
    return out


def _split(images: np.ndarray, entries: list[dict[str, Any]]) -> Split:
    caps = [list(e["captions"]) for e in entries]
    return Split(images, np.full(len(entries), -1, np.int64), [c[0] for c in caps], [e["file"] for e in entries],
                 all_captions=caps)


def load_karpathy(profile: Profile, spec: DatasetSpec, json_path: Path) -> dict[str, Split]:
    entries = read_karpathy(json_path)
    folder = image_folder(json_path, entries[0]["file"])
    parts = _capped(profile, spec, entries)
    return {s: _split(read_entries(rows, folder, json_path, spec.size, f"{spec.name}/{s}", profile.data_workers), rows)
            for s, rows in parts.items()}


# ---- hub ----------------------------------------------------------------------------------------------------------


def _hub_captions(value: Any) -> list[str]:
    vals = [value] if isinstance(value, str) else list(value or [])
    caps = [v.get("raw", "") if isinstance(v, dict) else str(v) for v in vals]
    return [c.strip() for c in caps if c and c.strip()]


def read_hub(profile: Profile, spec: DatasetSpec) -> dict[str, Split]:
    """The hub dataset's Karpathy splits (see the module docstring for the layouts understood)."""
    local_fix = f"put Karpathy's {json_name(_flag(spec))} and the images under datasets[{spec.name}].path"
    check_hub_reachable(spec.hf_id, local_fix)
    try:
        import datasets

        dd = datasets.load_dataset(spec.hf_id, spec.hf_config or None)
    except Exception as exc:  # offline, unknown id, ...
        raise fail(spec.hf_id, f"could not load the retrieval set from the hub ({type(exc).__name__})",
                   f"go online once, or {local_fix}") from None
    cols = next(iter(dd.values())).column_names
    icol = next((c for c in _IMAGE_COLS if c in cols), None)
    ccol = next((c for c in _CAPTION_COLS if c in cols), None)
    if ccol is None or (icol is None and "filename" not in cols):
        raise fail(spec.hf_id, f"no image/caption columns in {cols}",
                   f"use a dataset with one of {_IMAGE_COLS} (or filename) and one of {_CAPTION_COLS}")
    folder = resolve_path(profile, spec, default=_flag(spec))
    entries: list[dict[str, Any]] = []
    for name, ds in dd.items():  # captions and splits first, without decoding a single image
        meta = ds.select_columns([c for c in ds.column_names if c != icol])
        for i, r in enumerate(meta):
            split = KARPATHY_SPLITS.get(str(r.get("split", name)).lower())
            if split is None:
                continue
            caps = _hub_captions(r[ccol])
            if not caps:
                raise fail(spec.hf_id, f"{name}[{i}]: no caption", "use another dataset revision")
            file = str(Path(str(r.get("filepath") or "")) / str(r.get("filename", f"{name}-{i}")))
            entries.append({"index": i, "hub_split": name, "file": file, "split": split, "captions": caps})
    from tqdm.auto import tqdm

    out = {}
    for s, rows in _capped(profile, spec, entries).items():
        if not icol:  # captions from the hub, images from disk (COCO 2014): checked here, decoded when prepared
            for e in rows:
                if not (folder / e["file"]).is_file():
                    raise fail(folder / e["file"], f"image of {spec.hf_id} {e['hub_split']}[{e['index']}] "
                               "is missing", f"put the images under {folder} as <filepath>/<filename>, or set "
                               f"datasets[{spec.name}].hf_id to a hub dataset with an image column")
            imgs = image_files([folder / e["file"] for e in rows], spec.size, True, spec.hf_id, desc=f"{spec.name}/{s}",
                               wheres=[f"{e['hub_split']}[{e['index']}]" for e in rows], workers=profile.data_workers)
        else:
            imgs = np.empty((len(rows), spec.size, spec.size, 3), np.uint8)
            for k, e in enumerate(tqdm(rows, desc=f"{spec.name}/{s}", leave=False, disable=not progress_enabled())):
                imgs[k] = pil_to_array(dd[e["hub_split"]][e["index"]][icol], spec.size, rgb=True)
        out[s] = _split(imgs, rows)
    return out


# ---- entry point --------------------------------------------------------------------------------------------------


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    kind, json_path = _choose(profile, spec, make=True)
    if kind == "hub":  # images from the hub, or from <path>/<filepath>/<filename> on disk
        splits, files, src = read_hub(profile, spec), [], spec.hf_id
        folder = resolve_path(profile, spec, default=_flag(spec))
    else:
        splits, files, src = load_karpathy(profile, spec, json_path), [json_path], str(json_path)
        folder = json_path.parent
    flag = _flag(spec)
    return finish(
        profile, spec, task="retrieval", class_names=[], splits=splits, source=src, synthetic=kind == "fixture",
        license=LICENSES.get(flag, "see the dataset card"), domain="general", files=files, image_folder=folder,
        extra={"flag": flag, "n_captions": {s: int(sum(len(c) for c in sp.all_captions or []))
                                            for s, sp in splits.items()}},
    )
