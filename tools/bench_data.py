"""``python -m tools.bench prepare``: the data layer at scale, on generated files (nothing is downloaded).

1. Decoding: writes ``--n`` 1024x1024 8-bit PNGs (as NIH ChestX-ray14 ships them) and ``--n`` 2544x3056 JPEGs of
   about 1 MB (as MIMIC-CXR-JPG ships them), then prepares each set at ``--size`` px twice in one run: today's
   path (one process, full decode + resize) and the new one (reduced-size decoding in a process pool of
   ``--workers``; the workers' start-up is timed, the fork server's one-time start per process is not), and
   prints images/s of both and their ratio. Both are timed in one fresh ``python -m tools.bench_data``
   process, whose main module is light like a notebook kernel's (multiprocessing re-imports the main module
   in every worker, and ``tools.bench`` imports torch).
2. A prepared split of ``--split-n`` x size x size (50,000 x 224 x 224 = 2.5 GB by default) is written in the
   store's format; a fresh process opens it (time, peak RSS) and iterates it once in batches of
   ``--batch-size`` (time, peak and final RSS). The file is likely in the page cache after writing: the pass
   measures the data layer, not the disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from medlib.data import decode
from medlib.data.decode import ImageFiles


def _film(rng: np.random.Generator, h: int, w: int, noise: float) -> np.ndarray:
    """A chest-film-like 8-bit image (smooth anatomy, two lung fields, fine noise)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32) / max(h, w)
    a, b = rng.uniform(3, 8, 2)
    img = 0.5 + 0.25 * np.sin(a * x) * np.cos(b * y)
    for cx in (rng.uniform(.3, .4), rng.uniform(.6, .7)):
        img += rng.choice([-.3, .3]) * ((((x - cx) / .15) ** 2 + ((y - .5) / .3) ** 2) < 1)
    img += rng.normal(0, noise, (h, w)).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_images(folder: Path, n: int, fmt: str, seed: int = 0) -> list[Path]:
    """``n`` generated files: PNG 1024x1024 or JPEG 2544x3056 (quality 90, ~1 MB)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = []
    from PIL import Image

    for i in range(n):
        if fmt == "png":
            arr, kw = _film(rng, 1024, 1024, 0.02), {}
        else:
            arr, kw = _film(rng, 3056, 2544, 0.01), {"quality": 90}
        p = folder / f"{i:05d}.{fmt}"
        Image.fromarray(arr).save(p, **kw)
        out.append(p)
    return out


def bench_decode(paths: list[Path], size: int, workers: int) -> dict[str, float]:
    """images/s of today's sequential full decode and of the new pooled reduced decode, same files, same run.

    Run it in a process whose main module is light (:func:`_bench_decode_in_child`): multiprocessing re-imports
    the caller's ``python -m`` main module in every pool worker, and ``tools.bench`` imports torch and open_clip
    (seconds per worker, which a notebook kernel's workers do not pay).
    """
    _warm_forkserver()
    t0, c0 = time.perf_counter(), time.process_time()
    old = np.stack([decode.decode_file(p, size, rgb=False, reduced=False) for p in paths])
    t_old, c_old = time.perf_counter() - t0, time.process_time() - c0
    keep = decode.PARALLEL_MIN
    decode.PARALLEL_MIN = 0  # the pool even for a small benchmark set (the workers' start-up is timed too)
    try:
        t0 = time.perf_counter()
        new = ImageFiles(paths, size, False, "bench", workers=workers).decode()
        t_new = time.perf_counter() - t0
    finally:
        decode.PARALLEL_MIN = keep
    # the CPU time each path spends per image, in this one process: what other processes' load does not change
    c0 = time.process_time()
    ImageFiles(paths, size, False, "bench", workers=1).decode()
    c_new = time.process_time() - c0
    mad = float(np.abs(old.astype(np.int16) - new.astype(np.int16)).mean())
    return {"n": len(paths), "old_img_s": len(paths) / t_old, "new_img_s": len(paths) / t_new,
            "ratio": t_old / t_new, "mean_abs_diff": mad, "workers": decode.worker_count(workers),
            "old_cpu_ms": 1000 * c_old / len(paths), "new_cpu_ms": 1000 * c_new / len(paths)}


def _bench_decode_in_child(folder: Path, size: int, workers: int) -> dict[str, float]:
    """:func:`bench_decode` on the files in ``folder``, in a fresh ``python -m tools.bench_data`` process."""
    out = subprocess.run([sys.executable, "-m", __name__, "decode", str(folder), str(size), str(workers)],
                         env=_env(), capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"decoding benchmark failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    """This process's environment with this checkout first on PYTHONPATH (for the child processes)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}


def write_split(path: Path, n: int, size: int, chunk: int = 2048) -> None:
    """A prepared images file of n x size x size in the store's format (random bytes, written in chunks)."""
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, size, size))
    rng = np.random.default_rng(0)
    block = rng.integers(0, 256, (chunk, size, size), dtype=np.uint8)
    for i in range(0, n, chunk):
        k = min(chunk, n - i)
        mm[i:i + k] = block[:k]
    mm.flush()
    del mm


_PROBE = r"""
import json, sys, time
from pathlib import Path
def _status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
def rss_mb():
    return _status("VmRSS")
def peak_mb():  # VmHWM: this process's peak RSS (getrusage's ru_maxrss would carry the parent's over exec)
    return _status("VmHWM")
from medlib.data import store
folder, split, bs = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
base = rss_mb()
t0 = time.perf_counter(); images = store.open_images(folder, split); t_open = time.perf_counter() - t0
after_open = {"rss_mb": rss_mb(), "peak_mb": peak_mb()}
t0 = time.perf_counter(); total = 0
for batch in store.iter_batches(images, bs):
    total += int(batch[:, 0, 0].sum())
t_pass = time.perf_counter() - t0
print(json.dumps({"n": len(images), "base_rss_mb": base, "open_s": t_open, "open": after_open,
                  "pass_s": t_pass, "pass_peak_mb": peak_mb(), "pass_end_rss_mb": rss_mb(), "checksum": total}))
"""


def bench_split(folder: Path, n: int, size: int, batch_size: int) -> dict[str, float]:
    t0 = time.perf_counter()
    write_split(folder / "train_images.npy", n, size)
    t_write = time.perf_counter() - t0
    out = subprocess.run([sys.executable, "-c", _PROBE, str(folder), "train", str(batch_size)], env=_env(),
                         capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r.update(write_s=t_write, gb=n * size * size / 1e9, batch_size=batch_size)
    return r


def _warm_forkserver() -> None:
    """Start the decode pool's fork server and wait until it has preloaded its modules, and import what
    :meth:`ImageFiles.decode` imports (once per Python process, like a notebook kernel's first preparation), so
    the timing compares decoding, not one-time starts, and the server's imports do not run beside the timed
    sequential path."""
    import os as _os
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=decode.pool_context()) as ex:
        ex.submit(_os.getpid).result()
    ImageFiles([], 8, False, "bench").decode()  # its own imports (tqdm.auto: ~30 ms), loaded in a notebook already


def run(n: int = 48, size: int = 224, workers: int = 0, split_n: int = 50_000, batch_size: int = 256,
        workdir: str | None = None) -> dict:
    with tempfile.TemporaryDirectory(dir=workdir, prefix="medlib-bench-") as tmp:
        root = Path(tmp)
        res: dict = {"cores": decode.worker_count(0), "load_before": os.getloadavg()[0]}
        for fmt, what in (("png", "PNG 1024x1024 8-bit (NIH layout)"), ("jpg", "JPEG 2544x3056 (MIMIC-CXR-JPG)")):
            paths = write_images(root / fmt, n, fmt)
            mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
            res[fmt] = {**_bench_decode_in_child(root / fmt, size, workers), "what": what, "mb_per_file": mb}
        res["load_after"] = os.getloadavg()[0]
        if split_n > 0:
            (root / "split").mkdir()
            res["split"] = bench_split(root / "split", split_n, size, batch_size)
    return res


def print_report(r: dict, size: int) -> None:
    print(f"prepare: {r['cores']} core(s) available; 1-minute load average {r['load_before']:.1f} before the "
          f"decoding runs, {r['load_after']:.1f} after (above ~0.5 other processes compete, and Linux shares the cores "
          "per busy session: the pool then gets little more CPU than one process)")
    for fmt in ("png", "jpg"):
        d = r[fmt]
        print(f"  {d['what']}, {d['n']} files of {d['mb_per_file']:.2f} MB -> {size}px:")
        print(f"    today (1 process, full decode + resize): {d['old_img_s']:7.1f} images/s")
        print(f"    new ({d['workers']} workers, reduced decode):       {d['new_img_s']:7.1f} images/s")
        print(f"    ratio new/today: {d['ratio']:.2f}x   (mean |difference| {d['mean_abs_diff']:.2f} grey levels)")
        work = d["old_cpu_ms"] / d["new_cpu_ms"]
        print(f"    CPU per image: today {d['old_cpu_ms']:.1f} ms, reduced decode {d['new_cpu_ms']:.1f} ms "
              f"({work:.2f}x less work; on {d['workers']} idle cores the pool's ceiling is {work * d['workers']:.1f}x)")
    if "split" in r:
        s = r["split"]
        print(f"  prepared split {s['n']:,} x {size} x {size} ({s['gb']:.2f} GB, written in {s['write_s']:.1f} s):")
        print(f"    open (memory map): {s['open_s'] * 1000:.1f} ms, RSS {s['open']['rss_mb']:.0f} MB "
              f"(interpreter + numpy {s['base_rss_mb']:.0f} MB), peak {s['open']['peak_mb']:.0f} MB")
        print(f"    one pass in batches of {s['batch_size']}: {s['pass_s']:.1f} s "
              f"({s['n'] / s['pass_s']:,.0f} images/s), peak RSS {s['pass_peak_mb']:.0f} MB, "
              f"RSS after the pass {s['pass_end_rss_mb']:.0f} MB")


if __name__ == "__main__":  # python -m tools.bench_data decode FOLDER SIZE WORKERS (run by run(); prints JSON)
    _, what, folder, size, workers = sys.argv
    assert what == "decode", what
    print(json.dumps(bench_decode(sorted(Path(folder).iterdir()), int(size), int(workers))))
