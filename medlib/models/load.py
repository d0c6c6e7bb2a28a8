"""OpenCLIP model loading: a named tag, an hf-hub id, a local checkpoint, or a registered tiny config.

``load_model(spec)`` understands four kinds of ``spec.pretrained``:

* ``""``: random init. Expected for the registered tiny smoke configs (``medclip-tiny``,
  ``medclip-tiny-domain``); for any other architecture it is allowed (e.g. a GPU throughput test)
  but logged as a warning. For an ``hf-hub:`` arch, ``""`` means "the hub's own weights".
  Random init is seeded (``seed=``) so the same seed gives the same weights.
* an open_clip tag (``"openai"``): downloaded through open_clip (Hugging Face cache).
  ``hf-hub:org/repo`` archs (BiomedCLIP) bring their own weights and tokenizer;
  ``local-dir:/path`` archs read the same files from a downloaded copy of such a repo.
* a local file: an open_clip state dict (``.pt``/``.pth``/``.bin``/``.safetensors``) or a medlib
  checkpoint written by :func:`save_checkpoint` (which carries a digest of its tensors, checked on load).

Offline or failed downloads raise :class:`~medlib.errors.MedlibError` naming what could not be
fetched and how to provide it locally. Nothing ever falls back to another model. Weights files are read
with ``torch.load(weights_only=True)``: one that would run code is refused, and no message repeats torch's
advice to load it with the unsafe loading mode (``weights_only`` off).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import open_clip
import torch

from ..files import tensors as torchfile
from ..config import ModelSpec
from ..errors import MedlibError, fail

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
open_clip.add_model_config(CONFIG_DIR)

#: architectures registered from CONFIG_DIR (random init is their normal use)
TINY_ARCHS = tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.json")))
CHECKPOINT_FORMAT = "medlib-clip-checkpoint"
CHECKPOINT_VERSION = 2  # 2: a digest of the tensors, checked on load
RECREATE = "delete it and re-create it (re-run the notebook that wrote it, or download it again)"
UNSAFE_FIX = "use a state dict of tensors (torch.save(model.state_dict(), path)) from a source you trust"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


@dataclass
class ClipBundle:
    """A loaded CLIP model and everything needed to feed it."""

    model: torch.nn.Module  # open_clip CLIP / CustomTextCLIP: encode_image, encode_text, logit_scale
    tokenizer: Callable[[list[str]], torch.Tensor]  # texts -> (N, context_length) token ids
    image_size: int  # square input side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    name: str  # ModelSpec.name (used in run names)
    display: str  # human label for tables/figures
    arch: str
    pretrained: str
    device: torch.device
    interpolation: str = "bicubic"  # open_clip preprocess_cfg of the model (bicubic | bilinear)
    resize_mode: str = "shortest"  # shortest (resize + center crop) | squash

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "arch": self.arch, "pretrained": self.pretrained, "image_size": self.image_size,
                "params_m": round(sum(p.numel() for p in self.model.parameters()) / 1e6, 3)}

    def preprocess_cfg(self) -> dict[str, Any]:
        """The preprocessing this model expects (what a checkpoint stores)."""
        return {"size": self.image_size, "mean": list(self.mean), "std": list(self.std),
                "interpolation": self.interpolation, "resize_mode": self.resize_mode}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---- loading --------------------------------------------------------------------------------------


def load_model(spec: ModelSpec, device: str | torch.device = "cpu", *, seed: int = 0) -> ClipBundle:
    """Load ``spec`` through open_clip and return a :class:`ClipBundle` in eval mode on ``device``.

    ``seed`` seeds random initialisation (random-init archs, and the skeleton a local file is loaded
    into) without touching the global torch RNG.
    """
    device = resolve_device(device)
    arch, pre = spec.arch, (spec.pretrained or "").strip()
    hub = arch.startswith((open_clip.factory.HF_HUB_PREFIX, open_clip.factory.LOCAL_DIR_PREFIX))
    if not hub and arch not in open_clip.list_models():
        raise fail(f"model {spec.name!r}", f"unknown open_clip architecture {arch!r}",
                   f"use an open_clip name (open_clip.list_models(), e.g. 'ViT-B-32'), one of {list(TINY_ARCHS)}, "
                   "an 'hf-hub:org/repo' id or a 'local-dir:/path' folder")

    if pre and (_looks_like_path(pre) or Path(pre).is_file()):
        model = _load_weights_file(spec, Path(pre), device, seed)
    elif hub:
        if pre:
            raise fail(f"model {spec.name!r}", f"`pretrained: {pre}` is neither a local file nor allowed with an "
                       "hf-hub/local-dir arch (the repo brings its own weights)",
                       "leave `pretrained` empty or point it to a local checkpoint file")
        model = _create_from_hub(arch, device)
    elif not pre:
        if arch not in TINY_ARCHS:
            log.warning("model %r: %s has no `pretrained` tag or file: RANDOM INIT (seed %d)", spec.name, arch, seed)
        else:
            log.info("model %r: tiny config %s, random init (seed %d)", spec.name, arch, seed)
        model = _build_architecture(arch, device, seed)
    else:
        model = _create_from_tag(arch, pre, device)

    tokenizer = _get_tokenizer(arch)
    model.eval()
    return _bundle(model, tokenizer, name=spec.name, display=spec.display or _default_display(arch, pre),
                   arch=arch, pretrained=pre, device=device)


def _default_display(arch: str, pretrained: str) -> str:
    if not pretrained:
        return f"{arch}:{'pretrained' if arch.startswith(('hf-hub:', 'local-dir:')) else 'random'}"
    return f"{arch}:{Path(pretrained).name if _looks_like_path(pretrained) else pretrained}"


def _looks_like_path(value: str) -> bool:
    return os.sep in value or "/" in value or value.lower().endswith(_WEIGHT_SUFFIXES)


def _hf_home() -> str:
    return os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))


def _first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message; for torch's weights-only refusal, our own words (its text advises
    the unsafe loading mode (``weights_only`` off), which would run whatever code the file holds)."""
    return torchfile.reason(exc)


class _DropRandomInitNotice(logging.Filter):
    """open_clip logs "Model initialized randomly" on the root logger for a skeleton we fill right after
    (or whose random init load_model already reported); drop just that record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()


def _build_architecture(arch: str, device: torch.device, seed: int) -> torch.nn.Module:
    """The architecture with random weights (seeded; the global RNG is left untouched)."""
    devices = [device] if device.type == "cuda" else []
    quiet = _DropRandomInitNotice()
    logging.getLogger().addFilter(quiet)
    try:
        return _build_seeded(arch, device, seed, devices)
    finally:
        logging.getLogger().removeFilter(quiet)


def _build_seeded(arch: str, device: torch.device, seed: int, devices: list) -> torch.nn.Module:
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        try:
            return open_clip.create_model(arch, pretrained=None, load_weights=False, pretrained_text=False,
                                          device=device)
        except Exception as exc:
            if _is_missing_transformers(exc):
                raise _missing_dependency(arch, exc) from None
            if arch.startswith(("hf-hub:", "local-dir:")):
                raise _hub_error(arch, exc) from None
            raise


def _create_from_tag(arch: str, tag: str, device: torch.device) -> torch.nn.Module:
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if tag not in tags:
        raise fail(f"model {arch}", f"`pretrained: {tag}` is not a known open_clip tag for {arch} nor an existing file",
                   f"use one of {tags} or a path to a local weights file" if tags else
                   "set `pretrained` to a local weights file, or leave it empty for random init")
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    where = cfg.get("hf_hub") or cfg.get("url") or "?"
    try:
        return open_clip.create_model(arch, pretrained=tag, device=device)
    except Exception as exc:  # open_clip wraps every download failure in RuntimeError
        if _is_missing_transformers(exc):
            raise _missing_dependency(arch, exc) from None
        raise fail(f"{arch} pretrained={tag!r} ({where})", f"could not download the weights ({_first_line(exc)})",
                   f"download them once with internet into the Hugging Face cache (HF_HOME={_hf_home()}), or save "
                   "the weights elsewhere and set the profile's `pretrained:` to that local file path "
                   "(.pt/.bin/.safetensors)") from None


def _create_from_hub(arch: str, device: torch.device) -> torch.nn.Module:
    try:
        return open_clip.create_model_from_pretrained(arch, device=device, return_transform=False)
    except Exception as exc:
        if _is_missing_transformers(exc):
            raise _missing_dependency(arch, exc) from None
        raise _hub_error(arch, exc) from None


def _hub_error(arch: str, exc: BaseException) -> MedlibError:
    if arch.startswith(open_clip.factory.LOCAL_DIR_PREFIX):
        if torchfile.refused(exc):  # a weights file that is not plain tensors: name it, never torch's advice
            weights = _folder_weights(Path(arch[len(open_clip.factory.LOCAL_DIR_PREFIX):]))
            problem = "loading it would run code" if torchfile.runs_code(exc) else torchfile.reason(exc)
            return fail(weights, f"refused: not a plain-tensor weights file ({problem})",
                        "replace it with the model's open_clip_model.safetensors (or a state dict of tensors) "
                        "from a source you trust")
        return fail(arch, f"could not load the model folder ({_first_line(exc)})",
                    "the folder needs open_clip_config.json and the weights (open_clip_model.safetensors or .bin)")
    repo = arch.split(":", 1)[1]
    return fail(arch, f"could not fetch the model from the Hugging Face Hub ({_first_line(exc)})",
                f"run once with internet to fill the Hugging Face cache (HF_HOME={_hf_home()}), or download the "
                f"repo {repo} elsewhere (`huggingface-cli download {repo} --local-dir DIR`), copy DIR here and set "
                "the model's `arch: local-dir:DIR`")


def _folder_weights(folder: Path) -> Path:
    """The weights file open_clip reads from a ``local-dir:`` folder (the folder where that cannot be told)."""
    find = getattr(open_clip.factory, "_find_checkpoint_in_dir", None)
    try:
        found = find(folder) if find is not None else None
    except OSError:
        found = None
    return Path(found) if found else folder


def _is_missing_transformers(exc: BaseException) -> bool:
    return isinstance(exc, ImportError) or "install transformers" in str(exc)


def _missing_dependency(arch: str, exc: BaseException) -> MedlibError:
    return fail(arch, f"needs a package that is not installed ({_first_line(exc)})",
                "pip install transformers (BiomedCLIP's PubMedBERT text tower and tokenizer need it)")


def _get_tokenizer(arch: str) -> Callable[[list[str]], torch.Tensor]:
    try:
        return open_clip.get_tokenizer(arch)
    except Exception as exc:
        if _is_missing_transformers(exc):
            raise _missing_dependency(arch, exc) from None
        raise _hub_error(arch, exc) from None


def _load_weights_file(spec: ModelSpec, path: Path, device: torch.device, seed: int) -> torch.nn.Module:
    """Build ``spec.arch`` and load a local open_clip state dict or medlib checkpoint into it."""
    if not path.is_file():
        raise fail(path, f"weights file for model {spec.name!r} not found",
                   "check the profile's `pretrained:` path (relative paths are read from the working directory)")
    ckpt = _read_medlib_checkpoint(path) if path.suffix != ".safetensors" else None
    if ckpt is not None and ckpt["arch"] != spec.arch:
        raise fail(path, f"checkpoint was saved from arch {ckpt['arch']!r}, the profile says {spec.arch!r}",
                   f"set the model's `arch: {ckpt['arch']}`")
    model = _build_architecture(spec.arch, device, seed)
    try:
        if ckpt is not None:
            model.load_state_dict(ckpt["state_dict"], strict=True)
            if ckpt.get("preprocess"):
                open_clip.model.set_model_preprocess_cfg(model, ckpt["preprocess"])
        else:
            open_clip.load_checkpoint(model, str(path), strict=True, device="cpu", weights_only=True)
    except MedlibError:
        raise
    except Exception as exc:
        raise fail(path, f"not loadable as {spec.arch} weights ({_first_line(exc)})",
                   f"point `pretrained:` to an open_clip state dict or medlib checkpoint of {spec.arch}") from None
    return model.to(device)


# ---- checkpoints ----------------------------------------------------------------------------------


def save_checkpoint(bundle: ClipBundle, path: str | Path, extra: dict | None = None) -> Path:
    """Write ``bundle``'s weights and identity atomically (temporary name, then rename), with a digest of them.

    ``extra`` must be loadable with ``torch.load(weights_only=True)``: tensors, python numbers,
    strings, lists and dicts (numpy arrays are not; convert them to lists or tensors). A full disk is a
    one-line MedlibError naming the file; the previous file there is kept.
    """
    state = {k: v.detach().cpu() for k, v in bundle.model.state_dict().items()}
    blob = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "arch": bundle.arch,
            "pretrained": bundle.pretrained, "name": bundle.name, "display": bundle.display,
            "preprocess": bundle.preprocess_cfg(), "state_dict": state, "extra": dict(extra or {})}
    return torchfile.save(path, blob)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict (state dict on CPU, plus ``extra``), checked against its digest; MedlibError if
    missing, corrupt or damaged."""
    path = Path(path)
    if not path.is_file():
        raise fail(path, "checkpoint not found", "check the path, or run the training notebook that writes it")
    ckpt = _read_medlib_checkpoint(path)
    if ckpt is None:
        raise fail(path, "not a medlib checkpoint (no 'format' marker)",
                   "load open_clip state dicts through load_model(ModelSpec(..., pretrained=<path>))")
    return ckpt


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> ClipBundle:
    """Rebuild the :class:`ClipBundle` saved by :func:`save_checkpoint` (exactly: same state dict)."""
    path = Path(path)
    ckpt = read_checkpoint(path)
    device = resolve_device(device)
    model = _build_architecture(ckpt["arch"], device, seed=0)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except Exception as exc:
        raise fail(path, f"weights do not fit arch {ckpt['arch']!r} ({_first_line(exc)})",
                   "re-create the checkpoint with this version of medlib/open_clip") from None
    if ckpt.get("preprocess"):
        open_clip.model.set_model_preprocess_cfg(model, ckpt["preprocess"])
    model.to(device).eval()
    return _bundle(model, _get_tokenizer(ckpt["arch"]), name=ckpt["name"], display=ckpt["display"],
                   arch=ckpt["arch"], pretrained=ckpt["pretrained"], device=device)


def checkpoint_extra(path: str | Path) -> dict[str, Any]:
    """Just the ``extra`` dict of a checkpoint (optimizer state, epoch, ...)."""
    return read_checkpoint(path).get("extra", {})


def _read_medlib_checkpoint(path: Path) -> dict[str, Any] | None:
    """A medlib checkpoint dict (checked against its digest), None for another (open_clip) torch file;
    MedlibError if unreadable, damaged or of an older format."""
    try:
        obj = torchfile.load(path)  # weights_only: a weights file never runs code
    except Exception as exc:
        if torchfile.runs_code(exc):  # the pickle names a callable: loading it would import and run code
            raise fail(path, "refused: not a plain-tensor weights file (loading it would run code)", UNSAFE_FIX) \
                from None
        raise fail(path, f"truncated or corrupt weights file ({_first_line(exc)})", RECREATE) from None
    if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        if obj.get("version") != CHECKPOINT_VERSION:
            raise fail(path, "medlib checkpoint of another version (older ones wrote no digest of the tensors, so "
                       "its weights cannot be checked)", "re-create it with save_checkpoint (re-run the notebook "
                       "that wrote it)")
        torchfile.verify(path, obj, RECREATE)
        missing = {"arch", "state_dict", "name"} - set(obj)
        if missing:
            raise fail(path, f"medlib checkpoint lacks {sorted(missing)}", "re-create it with save_checkpoint")
        obj.setdefault("display", obj["name"])
        obj.setdefault("pretrained", "")
        return obj
    return None


# ---- helpers ---------------------------------------------------------------------------------------


def _bundle(model: torch.nn.Module, tokenizer: Callable, *, name: str, display: str, arch: str, pretrained: str,
            device: torch.device) -> ClipBundle:
    cfg = open_clip.get_model_preprocess_cfg(model)
    size = cfg.get("size", getattr(model.visual, "image_size", 224))
    size = int(size[0] if isinstance(size, (tuple, list)) else size)
    mean = tuple(float(m) for m in (cfg.get("mean") or open_clip.OPENAI_DATASET_MEAN))
    std = tuple(float(s) for s in (cfg.get("std") or open_clip.OPENAI_DATASET_STD))
    return ClipBundle(model=model, tokenizer=tokenizer, image_size=size, mean=mean, std=std,  # type: ignore[arg-type]
                      name=name, display=display, arch=arch, pretrained=pretrained, device=device,
                      interpolation=str(cfg.get("interpolation", "bicubic")),
                      resize_mode=str(cfg.get("resize_mode", "shortest")))


def logit_scale(bundle: ClipBundle) -> float:
    """exp(logit_scale), clamped at 100 as in CLIP."""
    return float(min(bundle.model.logit_scale.detach().exp().item(), 100.0))
