"""open_clip's own training script as the reference for the engine's training throughput.

``python -m tools.bench_openclip data --out DIR [--n 2048] [--size 224]`` writes the images
:func:`tools.bench.bench_train` trains on (the same generator, same seed) as JPEG files and a CSV
(``filepath``, ``title``) in open_clip's CSV layout.

``python -m tools.bench_openclip run --csv DIR/train.csv --arch ViT-B-32 --batch-size 128 --epochs 4
--precision amp_bf16 --workers 12 --json FILE --log FILE`` runs ``python -m open_clip_train.main`` on it (random
weights, no ``--pretrained``, logging every step), parses the images/s it logs and writes them as JSON. For
medlib's registered tiny configs (``medclip-tiny``, open_clip cannot build them by name) the same
``open_clip_train.main.main`` runs through ``python -m tools.bench_openclip train ARGS`` after the configs are
registered; every other architecture runs open_clip's script unchanged.
"""

from __future__ import annotations

import argparse
import csv
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medlib.errors import MedlibError

# open_clip_train/train.py logs, per logged step:
# "Train Epoch: 0 [ 256/2048 (12%)] Data (t): 0.101 Batch (t): 0.512, 250.123/s, 250.123/s/gpu LR: ..."
# the first rate is that one step's samples/s over all GPUs (batch_size * world / the step's seconds).
_STEP = re.compile(r"Train Epoch: (?P<epoch>\d+) \[\s*(?P<seen>\d+)/(?P<total>\d+) \(\s*\d+%\)\] "
                   r"Data \(t\): (?P<data>[\d.]+) Batch \(t\): (?P<batch_avg>[\d.]+), "
                   r"(?P<rate>[\d.eE+-]+)/s, (?P<rate_gpu>[\d.eE+-]+)/s/gpu")


def write_image_csv(folder: str | Path, n: int = 2048, size: int = 224, seed: int = 0) -> Path:
    """``n`` grayscale JPEGs of side ``size`` (the images ``bench_train`` generates with this seed) and
    ``train.csv`` with their paths and a caption each; returns the CSV's path."""
    from PIL import Image

    from .bench import _images
    from medlib.files import atomic_path

    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, img in enumerate(_images(n, size, seed, rgb=False)):
        path = folder / "images" / f"{i:05d}.jpg"
        Image.fromarray(img, mode="L").save(path, quality=95)
        rows.append({"filepath": str(path.resolve()), "title": f"a chest X-ray showing finding {i % 10}."})
    out = folder / "train.csv"
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["filepath", "title"])
        w.writeheader()
        w.writerows(rows)
    return out


def needs_wrapper(arch: str) -> bool:
    """True for medlib's registered configs, which open_clip_train.main cannot build by name on its own."""
    from medlib.models import TINY_ARCHS

    return arch in TINY_ARCHS


def openclip_command(csv_path: str | Path, arch: str, batch_size: int, epochs: int, precision: str, workers: int,
                     logs: str | Path, name: str = "openclip-ref", python: str = sys.executable,
                     seed: int = 0) -> list[str]:
    """The command line of open_clip's training script on the CSV (random init, log every step)."""
    entry = ["-m", "tools.bench_openclip", "train"] if needs_wrapper(arch) else ["-m", "open_clip_train.main"]
    return [python, *entry,
            "--train-data", str(csv_path), "--dataset-type", "csv", "--csv-separator", ",",
            "--csv-img-key", "filepath", "--csv-caption-key", "title",
            "--model", arch, "--batch-size", str(batch_size), "--epochs", str(epochs),
            "--precision", precision, "--workers", str(workers), "--lr", "1e-5", "--wd", "0.1",
            "--warmup", "1", "--seed", str(seed), "--log-every-n-steps", "1", "--report-to", "",
            "--logs", str(logs), "--name", name]


def parse_log(text: str, batch_size: int, warmup_epochs: int = 1) -> dict[str, float]:
    """Images/s from open_clip_train's log: every step of the epochs after the first ``warmup_epochs``, except
    each epoch's first step (it waits for the data loader's workers to restart, which open_clip's CSV loader
    does every epoch: a cost a 2,048-image epoch inflates far beyond a real dataset's). Each logged step's
    seconds are ``batch_size / its samples/s``; images/s is images over the sum of those seconds. Also the
    median step's images/s and the mean data-wait share (``Data (t)`` over ``Batch (t)``, running averages)."""
    steps = [m.groupdict() for m in _STEP.finditer(text)]
    if not steps:
        raise MedlibError("open_clip_train log: no 'Train Epoch: ... /s/gpu' step lines. Fix: read the log for "
                          "its error (the run failed before training) or check open_clip_train's log format")
    epochs = sorted({int(s["epoch"]) for s in steps})
    measured_epochs = epochs[warmup_epochs:] if len(epochs) > warmup_epochs else epochs[-1:]
    first_of_epoch = {e: min(int(s["seen"]) for s in steps if int(s["epoch"]) == e) for e in epochs}
    kept = [s for s in steps if int(s["epoch"]) in measured_epochs and int(s["seen"]) != first_of_epoch[int(s["epoch"])]]
    if not kept:  # a one-step epoch: keep what there is
        kept = [s for s in steps if int(s["epoch"]) in measured_epochs]
    seconds = [batch_size / float(s["rate_gpu"]) for s in kept]
    rates = sorted(float(s["rate"]) for s in kept)
    last = steps[-1]
    return {"img_s": batch_size * len(kept) / sum(seconds), "median_step_img_s": rates[len(rates) // 2],
            "steps_measured": len(kept), "steps_logged": len(steps), "epochs": len(epochs),
            "measured_epochs": measured_epochs,
            "data_wait_share": float(last["data"]) / float(last["batch_avg"]) if float(last["batch_avg"]) else 0.0}


def run(csv_path: str | Path, arch: str, batch_size: int, epochs: int, precision: str, workers: int,
        log_path: str | Path, timeout: float | None = None, warmup_epochs: int = 1) -> dict:
    """Run open_clip's training script, keep its log at ``log_path``, return the parsed throughput."""
    from medlib.files import write_text

    work = Path(tempfile.mkdtemp(prefix="openclip-ref-"))
    cmd = openclip_command(csv_path, arch, batch_size, epochs, precision, workers, work / "logs")
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
        output, rc = proc.stdout, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or ""
        output, rc = (out.decode(errors="replace") if isinstance(out, bytes) else out), 124
    wall = time.perf_counter() - t0
    shutil.rmtree(work, ignore_errors=True)  # its final checkpoint (GBs for ViT-B-32 with AdamW state)
    write_text(log_path, "$ " + shlex.join(cmd) + "\n" + output)
    if rc != 0 and not _STEP.search(output):
        tail = output.strip().splitlines()[-1] if output.strip() else "(no output)"
        raise MedlibError(f"open_clip_train exited {rc} before logging a step: {tail}. Fix: see {log_path}")
    r = parse_log(output, batch_size, warmup_epochs)
    r.update({"arch": arch, "batch_size": batch_size, "precision": precision, "workers": workers,
              "epochs_requested": epochs, "rc": rc, "wall_s": wall, "command": shlex.join(cmd)})
    return r


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:  # open_clip_train.main with medlib's configs registered
        from open_clip_train.main import main as openclip_main

        from medlib import models  # noqa: F401  (registers medlib/model_configs with open_clip)

        return openclip_main(argv[1:]) or 0
    ap = argparse.ArgumentParser(prog="python -m tools.bench_openclip", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data", help="write the bench images as JPEG files and a CSV")
    d.add_argument("--out", required=True)
    d.add_argument("--n", type=int, default=2048)
    d.add_argument("--size", type=int, default=224)
    d.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="run open_clip_train.main on the CSV and parse its images/s")
    r.add_argument("--csv", required=True)
    r.add_argument("--arch", default="ViT-B-32")
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--epochs", type=int, default=4)
    r.add_argument("--precision", default="amp_bf16", help="open_clip_train's --precision (amp_bf16 | fp32 ...)")
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--warmup-epochs", type=int, default=1)
    r.add_argument("--timeout", type=float, default=None, help="seconds")
    r.add_argument("--json", required=True)
    r.add_argument("--log", required=True)
    args = ap.parse_args(argv)
    try:
        if args.what == "data":
            print(write_image_csv(args.out, args.n, args.size, args.seed))
            return 0
        from medlib.files import write_json

        res = run(args.csv, args.arch, args.batch_size, args.epochs, args.precision, args.workers, args.log,
                  args.timeout, args.warmup_epochs)
        write_json(args.json, res)
    except MedlibError as exc:
        print(f"bench_openclip: {exc}", file=sys.stderr)
        return 2
    print(f"open_clip_train {res['arch']} batch {res['batch_size']} {res['precision']}, {res['workers']} workers: "
          f"{res['img_s']:,.1f} images/s ({res['steps_measured']} steps after warm-up; exit {res['rc']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
