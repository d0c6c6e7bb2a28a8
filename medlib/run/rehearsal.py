"""Rehearse the full profile offline: ``./run_all.sh --profile full --rehearse`` (``make rehearse``).

Every notebook of the **full** profile runs through papermill with the full profile's architectures at 224 px
and random weights, on fixture data laid out as each real source is, with every training run and evaluation
capped. It proves the full run's code paths (224 px shapes, the HF text tower and its tokenizer, ChestMNIST as
the ChestX-ray14 stand-in, ...) before anyone spends a GPU-day on them, and measures what the projection
(:mod:`medlib.run.projection`) needs. The overlay sets ``kind: rehearsal``, so every output is marked REHEARSAL as it is
written (figure titles, tables, executed notebooks, the report).

Everything here is an *overlay* on ``config/profiles/full.yaml`` (:data:`OVERLAY`, applied by :func:`prepare`): caps
are profile values the code already honours (``max_per_split``, ``max_train``, ``epochs``, ``batch_size``,
``n_boot``, ...), models and data point at local copies, and outputs go to ``reports/full-rehearsal/``.

* ViT-B-32: open_clip's built-in config, random init (``pretrained: ""``).
* BiomedCLIP's architecture: a ``local-dir:`` folder in the hub repo's own layout (``open_clip_config.json``
  with the timm ViT-B/16 image tower and a Hugging Face BERT text tower, context length 256; a BERT
  ``config.json``; a small WordPiece tokenizer built here; random weights as ``open_clip_model.safetensors``),
  loaded through open_clip's hub path exactly as the downloaded repo would be.
* Data under ``<data_dir>/rehearsal/`` in each source's layout at 224 px: PneumoniaMNIST is the real 28 px
  file's images upscaled into ``pneumoniamnist_224.npz`` when that file is present (else generated);
  ChestMNIST, PubMedVision and the Flickr30K-style retrieval set are generated.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import NOTICES, Profile, profile_path
from ..errors import MedlibError

NOTICE = NOTICES["rehearsal"]  # every output of the rehearsal carries it (profile kind: rehearsal)
NAME_SUFFIX = "-rehearsal"

# Caps (rows per split, train rows, epochs, steps) keep the whole rehearsal to minutes on 2 CPU cores.
ROWS_PER_SPLIT = 16  # each evaluation sees at most this many rows; training at most this many examples
TRAIN = {"epochs": 1, "batch_size": 8, "max_train": 8, "warmup_steps": 1, "patience": 1, "num_workers": 0}
OVERLAY: dict[str, Any] = {
    "zero_shot": {"n_boot": 50, "batch_size": 32},
    "caption_finetune": {"train": TRAIN},
    # one draw per k and one training size rehearse the same code as five draws and three sizes; the projection
    # counts the real profile's draws and sizes (medlib.run.projection)
    "label_finetune": {"probe_epochs": 1, "few_shot_min_steps": 2, "train": TRAIN, "multilabel_train": TRAIN,
                       "shot_draws": 1},
    "retrieval_study": {"train_sizes": [0]},
    "imbalance": {"train": TRAIN},
    "sota": {"cnn_epochs": 1, "cnn_batch_size": 8, "cnn_weights": "none"},
}
FIXTURE_ROWS = 96  # generated images per source (MedMNIST-style sets split 70/10/20)
BIOMEDCLIP_DIR = "biomedclip-architecture"


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _cap_training(node: Any) -> None:
    """Cap every training configuration in the profile (any mapping with ``epochs`` and ``batch_size``), every
    step floor (``min_steps``, ``*_min_steps``) and every bootstrap (``n_boot``), so a section added later is
    capped too."""
    if isinstance(node, dict):
        if "epochs" in node and "batch_size" in node:
            node.update(TRAIN)
        for key in list(node):
            if key == "min_steps" or key.endswith("_min_steps"):
                node[key] = min(node[key], 2)  # step floors (few-shot, small-data runs)
            elif key == "n_boot":
                node[key] = min(node[key], 50)
        for value in node.values():
            _cap_training(value)
    elif isinstance(node, list):
        for value in node:
            _cap_training(value)


def overlay(raw: dict, data_dir: Path, device: str | None = None) -> dict:
    """The rehearsal profile (a dict) from the full profile's YAML ``raw``."""
    out = _merge(raw, OVERLAY)
    _cap_training(out)
    out["name"] = f"{raw.get('name', 'full')}{NAME_SUFFIX}"
    out["kind"] = "rehearsal"
    out["data_dir"] = str(data_dir)
    if device:
        out["device"] = device
    if isinstance(out.get("seeds"), list) and out["seeds"]:
        out["seeds"] = out["seeds"][:1]  # one seed rehearses the code; the projection multiplies by all
    for m in out.get("models", []):
        m["pretrained"] = ""
        if m.get("role") == "domain" or str(m.get("arch", "")).startswith("hf-hub:"):
            m["arch"] = f"local-dir:{data_dir / BIOMEDCLIP_DIR}"
        m["display"] = f"{m.get('display') or m['name']} [random weights]"
    for d in out.get("datasets", []):
        d["download"] = False
        d["max_per_split"] = ROWS_PER_SPLIT
        if d.get("source") == "retrieval":
            d["path"] = d.get("path") or d.get("flag") or d["name"]
            d["synthetic"] = "never"
        if d.get("source") == "pubmedvision":
            d["n"] = 0  # the fixture is smaller than the real 4,096-pair sample
    return out


# ---- fixtures -------------------------------------------------------------------------------------------


def _upscale(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)) for im in images])


def pneumonia_224(real_28: Path | None, dest: Path, per_split: int = 3 * ROWS_PER_SPLIT) -> str:
    """``pneumoniamnist_224.npz`` in the MedMNIST layout: the real file's first rows upscaled, else generated.

    Returns 'real-upscaled' or 'generated'.
    """
    if dest.is_file():
        return json.loads(dest.with_suffix(".json").read_text()).get("origin", "?") if dest.with_suffix(
            ".json").is_file() else "?"
    dest.parent.mkdir(parents=True, exist_ok=True)
    if real_28 is not None and real_28.is_file():
        with np.load(real_28) as z:
            arrays = {}
            for split in ("train", "val", "test"):
                arrays[f"{split}_images"] = _upscale(z[f"{split}_images"][:per_split], 224)
                arrays[f"{split}_labels"] = z[f"{split}_labels"][:per_split]
        origin = "real-upscaled"
    else:
        from ..data.fixtures import medmnist_arrays

        arrays = medmnist_arrays(0, FIXTURE_ROWS, 224, 2, False, 1, [0.26, 0.74])
        origin = "generated"
    from ..files import write_npz, write_json

    write_npz(dest, **arrays)
    write_json(dest.with_suffix(".json"), {"origin": origin, "source": str(real_28 or "")})
    return origin


def build_fixtures(data: Path, real_data: Path, retrieval_sets: list[tuple[str, str, str]] = ()) -> dict[str, str]:
    """Write every source's fixture under ``data`` (idempotent); {dataset: origin}."""
    from ..data import fixtures
    from ..files import write_npz

    origins = {"pneumoniamnist": pneumonia_224(real_data / "medmnist" / "pneumoniamnist.npz",
                                               data / "medmnist" / "pneumoniamnist_224.npz")}
    chest = data / "medmnist" / "chestmnist_224.npz"
    if not chest.is_file():
        write_npz(chest, **fixtures.medmnist_arrays(0, FIXTURE_ROWS, 224, 14, True, 1))
    origins["chestmnist"] = origins["chestxray14"] = "generated (ChestMNIST layout)"
    if not (data / "pubmedvision" / "records.jsonl").is_file():
        fixtures.write_pubmedvision(data / "pubmedvision", FIXTURE_ROWS, image_size=224)
    origins["pubmedvision"] = "generated (PubMedVision layout)"
    for name, flag, path in retrieval_sets:
        folder = data / (path or flag or name)
        if not (folder / ".rehearsal-fixture").is_file():
            fixtures.write_retrieval(folder, FIXTURE_ROWS, flag=flag or name, image_size=224)
            (folder / ".rehearsal-fixture").write_text("generated by medlib.run.rehearsal\n")
        origins[name] = "generated (Karpathy layout)"
    return origins


# ---- BiomedCLIP's architecture, offline -----------------------------------------------------------------

# microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224: open_clip_config.json (the text tower's
# hf_model_name / hf_tokenizer_name point at the local folder instead of the hub).
BIOMEDCLIP_CONFIG = {
    "model_cfg": {
        "embed_dim": 512,
        "vision_cfg": {"timm_model_name": "vit_base_patch16_224", "timm_model_pretrained": False, "timm_pool": "",
                       "timm_proj": "linear", "image_size": 224},
        "text_cfg": {"hf_model_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                     "hf_tokenizer_name": "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract",
                     "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler",
                     "context_length": 256},
    },
    "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
}
# PubMedBERT-base (BiomedBERT abstract) as transformers' BertConfig.
BERT_CONFIG = {"architectures": ["BertForMaskedLM"], "model_type": "bert", "vocab_size": 30522, "hidden_size": 768,
               "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu",
               "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512,
               "type_vocab_size": 2, "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0}


def _tiny_vocab() -> list[str]:
    """A small uncased WordPiece vocabulary that tokenizes any English prompt (characters and continuations,
    plus whole words from the prompts), so the real BERT tower sees real token sequences."""
    import string

    words = ("a chest x-ray showing photo of an the with no finding normal pneumonia lung lungs image medical "
             "radiograph scan ct mri of in and is this").split()
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + [f"##{c}" for c in chars]
    return vocab + sorted(set(words) - set(vocab))


def build_biomedclip_dir(dest: Path, seed: int = 0) -> Path:
    """Write BiomedCLIP's architecture as a ``local-dir:`` repo with random weights (idempotent)."""
    weights = dest / "open_clip_model.safetensors"
    if weights.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    cfg = copy.deepcopy(BIOMEDCLIP_CONFIG)
    cfg["model_cfg"]["text_cfg"]["hf_model_name"] = str(dest)
    cfg["model_cfg"]["text_cfg"]["hf_tokenizer_name"] = str(dest)
    (dest / "config.json").write_text(json.dumps(BERT_CONFIG, indent=1))
    (dest / "vocab.txt").write_text("\n".join(_tiny_vocab()) + "\n")
    (dest / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer",
                                                            "model_max_length": 512}))
    (dest / "special_tokens_map.json").write_text(json.dumps(
        {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"}))
    (dest / "open_clip_config.json").write_text(json.dumps(cfg, indent=1))
    import open_clip
    import torch
    from safetensors.torch import save_file

    import logging

    root_log = logging.getLogger()
    level = root_log.level
    root_log.setLevel(logging.ERROR)  # open_clip warns that this skeleton has no weights: that is the point
    try:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = open_clip.create_model(f"local-dir:{dest}", load_weights=False, pretrained_text=False)
    finally:
        root_log.setLevel(level)
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    tmp = weights.with_suffix(".tmp")
    save_file(state, str(tmp))  # fp16 on disk (half the size); open_clip loads it into the fp32 model
    os.replace(tmp, weights)
    return dest


def check_tokenizer(model_dir: Path, probe: str = "a chest x-ray showing pneumonia") -> None:
    """Raise MedlibError when the folder's HF tokenizer maps a plain English prompt to unknown tokens only.

    (transformers builds a BertTokenizer with an *empty* vocabulary, silently, when vocab.txt is missing: every
    prompt would become [UNK] and zero-shot would run on nothing.)
    """
    import open_clip

    tok = open_clip.get_tokenizer(f"local-dir:{model_dir}")
    hf = getattr(tok, "tokenizer", None)
    ids = tok([probe])[0].tolist()
    specials = {getattr(hf, a, None) for a in ("cls_token_id", "sep_token_id", "pad_token_id")}
    words = [i for i in ids if i not in specials]
    if not words or all(i == getattr(hf, "unk_token_id", None) for i in words):
        raise MedlibError(f"{model_dir}: the text tower's tokenizer maps {probe!r} to unknown tokens only (vocab.txt "
                          "missing or empty). Fix: delete the folder; the next rehearsal rebuilds it")


# ---- preparing a run ------------------------------------------------------------------------------------


def downloads_of_real_run(full: Profile) -> list[str]:
    """What the real full run would download (models not in the cache, datasets not on disk)."""
    from .preflight import _dataset_missing, _model_cached

    needs = [f"model {m.arch} ({m.pretrained or 'hub weights'})" for m in full.models if not _model_cached(m)]
    needs += [line for d in full.datasets if (line := _dataset_missing(full, d))]
    if full.sota.cnn_weights == "imagenet":
        needs.append("ResNet ImageNet weights for the CNN baseline (torchvision)")
    return needs


def prepare(profile_arg: str = "full", data_dir: str | None = None, device: str | None = None) -> tuple[Path, dict]:
    """Build fixtures and the domain model folder, write the rehearsal profile YAML; (its path, info)."""
    from ..config import load_profile

    full = load_profile(profile_arg, data_dir=data_dir)
    raw = yaml.safe_load(profile_path(profile_arg).read_text()) or {}
    raw.setdefault("name", full.name)
    real_data = Path(full.data_dir)
    data = real_data / "rehearsal"
    retrieval_sets = [(d.name, d.flag, d.path) for d in full.datasets if d.source == "retrieval"]
    origins = build_fixtures(data, real_data, retrieval_sets)
    check_tokenizer(build_biomedclip_dir(data / BIOMEDCLIP_DIR))
    rehearsal = overlay(raw, data, device)
    rehearsal["reports_dir"] = full.reports_dir
    rehearsal["runs_dir"] = full.runs_dir
    path = data / f"{rehearsal['name']}.yaml"
    from ..files import write_text

    header = f"# {NOTICE}\n# Generated by medlib.run.rehearsal from {profile_path(profile_arg)}; do not edit.\n"
    write_text(path, header + yaml.safe_dump(rehearsal, sort_keys=False))
    load_profile(path)  # the overlay must still be a valid profile
    info = {"full": full, "origins": origins, "downloads": downloads_of_real_run(full)}
    return path, info


def dataset_origins(info: dict) -> dict[str, dict[str, Any]]:
    """Manifest entries for the rehearsal's data: a fixture in a source's real layout is read by the real
    loader (so the data layer calls it real), but it is generated -- the report must say so."""
    return {name: {"synthetic": not origin.startswith("real"), "origin": origin}
            for name, origin in info["origins"].items()}


def origin_line(origins: dict[str, str]) -> str:
    parts = [f"{k}: {v}" for k, v in origins.items() if k != "chestmnist"]
    return f"{NOTICE}. Fixture data ({'; '.join(parts)})"


def fresh_runs(runs: Path, notebooks: list[str]) -> None:
    """Remove earlier rehearsal runs of these notebooks, so every run trains (and is timed) from the start."""
    import shutil

    for stem in notebooks:
        for run in runs.glob(f"{stem}__*"):
            shutil.rmtree(run, ignore_errors=True)


def drop_checkpoints(runs: Path) -> int:
    """Remove the rehearsal's checkpoints (random weights, ~0.6 GB per ViT-B-32 run; nothing to resume), keeping
    each run's log.csv; returns the bytes freed."""
    freed = 0
    for ckpt in runs.glob("*/**/*.pt"):  # LP-FT keeps probe/ and ft/ inside its run folder
        try:
            freed += ckpt.stat().st_size
            ckpt.unlink()
        except FileNotFoundError:
            pass
    return freed
