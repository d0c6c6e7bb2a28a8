"""Measurements a projection rests on: a run's bytes under ``runs/`` and each model's encoding time and forward
FLOPs per image and per caption on the profile's device."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

from ..config import Profile


def run_bytes(folder: Path) -> int:
    """Bytes a finished run keeps under runs/: the size of its files (``best.pt`` holds the architecture's real
    tensors, plain, as the real run writes them)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def measure_eval(profile: Profile, batch: int = 16, repeats: int = 2) -> dict[str, dict[str, float]]:
    """Per model on the profile's device, as evaluations run (bf16 autocast on CUDA): ``image_s`` / ``text_s``, seconds
    per image / caption of each tower (forward, no grad, best of ``repeats`` after a warm-up), and ``image_flops`` /
    ``text_flops``, forward FLOPs per image / caption (:func:`forward_flops`; captions padded to the context length
    as tokenized). The ResNet-18 baseline (where the profile trains it) is measured as ``resnet18``."""
    import torch

    from ..models import load_model, resolve_device

    device = resolve_device(profile.device)
    ctx = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")  # noqa: E731

    def timed(fn, x) -> tuple[float, float]:  # (seconds, FLOPs) per row
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        with torch.inference_mode(), ctx():
            best = math.inf
            for i in range(repeats + 1):  # the first call warms up
                sync()
                t0 = time.perf_counter()
                fn(x)
                sync()
                best = min(best, time.perf_counter() - t0) if i else best
        with ctx():
            return best / len(x), forward_flops(fn, x[:2])

    out: dict[str, dict[str, float]] = {}
    for spec in profile.models:
        quiet = logging.getLogger("medlib.models")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "RANDOM INIT" is the point here
        try:
            b = load_model(spec, device, seed=profile.seed)
        finally:
            quiet.setLevel(level)
        image_s, image_flops = timed(b.model.encode_image, torch.randn(batch, 3, b.image_size, b.image_size,
                                                                        device=device))
        tokens = b.tokenizer(["a photo of a dog running on the grass next to a red ball"] * batch).to(device)
        text_s, text_flops = timed(b.model.encode_text, tokens)
        out[spec.name] = {"image_s": image_s, "text_s": text_s, "image_flops": image_flops, "text_flops": text_flops}
        del b
    if profile.sota.cnn_epochs > 0:
        from torchvision.models import resnet18

        cnn = resnet18(weights=None).to(device).eval()
        s, f = timed(cnn, torch.randn(batch, 3, 224, 224, device=device))
        out["resnet18"] = {"image_s": s, "text_s": 0.0, "image_flops": f, "text_flops": 0.0}
    return out


def forward_flops(fn, x) -> float:
    """Forward FLOPs per row of ``fn(x)`` by ``torch.utils.flop_counter.FlopCounterMode`` (2 per multiply-add),
    counted with autograd on: in inference mode ``nn.MultiheadAttention`` takes a fused kernel the counter does not
    see (a ViT-B/32 image would count 5.9 instead of 8.8 GFLOPs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        fn(x)
    return counter.get_total_flops() / len(x)
