"""Before a long run: is everything the profile needs here, or can it be fetched?

A full run that is offline must stop at once with one line naming what it could not fetch and how to
provide it locally -- never fall back to a smoke model, never fail an hour in.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

from ..config import DatasetSpec, ModelSpec, Profile
from ..errors import MedlibError

HOSTS = {"huggingface.co": 443, "zenodo.org": 443}


def online(host: str = "huggingface.co", port: int = 443, timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE") == "1" and host == "huggingface.co":
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _model_cached(spec: ModelSpec) -> bool:
    """True where the model needs no download: random init, a local file, or weights already in the HF cache."""
    if spec.pretrained and Path(spec.pretrained).expanduser().is_file():
        return True
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    if spec.arch.startswith("hf-hub:"):
        repo = spec.arch[len("hf-hub:"):]
        return isinstance(try_to_load_from_cache(repo, "open_clip_config.json"), str)
    if not spec.pretrained:
        return True  # random init: nothing to fetch
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.arch, spec.pretrained)
    hub = (cfg or {}).get("hf_hub", "")
    if not hub:
        return False
    repo = hub.rstrip("/")  # e.g. "timm/vit_base_patch32_clip_224.openai"
    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        if isinstance(try_to_load_from_cache(repo, name), str):
            return True
    return False


def _dataset_missing(profile: Profile, spec: DatasetSpec) -> str | None:
    """A line describing what this dataset would have to download, or None if nothing."""
    data = Path(profile.data_dir)
    if spec.synthetic == "always":
        return None
    if spec.source == "medmnist" and spec.download:
        from ..data.sources.medmnist import file_name

        fname = file_name(spec.flag, spec.size)
        if not (data / "medmnist" / fname).is_file():
            return f"MedMNIST {spec.flag} at {spec.size} px (would be saved as {data / 'medmnist' / fname})"
    if spec.source == "pubmedvision" and spec.download:
        local = data / (spec.path or "pubmedvision")
        if not any((local / f).is_file() for f in ("records.jsonl", "records.parquet")):
            return f"PubMedVision sample from {spec.hf_id} (would be saved under {local})"
    if spec.source == "retrieval" and spec.download and spec.hf_id:
        from ..data.sources.karpathy import local_json

        if not (spec.path and local_json(profile, spec).is_file()) and not _hf_dataset_cached(spec.hf_id):
            return f"retrieval set {spec.hf_id} (Hugging Face datasets cache)"
    return None


def _hf_dataset_cached(hf_id: str) -> bool:
    root = os.environ.get("HF_DATASETS_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.expanduser("~/.cache/huggingface"), "datasets")
    return (Path(root) / hf_id.replace("/", "___")).is_dir()


def preflight(profile: Profile) -> None:
    """Raise MedlibError naming every download the run needs when the network is unreachable.

    First, every dataset's source is decided (a path of the wrong kind is an error here) and each generated
    stand-in is named on the console, one line per dataset."""
    from ..data import source_plan

    for name, kind in source_plan(profile).items():
        if kind == "generated":
            print(f"GENERATED {name}: a generated stand-in is used (the profile allows it); its numbers are NOT results")
    if profile.kind == "smoke":
        return
    needs = [f"model {m.arch} ({m.pretrained or 'hub weights'})" for m in profile.models if not _model_cached(m)]
    needs += [line for d in profile.datasets if (line := _dataset_missing(profile, d))]
    if needs and not online():
        raise MedlibError(
            "offline: cannot fetch " + "; ".join(needs) + ". Fix: run once with internet, or provide local copies "
            "(set a model's `pretrained:` to a checkpoint file, put MedMNIST .npz files in <data_dir>/medmnist/, "
            "a PubMedVision sample in <data_dir>/pubmedvision/records.jsonl + images/), or use --profile smoke"
        )


# ---- real or generated, before the run ------------------------------------------------------------------


def _import_keeping_ctrl_c(module: str) -> None:
    """Import ``module``, re-raising a Ctrl-C that lands meanwhile.

    medmnist's ``__init__`` imports torch, pandas, ... inside a bare ``except:``, which swallows a Ctrl-C that
    lands during those (slow) imports; the run would then carry on as if nothing was pressed.
    """
    import importlib
    import signal
    import threading

    if module in sys.modules or threading.current_thread() is not threading.main_thread():
        importlib.import_module(module)
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        importlib.import_module(module)
    finally:
        signal.signal(signal.SIGINT, previous)
    if pressed:
        raise KeyboardInterrupt


def used_datasets(profile: Profile) -> list[str]:
    """Names of the datasets some notebook of the profile uses, in the profile's order."""
    s = profile
    named = set(s.zero_shot.datasets + s.caption_finetune.datasets + s.label_finetune.datasets
                + s.label_finetune.multilabel_datasets + s.imbalance.datasets + s.sota.datasets
                + ([s.sota.retrieval_dataset] if s.sota.retrieval_dataset else []))
    return [d.name for d in profile.datasets if d.name in named]


def data_origin(profile: Profile, spec: DatasetSpec) -> str:
    """'real' | 'generated' | 'download' | 'skipped' | 'missing': what the data layer will read for ``spec``.

    Asks the source module which files it would read now (``inputs``: no download, no generation); files
    under ``<data_dir>/fixtures/`` are generated stand-ins.
    """
    from ..data import DatasetSkipped, source_module

    if spec.synthetic == "always":
        return "generated"
    try:
        paths = [Path(p) for p in source_module(spec).inputs(profile, spec)]
    except DatasetSkipped:
        return "skipped"
    except MedlibError:
        return "missing"  # the notebook that loads it raises the one-line error with the fix
    fixtures = (Path(profile.data_dir) / "fixtures").resolve()
    if any(fixtures in Path(os.path.abspath(p)).parents for p in paths):
        return "generated"
    if paths and all(p.exists() for p in paths):
        return "real"
    if spec.download or spec.hf_id or spec.fallback:
        return "download"
    return "generated" if spec.synthetic == "auto" else "missing"


def data_origins(profile: Profile) -> dict[str, str]:
    """{dataset: origin} for every dataset the profile's notebooks use (see :func:`data_origin`)."""
    _import_keeping_ctrl_c("medmnist")
    return {name: data_origin(profile, profile.dataset(name)) for name in used_datasets(profile)}


def origin_line(origins: dict[str, str]) -> str:
    """One console line: which datasets are generated stand-ins and which are real ('' if nothing to say)."""
    gen = [n for n, o in origins.items() if o == "generated"]
    real = [n for n, o in origins.items() if o in ("real", "download")]
    if gen:
        tail = f"; real: {', '.join(real)}" if real else "; no real data"
        return f"GENERATED data: {', '.join(gen)} (stand-ins: numbers test the code, they are NOT results){tail}"
    return f"real data: {', '.join(real)}" if real else ""
