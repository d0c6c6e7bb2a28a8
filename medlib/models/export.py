"""A fine-tuned model outside medlib: open_clip's own folder layout, a model card, and a classifier head.

:func:`export_run` (``python -m medlib export RUN_DIR OUT_DIR``) rebuilds a finished run's best model -- the base
model of the profile with the tensors its ``best.pt`` holds -- and writes the folder that
``open_clip.create_model_and_transforms("local-dir:OUT_DIR")`` loads and that ``open_clip.push_to_hf_hub`` (or
``huggingface-cli upload``) would upload, as open_clip's ``save_for_hf`` writes it:

- ``open_clip_config.json``: ``{"model_cfg": ..., "preprocess_cfg": ...}``, the architecture inline (a tiny config
  registered by medlib too: open_clip needs nothing from medlib);
- ``open_clip_model.safetensors``: the whole model's state dict;
- the tokenizer's files where the text tower is a Hugging Face one (BiomedCLIP's PubMedBERT), which open_clip's
  tokenizer reads from the folder; a text tower whose configuration was a local folder gets its ``config.json``
  here too (``hf_model_name`` then names this folder);
- a label or multi-label fine-tune's head: ``classifier_head.safetensors`` (``weight`` (C, D), ``bias`` (C,)) and
  ``classifier_head.json`` (class names, task, how to apply it: ``logits = normalize(encode_image(x)) @ weight.T +
  bias``, then softmax or a sigmoid per class);
- ``README.md``: the model card (``model_card.md.j2``: the hub's format, YAML metadata first), from the run's
  checkpoint, its metrics file and the profile's data summary (:func:`card_context`).

Before the folder replaces an earlier export, open_clip loads it in this process and its image and text features
must equal medlib's model's to 1e-6 (:func:`check_folder`): an export never leaves a folder that loads as another
model. The folder is written under a temporary name beside ``OUT_DIR`` and renamed into place.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import MedlibError, fail
from ..files.atomic import UMASK
from .load import ClipBundle

CONFIG_NAME = open_clip.constants.HF_CONFIG_NAME  # open_clip_config.json
WEIGHTS_NAME = open_clip.constants.HF_SAFE_WEIGHTS_NAME  # open_clip_model.safetensors
HEAD_WEIGHTS = "classifier_head.safetensors"
HEAD_INFO = "classifier_head.json"
CARD_NAME = "README.md"
TOLERANCE = 1e-6
PROBE_TEXTS = ("a chest x-ray showing pneumonia", "a photo of normal lungs")


@dataclasses.dataclass
class Head:
    """A classifier head on the normalised image features, and what a user needs to apply it."""
    linear: nn.Linear
    classes: list[str]
    task: str  # multiclass | multilabel
    thresholds: list[float] | None = None  # multilabel: per-class thresholds chosen on validation, where known


# ---- the open_clip configuration ------------------------------------------------------------------------


def model_config(bundle: ClipBundle, out_dir: Path) -> dict[str, Any]:
    """The open_clip ``model_cfg`` ``bundle.model`` was built from, self-contained: for a built-in or registered
    name its config, for ``hf-hub:``/``local-dir:`` the folder's own ``model_cfg``; QuickGELU as the model has it;
    pretrained-tower flags off (the weights file holds every weight); a text tower's local Hugging Face folder
    replaced by ``out_dir`` (where :func:`write_folder` puts its ``config.json``)."""
    arch = bundle.arch
    if arch.startswith(open_clip.factory.HF_HUB_PREFIX):
        from huggingface_hub import hf_hub_download

        repo = arch[len(open_clip.factory.HF_HUB_PREFIX):]
        try:
            cfg = json.loads(Path(hf_hub_download(repo, CONFIG_NAME)).read_text())["model_cfg"]
        except Exception as exc:  # noqa: BLE001 - offline without a cached copy, or a repo without the file
            raise fail(arch, f"its {CONFIG_NAME} could not be read ({type(exc).__name__})",
                       "run once with internet (the Hugging Face cache keeps it), or use a local-dir: copy") from None
    elif arch.startswith(open_clip.factory.LOCAL_DIR_PREFIX):
        folder = Path(arch[len(open_clip.factory.LOCAL_DIR_PREFIX):])
        cfg = json.loads((folder / CONFIG_NAME).read_text())["model_cfg"]
    else:
        cfg = open_clip.get_model_config(arch)
        if cfg is None:
            raise fail(arch, "no open_clip configuration of this name", "export a model built by open_clip")
    cfg = copy.deepcopy(cfg)
    if any(isinstance(m, open_clip.transformer.QuickGELU) for m in bundle.model.modules()):
        cfg["quick_gelu"] = True
    vision, text = cfg.get("vision_cfg", {}), cfg.get("text_cfg", {})
    if "timm_model_name" in vision:
        vision["timm_model_pretrained"] = False
    if "hf_model_name" in text:
        text.pop("hf_model_pretrained", None)
        for key in ("hf_model_name", "hf_tokenizer_name"):
            if text.get(key) and Path(text[key]).is_dir():  # a local folder: the export carries its files
                text[key] = str(out_dir.resolve())
    return cfg


def preprocess_config(bundle: ClipBundle) -> dict[str, Any]:
    """open_clip's ``preprocess_cfg`` of the folder (as ``save_config_for_hf`` writes it)."""
    return {"mean": list(bundle.mean), "std": list(bundle.std), "interpolation": bundle.interpolation,
            "resize_mode": bundle.resize_mode}


# ---- writing the folder ---------------------------------------------------------------------------------


def write_folder(bundle: ClipBundle, folder: Path, final: Path, head: Head | None = None,
                 card: str | None = None) -> None:
    """Write the export's files into ``folder`` (an empty temporary folder renamed to ``final`` afterwards)."""
    from safetensors.torch import save_file

    cfg = model_config(bundle, final)
    text = bundle.model.text if "hf_model_name" in cfg.get("text_cfg", {}) else None
    state = {k: v.detach().cpu().clone().contiguous() for k, v in bundle.model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    del state
    (folder / CONFIG_NAME).write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": preprocess_config(bundle)},
                                                 indent=2) + "\n")
    if text is not None:
        save_pretrained = getattr(bundle.tokenizer, "save_pretrained", None)
        if save_pretrained is None:
            raise fail(bundle.arch, "its Hugging Face text tower has no Hugging Face tokenizer to save",
                       "load the model with open_clip.get_tokenizer (medlib's load_model does)")
        save_pretrained(str(folder))
        if cfg["text_cfg"]["hf_model_name"] == str(final.resolve()):
            text.config.to_json_file(str(folder / "config.json"))
    if head is not None:
        save_file({"weight": head.linear.weight.detach().cpu().contiguous(),
                   "bias": head.linear.bias.detach().cpu().contiguous()}, str(folder / HEAD_WEIGHTS))
        (folder / HEAD_INFO).write_text(json.dumps(head_info(head), indent=2) + "\n")
    if card is not None:
        (folder / CARD_NAME).write_text(card, encoding="utf-8")


def head_info(head: Head) -> dict[str, Any]:
    """``classifier_head.json``: what the head's outputs are and how to apply it without medlib."""
    probs = ("softmax over the classes; the prediction is the largest" if head.task != "multilabel" else
             "sigmoid per class (each label on its own); a label is present when its probability >= its threshold")
    out = {"format": "medlib-classifier-head-1", "task": head.task, "classes": list(head.classes),
           "weights": HEAD_WEIGHTS, "input": "image features of the exported model, L2-normalised: "
           "torch.nn.functional.normalize(model.encode_image(images), dim=-1)",
           "logits": "features @ weight.T + bias", "probabilities": probs}
    if head.task == "multilabel":
        out["thresholds"] = head.thresholds or [0.5] * len(head.classes)
        out["thresholds_from"] = "chosen on the validation split" if head.thresholds else "0.5 (default)"
    return out


def save(bundle: ClipBundle, out_dir: str | Path, head: Head | None = None, card: str | None = None) -> Path:
    """Export ``bundle`` (and ``head``, ``card``) to ``out_dir``; returns it.

    ``out_dir`` must be empty, absent, or an earlier export (it holds ``open_clip_config.json``): the new folder
    replaces it only once open_clip loads it as this model (:func:`check_folder`); otherwise a one-line
    MedlibError and ``out_dir`` is left as it was.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / CONFIG_NAME).is_file())):
        raise fail(out, "exists and is not an earlier export (no open_clip_config.json)",
                   "choose a new or empty folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = out.parent / f"{tmp.name}.old"
    try:
        write_folder(bundle, tmp, out, head, card)
        os.chmod(tmp, 0o777 & ~UMASK)  # mkdtemp makes 0700 folders (and safetensors 0600 files): the usual modes
        for f in tmp.iterdir():
            os.chmod(f, 0o666 & ~UMASK)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        try:
            check_folder(out, bundle)
        except BaseException:
            shutil.rmtree(out, ignore_errors=True)
            if old.exists():
                os.replace(old, out)
            raise
    except OSError as exc:
        raise fail(out, f"could not be written ({exc.strerror or type(exc).__name__})",
                   f"check the disk holding {out.parent} (df -h {out.parent}) and export again") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


# ---- checking what open_clip loads ----------------------------------------------------------------------


def probe_images(bundle: ClipBundle, n: int = 2, seed: int = 0) -> torch.Tensor:
    """A fixed batch of model inputs (normalised pixels) at the model's input size."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, bundle.image_size, bundle.image_size, generator=g)


@torch.no_grad()
def features(model: nn.Module, tokenizer: Any, images: torch.Tensor, texts: list[str]) -> tuple[torch.Tensor, ...]:
    """(token ids, normalised image features, normalised text features) of ``model`` in eval mode, on the CPU."""
    was = model.training
    model.eval()
    try:
        tokens = tokenizer(list(texts))
        device = next(model.parameters()).device
        img = F.normalize(model.encode_image(images.to(device)).float(), dim=-1).cpu()
        txt = F.normalize(model.encode_text(tokens.to(device)).float(), dim=-1).cpu()
    finally:
        model.train(was)
    return tokens.cpu(), img, txt


def check_folder(folder: Path, bundle: ClipBundle, texts: tuple[str, ...] = PROBE_TEXTS) -> None:
    """Load ``folder`` with open_clip alone and compare its tokens and features with ``bundle``'s: a one-line
    MedlibError naming the folder when they differ (by more than 1e-6) or it does not load."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # open_clip logs each file it finds at INFO
    try:
        model = open_clip.create_model(f"local-dir:{folder}", device="cpu")
        tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    except Exception as exc:  # noqa: BLE001 - any failure to load is the export's fault
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise fail(folder, f"open_clip cannot load the exported folder ({type(exc).__name__}: {first})",
                   "report this with the run's name") from None
    finally:
        root.setLevel(level)
    images = probe_images(bundle)
    ours = features(bundle.model, bundle.tokenizer, images, list(texts))
    theirs = features(model, tokenizer, images, list(texts))
    if not torch.equal(ours[0], theirs[0]):
        raise fail(folder, "open_clip's tokenizer of the folder gives other tokens than the model's",
                   "report this with the run's name")
    for what, a, b in (("image", ours[1], theirs[1]), ("text", ours[2], theirs[2])):
        gap = float((a - b).abs().max())
        if not gap <= TOLERANCE:
            raise fail(folder, f"open_clip loads it with other {what} features (largest difference {gap:.2e})",
                       "report this with the run's name")


# ---- a finished run -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Trained:
    """A finished run's best model, rebuilt from its profile's base model and ``best.pt``."""
    run: str
    run_dir: Path
    profile: Any  # medlib.config.Profile
    bundle: ClipBundle
    head: Head | None
    checkpoint: dict[str, Any]  # best.pt as read (signature, epoch, metric)

    def reports(self, sub: str) -> Path:
        """reports/<profile>/<sub>/ beside the run's runs/ folder (else under the working directory)."""
        p = self.profile
        if Path(p.reports_dir).is_absolute():
            return Path(p.reports_dir) / p.name / sub
        runs_root = self.run_dir.resolve().parent.parent
        root = runs_root.parent if runs_root.name == Path(p.runs_dir).name else Path.cwd()
        return root / p.reports_dir / p.name / sub


def _profile(run_dir: Path, profile: Any) -> Any:
    from ..config import load_profile

    if profile is not None and not isinstance(profile, (str, Path)):
        return profile
    name = profile or run_dir.resolve().parent.name
    try:
        return load_profile(name)
    except MedlibError:
        if profile is not None:
            raise
        raise fail(run_dir, f"cannot tell which profile trained it (no profile named {name!r})",
                   "pass the profile: --profile NAME_OR_YAML (profile= in a notebook)") from None


def rebuild(run_dir: str | Path, profile: Any = None) -> Trained:
    """The best model of the finished run in ``run_dir``: the profile's base model (``load_model`` with the
    profile's seed, as the notebooks build it) with the tensors ``best.pt`` holds put back, checked against the
    digest of the frozen weights the run trained with."""
    from ..train import checkpoint
    from ..train.heads import ClipClassifier
    from .load import load_model

    run_dir = Path(run_dir)
    prof = _profile(run_dir, profile)
    path, ck = checkpoint.finished_best(run_dir)
    sig = ck.get("signature") or {}
    if sig.get("trainer") == "cnn":
        raise fail(run_dir, "holds the ResNet-18 baseline (torchvision), not an open_clip model",
                   "load it with torchvision: resnet18(num_classes=C).load_state_dict(torch.load(best.pt, "
                   "weights_only=True)['model'])")
    bundle = load_model(prof.model(sig["model"]), "cpu", seed=prof.seed)
    state = ck["model"]
    module: nn.Module = bundle.model
    if sig["mode"] != "contrastive":
        out_dim, in_dim = state["head.weight"].shape
        module = ClipClassifier(bundle.model, nn.Linear(in_dim, out_dim))
    module.requires_grad_(False)
    checkpoint.load_changed_state(module, state, path, base=ck.get("base", ""))
    module.eval()
    head = None
    if sig["mode"] != "contrastive":
        head = Head(module.head, [str(c) for c in sig["classes"]],
                    "multilabel" if sig["mode"] == "multilabel" else "multiclass")
    trained = Trained(run_dir.name, run_dir, prof, bundle, head, ck)
    if head is not None and head.task == "multilabel":
        threshold = (read_record(trained, trained.run) or {}).get("threshold")
        head.thresholds = [float(t) for t in threshold] if isinstance(threshold, list) else None
    return trained


def read_record(trained: Trained, run: str) -> dict[str, Any] | None:
    """reports/<profile>/metrics/<run>.json, or None."""
    try:
        return json.loads((trained.reports("metrics") / f"{run}.json").read_text())
    except (OSError, ValueError):
        return None


# ---- the model card -------------------------------------------------------------------------------------

HF_METRICS = {"acc": "accuracy", "auroc": "roc_auc", "macro_f1": "f1", "balanced_acc": "accuracy"}


def _base_model_id(bundle: ClipBundle) -> str:
    """The Hugging Face id of the base model's weights, '' where there is none (random init, a local file)."""
    if bundle.arch.startswith(open_clip.factory.HF_HUB_PREFIX):
        return bundle.arch[len(open_clip.factory.HF_HUB_PREFIX):]
    if bundle.pretrained and not Path(bundle.pretrained).suffix:
        return str((open_clip.get_pretrained_cfg(bundle.arch, bundle.pretrained) or {}).get("hf_hub", "")).strip("/")
    return ""


def data_facts(trained: Trained, dataset: str) -> dict[str, Any]:
    """What the card says of the training data: from the profile and ``tables/data_summary.csv``."""
    import pandas as pd

    from ..data.sources import mimic_cxr

    try:
        spec = trained.profile.dataset(dataset)
    except MedlibError:
        spec = None
    facts: dict[str, Any] = {"name": dataset, "hf_id": getattr(spec, "hf_id", ""), "licence": "unknown",
                             "sizes": None, "generated": None, "credentialed": None}
    try:
        rows = pd.read_csv(trained.reports("tables") / "data_summary.csv")
        row = rows[rows["dataset"] == dataset].iloc[0]
        facts.update(licence=str(row["license"]), sizes={k: int(row[k]) for k in ("train", "val", "test")},
                     generated=str(row["synthetic"]).lower() == "true")
    except (OSError, KeyError, IndexError, ValueError):
        pass
    if getattr(spec, "source", "") == "mimic_cxr":
        facts["credentialed"] = mimic_cxr.LICENSE.split(" (")[0]
    return facts


def card_context(trained: Trained, name: str) -> dict[str, Any]:
    """Everything the model card shows (``model_card.md.j2`` lays it out)."""
    import yaml

    sig, b = trained.checkpoint.get("signature", {}), trained.bundle
    record = read_record(trained, trained.run)
    parts = trained.run.split("__")
    dataset = (record or {}).get("dataset") or (parts[1] if len(parts) > 1 else "")
    retrieval = None  # the retrieval record of the same run: <notebook>__<data>__<model>__<method>-retrieval[__s<seed>]
    if len(parts) > 3:
        retrieval = read_record(trained, "__".join(parts[:3] + [f"{parts[3]}-retrieval"] + parts[4:5]))
    data = data_facts(trained, dataset)
    metrics = []
    for rec in (r for r in (record, retrieval) if r):
        ci = rec.get("ci95") or {}
        for key, value in (rec.get("metrics") or {}).items():
            if isinstance(value, (int, float)):
                low, high = (ci.get(key) or [None, None])[:2]
                metrics.append({"metric": key, "value": value, "low": low, "high": high, "n": rec.get("n"),
                                "split": rec.get("split", "test")})
    kind = trained.profile.kind
    tags = ["clip", "open_clip", "medical-imaging", "medlib"] + ([f"{kind}-not-results"] if kind != "real" else [])
    meta = {"license": "other", "library_name": "open_clip", "pipeline_tag": "zero-shot-image-classification",
            "tags": tags, **({"base_model": _base_model_id(b)} if _base_model_id(b) else {}),
            "datasets": [data["hf_id"] or dataset],
            "metrics": sorted({HF_METRICS[m["metric"]] for m in metrics if m["metric"] in HF_METRICS})}
    cfg = sig.get("cfg") or {}
    manifest = {}
    try:
        manifest = json.loads((trained.reports("") / "manifest.json").read_text())
    except (OSError, ValueError):
        pass
    return {"front_matter": yaml.safe_dump(meta, sort_keys=False).strip(), "name": name, "run": trained.run,
            "profile": trained.profile.name, "profile_hash": trained.profile.hash(), "notice": trained.profile.notice,
            "kind": kind, "model": b.display, "arch": b.arch, "pretrained": b.pretrained or "none (random init)",
            "base_model": _base_model_id(b), "mode": sig.get("mode"), "method": parts[3] if len(parts) > 3 else "",
            "lock_image": cfg.get("lock_image"), "lock_text": cfg.get("lock_text"), "cfg": cfg,
            "loss": sig.get("loss"), "sampler": sig.get("sampler"), "seed": sig.get("seed"),
            "best_epoch": trained.checkpoint.get("epoch"), "best_val": trained.checkpoint.get("metric"),
            "val_metric": ((record or {}).get("extra") or {}).get("val_metric_name", ""), "data": data,
            "metrics": metrics, "n_boot": (record or {}).get("n_boot"), "head": head_info(trained.head)
            if trained.head else None, "git": manifest.get("git"), "image_size": b.image_size}


def render_card(trained: Trained, name: str) -> str:
    """The model card (README.md) of an export named ``name``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent)), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
    return env.get_template("model_card.md.j2").render(**card_context(trained, name))


def credentialed_warning(trained: Trained) -> str:
    """One line for a model trained on real credentialed data (MIMIC-CXR), else ''."""
    dataset = trained.run.split("__")[1] if "__" in trained.run else ""
    data = data_facts(trained, dataset)
    if not data["credentialed"] or data["generated"]:
        return ""
    return (f"{trained.run} was trained on {dataset}, credentialed data: its weights may be covered by the "
            f"{data['credentialed']} (PhysioNet data use agreement); do not share them unless it allows it")


def export_run(run_dir: str | Path, out_dir: str | Path, profile: Any = None, quiet: bool = False) -> Path:
    """Export the best model of the finished run in ``run_dir`` (``runs/<profile>/<run>/``) to ``out_dir``, with its
    model card and, for a label or multi-label fine-tune, its head: the notebook helper behind ``python -m medlib
    export``. ``profile``: the :class:`~medlib.config.Profile` (or its name or YAML path) that trained the run, by
    default the one named by the folder above ``run_dir``. Prints where the model went and, for a model trained on
    credentialed data, that its weights may be covered by the data use agreement (unless ``quiet``)."""
    trained = rebuild(run_dir, profile)
    out = save(trained.bundle, out_dir, trained.head, render_card(trained, Path(out_dir).name))
    if not quiet:
        print(f"exported {trained.run} to {out} (open_clip: create_model_and_transforms('local-dir:{out}'))")
        warning = credentialed_warning(trained)
        if warning:
            print(f"WARNING: {warning}")
    return out
