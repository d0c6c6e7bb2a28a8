"""Small benchmarks.

``python -m tools.bench preprocess [--n 2048] [--size 28] [--image-size 224]`` prints the throughput
(images/s) of the batched :func:`medlib.models.preprocess.to_model_input` and of open_clip's per-image PIL preprocess
on the same uint8 images, and their ratio.

``python -m tools.bench prepare [--n 48] [--workers 0] [--split-n 50000]``: images/s of today's sequential
decoding and of the pooled reduced-size decoding on generated NIH-size PNGs and MIMIC-size JPEGs, and the time and
peak RSS to open and iterate a memory-mapped prepared split (:mod:`tools.bench_data`).

``python -m tools.bench train [--arch ViT-B-32] [--device cuda] [--batch-size 256] [--steps 20] [--nproc N]
[--warmup 2] [--pool N] [--json FILE]`` times
training steps of a randomly initialised model (label mode: image tower + linear head, cross-entropy; and
contrastive mode: both towers, CLIP loss) with the engine's precision rule (bf16 autocast on CUDA), split into
input preparation (uint8 -> normalised tensor on the device, augmentation) and compute, so it says which limits
throughput. ``--nproc N`` runs it under torchrun with DistributedDataParallel (the global batch split over N GPUs):
images/s on 1 and on N GPUs give the scaling efficiency. It also counts the training FLOPs per sample (torch's
FlopCounterMode, forward x 3), from which :mod:`tools.gpu_check` derives the MFU.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import open_clip
import torch

from medlib.models.preprocess import open_clip_preprocess, pil_reference, to_model_input


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


def train_flops_per_sample(model: torch.nn.Module, image_size: int, tokens: torch.Tensor | None,
                           device: torch.device) -> float:
    """Training FLOPs per sample, counted: torch's FlopCounterMode over one forward pass of one sample (the image
    tower, plus the text tower when ``tokens`` is given), times 3 (backward ~ 2x forward). torch counts a
    multiply-add as 2 FLOPs; open_clip's model table (4.4 "GFLOPs" for ViT-B-32's image tower) counts it as 1."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, image_size, image_size, device=device)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.encode_image(x)
        if tokens is not None:
            model.encode_text(tokens[:1])
    return 3.0 * counter.get_total_flops()


def bench_train(arch: str = "medclip-tiny", device: str = "cpu", batch_size: int = 128, steps: int = 10,
                size: int = 224, precision: str = "auto", mode: str = "label", seed: int = 0,
                warmup: int = 2, pool: int = 0) -> dict[str, float]:
    """Images/s of ``steps`` training steps after ``warmup`` warm-up steps; seconds spent preparing inputs vs
    computing. ``pool`` images (default: one batch) are generated and cycled through batch by batch, so with
    ``pool > batch_size`` every step copies new images to the device, as a real epoch does."""
    from medlib.models.augment import augment_batch
    from medlib.config import ModelSpec
    from medlib.train.losses import clip_loss
    from medlib.models import load_model
    from medlib.models.zeroshot import autocast, resolve_precision

    dev = torch.device(device)
    # under torchrun (python -m tools.bench train --nproc N): DDP over N processes, batch_size is the global batch
    world, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    if world > 1:
        import torch.distributed as dist

        if dev.type == "cuda":
            dev = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        if batch_size % world:
            raise SystemExit(f"bench train: --batch-size {batch_size} is not divisible by --nproc {world}")
    local = batch_size // world
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    bundle = load_model(ModelSpec(name="bench", arch=arch), dev, seed=seed)
    model = bundle.model.train()
    gen = torch.Generator(device="cpu").manual_seed(seed)
    # the same generator as the files bench_openclip writes: its first ``pool`` images are these. Each step
    # gathers its rows from the pool in a shuffled order (a copy), as the engine gathers from a prepared split.
    pool_n = max(pool, local)
    images = _images(pool_n, size, seed + rank, rgb=False)
    order = np.random.default_rng(seed).permutation(pool_n)
    n_batches = pool_n // local
    labels = torch.randint(0, 10, (local,), generator=gen).to(dev)
    head = torch.nn.Linear(model.visual.output_dim if hasattr(model.visual, "output_dim") else 512, 10).to(dev)
    tokens = bundle.tokenizer([f"a chest X-ray showing finding {i % 10}." for i in range(local)]).to(dev)
    opt = torch.optim.AdamW(list(model.parameters()) + list(head.parameters()), lr=1e-5)
    step_model, step_head = model, head
    if world > 1:  # the engine's DDP set-up: gradients averaged across processes
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dev.index] if dev.type == "cuda" else None
        # label mode runs no text tower: its parameters get no gradient, which DDP must be told
        step_model = DDP(model, device_ids=ids, find_unused_parameters=mode != "contrastive")
        step_head = DDP(head, device_ids=ids)
    prep_s = compute_s = 0.0

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    flops = train_flops_per_sample(model, bundle.image_size, tokens if mode == "contrastive" else None, dev)
    for step in range(steps + warmup):
        sync()
        t0 = time.perf_counter()
        b = step % n_batches
        x = to_model_input(images[order[b * local:(b + 1) * local]], bundle.image_size, bundle.mean, bundle.std, dev)
        x = augment_batch(x, gen, bundle.mean, bundle.std)
        sync()
        t1 = time.perf_counter()
        with autocast(dev, precision):
            if mode == "contrastive":
                img_f, txt_f, scale = step_model(x, tokens)[:3]
                loss = clip_loss(img_f, txt_f, scale, rank=rank, world_size=world)
            else:
                feats = torch.nn.functional.normalize(step_model(x, None)[0].float(), dim=-1)
                loss = torch.nn.functional.cross_entropy(step_head(feats), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sync()
        t2 = time.perf_counter()
        if step >= warmup:  # warm-up excluded
            prep_s += t1 - t0
            compute_s += t2 - t1
    total = prep_s + compute_s
    return {"arch": arch, "device": str(dev), "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "",
            "precision": resolve_precision(dev, precision), "mode": mode, "batch_size": batch_size, "steps": steps,
            "processes": world, "rank": rank, "warmup": warmup, "pool": pool_n * world,
            "image_size": bundle.image_size, "img_s": steps * batch_size / total, "seconds": total,
            "train_flops_per_sample": flops,
            "prep_share": prep_s / total, "compute_share": compute_s / total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__.splitlines()[0])
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
    t = sub.add_parser("train", help="training-step throughput, input preparation vs compute")
    t.add_argument("--arch", default="medclip-tiny", help="open_clip architecture (random init), e.g. ViT-B-32")
    t.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    t.add_argument("--batch-size", type=int, default=128)
    t.add_argument("--steps", type=int, default=10)
    t.add_argument("--size", type=int, default=224, help="stored image side (px) before resizing to the model's")
    t.add_argument("--precision", default="auto", help="auto (bf16 on CUDA) | fp32 | bf16")
    t.add_argument("--mode", default="label", choices=["label", "contrastive"])
    t.add_argument("--nproc", type=int, default=1, help="processes (GPUs) under torchrun + DDP; --batch-size is global")
    t.add_argument("--threads", type=int, default=0)
    t.add_argument("--warmup", type=int, default=2, help="warm-up steps, not timed")
    t.add_argument("--pool", type=int, default=0,
                   help="generated images cycled through batch by batch (default: one batch, reused every step)")
    t.add_argument("--json", default=None, help="also write the result as JSON to this file")
    d = sub.add_parser("prepare", help="data preparation: sequential vs pooled reduced decoding; memory-mapped split")
    d.add_argument("--n", type=int, default=48, help="generated files per format")
    d.add_argument("--size", type=int, default=224, help="prepared image side (px)")
    d.add_argument("--workers", type=int, default=0, help="decoding processes (0 = every core)")
    d.add_argument("--split-n", type=int, default=50_000, help="images in the memory-mapped split (0 = skip)")
    d.add_argument("--batch-size", type=int, default=256)
    d.add_argument("--workdir", default=None, help="where to write the generated files (default: the temp dir)")
    args = ap.parse_args(argv)
    if args.what == "prepare":
        from .bench_data import print_report, run

        print_report(run(args.n, args.size, args.workers, args.split_n, args.batch_size, args.workdir), args.size)
        return 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.what == "train" and args.nproc > 1 and "RANK" not in os.environ:  # relaunch under torchrun
        import subprocess
        import sys

        rest = [a for a in (argv if argv is not None else sys.argv[1:])]
        i = rest.index("--nproc")
        rest = rest[:i] + rest[i + 2:]
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "tools.bench", *rest]
        return subprocess.call(cmd)
    if args.what == "train":
        r = bench_train(args.arch, args.device, args.batch_size, args.steps, args.size, args.precision, args.mode,
                        warmup=args.warmup, pool=args.pool)
        if r["rank"] != 0:
            return 0
        if args.json:
            from medlib.files import write_json

            write_json(args.json, r)
        where = f"{r['device']} {r['gpu']}".strip() + (f" x {r['processes']} processes" if r["processes"] > 1 else "")
        print(f"train {r['mode']} {r['arch']} ({r['image_size']}px) global batch {r['batch_size']} on {where}, "
              f"{r['precision']}: {r['img_s']:,.1f} images/s")
        print(f"  input preparation {100 * r['prep_share']:.0f}% / compute {100 * r['compute_share']:.0f}% of step time"
              f" -> limited by {'input preparation' if r['prep_share'] > 0.5 else 'compute'}")
        return 0
    r = bench_preprocess(args.n, args.size, args.image_size, args.batch_size, args.device, args.rgb, args.repeats)
    kind = "RGB" if args.rgb else "gray"
    print(f"preprocess {r['n']} {kind} images {r['size']}px -> {r['image_size']}px on {r['device']} "
          f"({r['threads']} torch threads)")
    print(f"  medlib.models.preprocess.to_model_input (batched): {r['batched_img_s']:,.0f} images/s")
    print(f"  open_clip PIL preprocess (per image):       {r['pil_img_s']:,.0f} images/s")
    print(f"  ratio (batched / PIL): {r['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
