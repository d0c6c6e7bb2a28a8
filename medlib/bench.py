"""Small benchmarks. ``python -m medlib.bench preprocess [--n 2048] [--size 28] [--image-size 224]``

prints the throughput (images/s) of the batched :func:`medlib.preprocess.to_model_input` and of
open_clip's per-image PIL preprocess on the same uint8 images, and their ratio.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import open_clip
import torch

from .preprocess import open_clip_preprocess, pil_reference, to_model_input


def _images(n: int, size: int, seed: int, rgb: bool) -> np.ndarray:
    """Smooth random images (blurred noise), closer to real scans than white noise."""
    rng = np.random.default_rng(seed)
    shape = (n, size, size, 3) if rgb else (n, size, size)
    x = rng.random(shape, dtype=np.float32)
    for axis in (1, 2):  # cheap box blur along both spatial axes
        x = (x + np.roll(x, 1, axis) + np.roll(x, -1, axis)) / 3.0
    return (x * 255).clip(0, 255).astype(np.uint8)


def _time(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` runs (after one warm-up run)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return best


def bench_preprocess(n: int = 2048, size: int = 28, image_size: int = 224, batch_size: int = 256,
                     device: str = "cpu", rgb: bool = False, repeats: int = 3, seed: int = 0) -> dict[str, float]:
    """Throughputs (images/s) of the batched and the PIL preprocess, and their ratio."""
    dev = torch.device(device)
    images = _images(n, size, seed, rgb)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    pil = open_clip_preprocess(image_size, mean, std)

    def batched() -> None:
        for i in range(0, n, batch_size):
            to_model_input(images[i:i + batch_size], image_size, mean, std, dev)

    def per_image() -> None:
        for i in range(0, n, batch_size):
            pil_reference(images[i:i + batch_size], pil).to(dev)

    t_b = _time(batched, dev, repeats)
    t_p = _time(per_image, dev, max(1, repeats - 2))
    return {"n": n, "size": size, "image_size": image_size, "device": str(dev), "threads": torch.get_num_threads(),
            "batched_img_s": n / t_b, "pil_img_s": n / t_p, "ratio": t_p / t_b}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlib.bench", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    p = sub.add_parser("preprocess", help="batched tensor preprocess vs open_clip's PIL preprocess")
    p.add_argument("--n", type=int, default=2048, help="number of images")
    p.add_argument("--size", type=int, default=28, help="input image side (px)")
    p.add_argument("--image-size", type=int, default=224, help="model input side (px)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--rgb", action="store_true", help="RGB instead of grayscale images")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    r = bench_preprocess(args.n, args.size, args.image_size, args.batch_size, args.device, args.rgb, args.repeats)
    kind = "RGB" if args.rgb else "gray"
    print(f"preprocess {r['n']} {kind} images {r['size']}px -> {r['image_size']}px on {r['device']} "
          f"({r['threads']} torch threads)")
    print(f"  medlib.preprocess.to_model_input (batched): {r['batched_img_s']:,.0f} images/s")
    print(f"  open_clip PIL preprocess (per image):       {r['pil_img_s']:,.0f} images/s")
    print(f"  ratio (batched / PIL): {r['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
