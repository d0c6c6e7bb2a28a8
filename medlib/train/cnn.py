"""A supervised CNN baseline: torchvision's ResNet-18 trained by us on the same splits.

Answers "fine-tuned CLIP vs. a plain CNN" on equal terms (same data, same split, same metrics). ImageNet
weights are used where they can be loaded; offline they cannot, and the model is trained from scratch --
``CnnResult.weights`` says which, and notebook 06 puts it in the table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data.base import DatasetBundle
from ..errors import fail
from ..files import write_text
from ..models.preprocess import to_model_input
from ..progress import enabled as progress_enabled
# The one checkpoint format, split checks and the validation metric of the CLIP engine: both trainers
# checkpoint and select epochs the same way.
from . import checkpoint
from .validation import require_split, val_metric, validation_split

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class CnnResult:
    model: torch.nn.Module
    weights: str  # "imagenet" or "none (from scratch)" and why
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    best_epoch: int = 0


def build_resnet18(num_outputs: int, weights: str = "imagenet") -> tuple[torch.nn.Module, str]:
    """ResNet-18 with a fresh final layer; ImageNet weights where loadable, else random init (and why)."""
    import torchvision

    used = "none (from scratch)"
    model = None
    if weights == "imagenet":
        try:
            model = torchvision.models.resnet18(weights=torchvision.models.ResNet18_Weights.IMAGENET1K_V1)
            used = "imagenet"
        except Exception as exc:  # offline: torchvision cannot download the weights
            used = f"none (from scratch; ImageNet weights not loadable: {type(exc).__name__})"
    if model is None:
        model = torchvision.models.resnet18(weights=None)
    model.fc = torch.nn.Linear(model.fc.in_features, num_outputs)
    return model, used


def _plain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict on the CPU (what a checkpoint stores: ``torch.load(weights_only=True)["model"]`` reads it)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


def _inputs(images: np.ndarray | torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    return to_model_input(images, size, IMAGENET_MEAN, IMAGENET_STD, device)


@torch.no_grad()
def predict_cnn(model: torch.nn.Module, images: np.ndarray, task: str, batch_size: int = 512,
                device: str | torch.device = "cpu") -> np.ndarray:
    """Probabilities (N, C): softmax for multiclass, sigmoid for multilabel."""
    device = torch.device(device)
    model.eval().to(device)
    size = int(images.shape[1])
    out = []
    for i in range(0, len(images), batch_size):
        logits = model(_inputs(images[i:i + batch_size], size, device)).float()
        out.append((torch.sigmoid(logits) if task == "multilabel" else logits.softmax(-1)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def train_cnn(data: DatasetBundle, *, epochs: int, batch_size: int, lr: float, seed: int, run_dir: Path,
              weights: str = "imagenet", device: str | torch.device = "cpu", fresh: bool = False,
              progress: bool = True) -> CnnResult:
    """Train ResNet-18 on ``data``'s train split, select the epoch on val (the test split is not touched).

    A checkpoint is written atomically after every epoch (``run_dir/last.pt``, the best epoch's weights in
    ``best.pt``, both in the one format of ``medlib.train.checkpoint``); a second call with the same settings
    resumes an interrupted run from it, or returns a finished one at once, unless ``fresh``. A finished run
    keeps no optimizer state (disk), so it cannot be extended to more epochs: pass ``fresh=True`` for that. A last batch of a single image is
    skipped each epoch: BatchNorm cannot train on one value per channel (28 px images reach 1x1 in layer4).
    """
    device = torch.device(device)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if epochs < 1:
        raise fail(run_dir, f"epochs={epochs}: no epoch would be trained", "set epochs >= 1")
    task = data.task
    train, val = require_split(data, "train"), validation_split(data, multilabel=task == "multilabel")
    n_batches = len(train) // batch_size + (len(train) % batch_size > 1)
    if n_batches < 1:
        raise fail(f"dataset {data.name!r}", f"{len(train)} training image(s): BatchNorm needs batches of 2 or more",
                   "use a larger training split")
    torch.manual_seed(seed)  # the random initialisation (and ImageNet weights' new final layer)
    model, used = build_resnet18(data.num_classes, weights)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    size = int(train.images.shape[1])
    start, best, rows = 0, -1.0, []
    ckpt, best_path = run_dir / "last.pt", run_dir / "best.pt"
    # what a resumed run must share with the one that wrote the checkpoint (all but the epoch count)
    signature = {"trainer": "cnn", "task": task, "classes": list(data.class_names), "n_train": len(train),
                 "batch_size": batch_size, "lr": lr, "seed": seed, "weights": weights}
    if ckpt.is_file() and not fresh:
        state = checkpoint.load(ckpt, signature)  # the one format: refuses other settings and code-running files
        if state["epoch"] > epochs:
            raise fail(ckpt, f"holds {state['epoch']} trained epochs, more than epochs={epochs}",
                       "pass fresh=True to start over, or raise epochs")
        start, best, rows, used = state["epoch"], state["best"], state["history"], state["weights"]
        if state["finished"] and state["epoch"] < epochs:
            raise fail(ckpt, f"holds a finished {state['epoch']}-epoch run (its optimizer state is not kept)",
                       "pass fresh=True to train for more epochs")
        if not state["finished"]:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            checkpoint.set_rng_state(state["rng"], {"shuffle": gen})
    else:
        for stale in (ckpt, best_path, run_dir / "log.csv"):
            stale.unlink(missing_ok=True)
    images = train.images  # numpy; a prepared split is a read-only memory map: batches are read by index
    labels = torch.as_tensor(train.labels)
    for epoch in range(start, epochs):
        model.train()
        t0, losses, seen = time.perf_counter(), [], 0
        order = torch.randperm(len(images), generator=gen)
        for b in tqdm(range(n_batches), desc=f"resnet18 epoch {epoch + 1}/{epochs}",
                      disable=not progress_enabled(progress),
                      leave=False):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = _inputs(images[idx.numpy()], size, device)
            y = labels[idx].to(device)
            logits = model(x)
            loss = (F.binary_cross_entropy_with_logits(logits, y.float()) if task == "multilabel"
                    else F.cross_entropy(logits, y.long()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            seen += len(idx)
        t_train = time.perf_counter() - t0
        score = val_metric(val.labels, predict_cnn(model, val.images, task, device=device), task == "multilabel")
        seconds = time.perf_counter() - t0
        rows.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_metric": score,
                     "seconds": seconds, "images_per_s": seen / max(t_train, 1e-9)})
        if score > best:  # strictly better: ties keep the earlier epoch
            best = score
            checkpoint.save(best_path, {"signature": signature, "model": _plain(model.state_dict()),
                                        "epoch": epoch + 1, "metric": score})
        finished = epoch + 1 == epochs
        record = {"signature": signature, "epoch": epoch + 1, "best": best, "history": rows, "weights": used,
                  "finished": finished}
        if not finished:  # a finished run keeps this small record; its weights are best.pt's
            record.update(model=_plain(model.state_dict()), optimizer=opt.state_dict(),
                          rng=checkpoint.rng_state({"shuffle": gen}))
        checkpoint.save(ckpt, record)
        write_text(run_dir / "log.csv", pd.DataFrame(rows).to_csv(index=False))  # as the engine's (projection reads it)
    if best_path.is_file():
        model.load_state_dict(checkpoint.load(best_path, signature)["model"])
    hist = pd.DataFrame(rows)
    best_epoch = int(hist.loc[hist["val_metric"].idxmax(), "epoch"]) if len(hist) else 0
    return CnnResult(model=model.eval(), weights=used, history=hist, best_epoch=best_epoch)
