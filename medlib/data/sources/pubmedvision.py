"""PubMedVision image-caption pairs with the body-part label (the original study's setup).

Two ways in, one reader:
(a) the Hugging Face dataset ``spec.hf_id``/``spec.hf_config`` (fields id, image (list of paths),
    conversations, modality, body_part): ``spec.n`` single-image records sampled with the seed, caption =
    the first gpt answer, label = body_part; ONLY the images those records need are fetched from the
    ``images_K.zip`` archives (read remotely through ``HfFileSystem``: each zip's central directory and the
    needed members, instead of the ~2.85 GB zips). The sample is written to the local layout below so later
    runs are offline.
(b) a local folder ``<data_dir>/<spec.path>/`` with ``records.jsonl`` (or ``records.parquet``) of
    {"id", "image", "caption", "body_part", "modality"} and the images (paths relative to the folder).

Classes = sorted body parts; body parts with fewer than ``RARE_MIN`` records go to an ``other`` class (listed
in ``manifest["other_parts"]``) so every class can appear in more than one split. Split 70/10/20 stratified
by class with the seed. Smoke: a generated folder in the local layout, read by the same code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ...files import write_bytes, write_text
from ...config import DatasetSpec, Profile
from ...errors import MedlibError, fail
from .. import fixtures
from ..base import SPLITS, DatasetBundle, Split
from ..bundle import finish
from ..decode import image_files
from ..locate import check_hub_reachable, check_kind, choose_source, fixture_dir, resolve_path
from ..splits import rng_for, stratified_parts, take

RECORDS = ("records.jsonl", "records.parquet")
COLUMNS = ["id", "image", "caption", "body_part"]
FRACTIONS = (0.7, 0.1, 0.2)
RARE_MIN = 5  # body parts with fewer records than this become "other"
OTHER = "other"
N_ZIPS = 20  # images_0.zip ... images_19.zip
DEFAULT_FIXTURE_N = 600
LICENSE = "Apache-2.0 (PubMedVision); images from PubMed Central articles under their own licences"


def local_root(profile: Profile, spec: DatasetSpec) -> Path:
    return resolve_path(profile, spec, default="pubmedvision")


def _records_file(root: Path) -> Path | None:
    for name in RECORDS:
        if (root / name).is_file():
            return root / name
    return None


def _choose(profile: Profile, spec: DatasetSpec, fetch: bool) -> tuple[Path, bool]:
    """(folder to read, synthetic?); may fetch from the hub or generate when ``fetch``.

    A local path that is a file, or a folder with neither records file (and no download to finish), is an error."""
    fix_dir = fixture_dir(profile, "pubmedvision")
    n_fix = spec.fixture_n or DEFAULT_FIXTURE_N
    root = local_root(profile, spec)
    remote = bool(spec.download and spec.hf_id)
    fix = (f"set datasets[{spec.name}].download: true with hf_id {spec.hf_id or 'FreedomIntelligence/PubMedVision'} "
           "while online, or put a local copy there")
    if spec.synthetic != "always":
        check_kind(root, "dir", f"datasets[{spec.name}].path (the PubMedVision folder)", fix, stop=profile.data_path)
        if root.is_dir() and not _records_file(root) and not remote:
            raise fail(root, "folder has no records.jsonl or records.parquet", fix)
    kind = choose_source(spec, present=_records_file(root) is not None, remote=remote,
                         missing=fail(root, "no PubMedVision copy (records.jsonl or records.parquet + images/)", fix))
    if kind == "generated":
        return (fixtures.ensure_pubmedvision(fix_dir, n_fix) if fetch else fix_dir), True
    if kind == "hub" and fetch:
        fetch_from_hub(spec, root, seed=profile.seed)
    return root, False


def inputs(profile: Profile, spec: DatasetSpec) -> list[Path]:
    root, _ = _choose(profile, spec, fetch=False)
    return [_records_file(root) or root / RECORDS[0]]


def read_records(path: Path):
    """records.jsonl / records.parquet -> DataFrame with the needed columns (MedlibError naming the file)."""
    import pandas as pd

    try:
        df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=True, dtype=False)
    except Exception as exc:
        raise fail(path, f"unreadable records file ({type(exc).__name__})",
                   "one JSON object per line with id, image, caption, body_part") from None
    miss = [c for c in COLUMNS if c not in df.columns]
    if miss:
        raise fail(path, f"missing column(s) {miss}", f"give every record the fields {COLUMNS}")
    if "modality" not in df.columns:
        df["modality"] = ""
    images = []
    for i, row in enumerate(df.itertuples(index=False)):
        if not isinstance(row.caption, str) or not row.caption.strip():
            raise fail(path, f"record {i + 1} ({row.id}): empty caption", "give every record a caption or remove it")
        if not isinstance(row.body_part, str) or not row.body_part.strip():
            raise fail(path, f"record {i + 1} ({row.id}): empty body_part", "give every record a body_part")
        img = [row.image] if isinstance(row.image, str) else list(row.image) if row.image is not None else []
        if len(img) != 1:
            raise fail(path, f"record {i + 1} ({row.id}): {len(img)} images", "keep single-image records only")
        images.append(img[0])
    df["image"] = images
    return df


def group_classes(parts: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(class per record, class names, parts merged into 'other'): sorted parts, rare ones -> 'other'."""
    uniq, cnt = np.unique(np.array(parts, dtype=object), return_counts=True)
    rare = sorted(str(u) for u, c in zip(uniq, cnt) if c < RARE_MIN)
    mapped = [OTHER if p in rare else p for p in parts]
    names = sorted(set(mapped) - {OTHER}) + ([OTHER] if OTHER in mapped else [])
    return mapped, names, rare


def load(profile: Profile, spec: DatasetSpec) -> DatasetBundle:
    root, is_syn = _choose(profile, spec, fetch=True)
    rec_path = _records_file(root)
    if rec_path is None:
        raise fail(root, "records.jsonl missing after preparation", "delete the folder and run again")
    df = read_records(rec_path)
    df["_line"] = np.arange(len(df)) + 1  # the record's line in records.jsonl (row in .parquet), for errors
    sampled = bool(spec.n and len(df) > spec.n)
    if sampled:
        pick = np.sort(rng_for(profile, spec, "sample").choice(len(df), size=spec.n, replace=False))
        df = df.iloc[pick].reset_index(drop=True)
    mapped, names, rare = group_classes(df["body_part"].str.strip().tolist())
    index = {c: k for k, c in enumerate(names)}
    labels = np.array([index[m] for m in mapped], np.int64)
    where = "line" if rec_path.suffix == ".jsonl" else "row"
    images = image_files([root / p for p in df["image"]], spec.size, rgb=True, index_file=rec_path, desc=spec.name,
                         wheres=[f"{where} {n}" for n in df["_line"]], workers=profile.data_workers)
    parts = stratified_parts(labels, FRACTIONS, rng_for(profile, spec, "split"))
    every = Split(images, labels, df["caption"].str.strip().tolist(), df["id"].astype(str).tolist())
    return finish(
        profile, spec, task="multiclass", class_names=names,
        splits={k: take(every, ix) for k, ix in zip(SPLITS, parts)},
        source=str(root), synthetic=is_syn, license=LICENSE, domain="medical", files=[rec_path], image_folder=root,
        extra={"other_parts": rare, "rare_min": RARE_MIN,
               "modalities": {str(k): int(v) for k, v in df["modality"].value_counts().items()}},
    )


# ---- (a) the Hugging Face dataset -> local layout ------------------------------------------------------


def first_gpt_answer(conversations) -> str:
    for turn in conversations or []:
        if turn.get("from") == "gpt" and str(turn.get("value", "")).strip():
            return str(turn["value"]).strip()
    return ""


def sample_records(ds, n: int, seed: int) -> list[dict]:
    """``n`` single-image records with a non-empty answer, visited in a seeded random order."""
    order = np.random.default_rng(seed).permutation(len(ds))
    out = []
    for i in order:
        r = ds[int(i)]
        imgs = r.get("image") or []
        cap = first_gpt_answer(r.get("conversations"))
        if len(imgs) == 1 and cap and r.get("body_part"):
            out.append({"id": str(r["id"]), "image": imgs[0], "caption": cap, "body_part": r["body_part"],
                        "modality": r.get("modality") or ""})
            if len(out) == n:
                break
    return out


def extract_needed(zf: zipfile.ZipFile, need: set[str], root: Path) -> set[str]:
    """Write the members of ``zf`` that records need to ``root/<record path>``; return the paths written.

    A record path ``images/x.jpg`` matches the member ``images/x.jpg``, ``x.jpg`` or ``<top>/images/x.jpg``.
    """
    done: set[str] = set()
    for member in zf.namelist():
        cands = [member, "images/" + member.rsplit("/", 1)[-1], member.split("/", 1)[-1]]
        key = next((c for c in cands if c in need and c not in done), None)
        if key is not None:
            write_bytes(root / key, zf.read(member))
            done.add(key)
    return done


def fetch_from_hub(spec: DatasetSpec, root: Path, seed: int) -> None:
    """Sample ``spec.n`` records from the hub and fetch only their images into ``root`` (records.jsonl last)."""
    check_hub_reachable(spec.hf_id, f"put records.jsonl + images/ under {root}")
    try:
        import datasets
        from huggingface_hub import HfFileSystem

        ds = datasets.load_dataset(spec.hf_id, spec.hf_config or None, split="train")
        recs = sample_records(ds, spec.n or 4096, seed)
        need = {r["image"] for r in recs}
        fs = HfFileSystem()
        # Remote zip access reads each archive's central directory and the needed members only (the
        # alternative, hf_hub_download of images_K.zip, moves ~2.85 GB per archive).
        for k in range(N_ZIPS):
            if not need:
                break
            with fs.open(f"datasets/{spec.hf_id}/images_{k}.zip", "rb") as fh, zipfile.ZipFile(fh) as zf:
                need -= extract_needed(zf, need, root)
    except MedlibError:
        raise
    except Exception as exc:  # offline, hub errors, missing packages
        raise fail(spec.hf_id, f"could not fetch PubMedVision from the hub ({type(exc).__name__})",
                   f"go online once, or put records.jsonl + images/ under {root}") from None
    if need:
        raise fail(spec.hf_id, f"{len(need)} sampled image(s) not found in images_0..{N_ZIPS - 1}.zip "
                   f"(first: {sorted(need)[0]})", "report it; or provide a local copy under " + str(root))
    write_text(root / RECORDS[0], "".join(json.dumps(r) + "\n" for r in recs))
