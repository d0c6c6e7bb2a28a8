"""Project the real full run's wall time and memory from a rehearsal (``reports/<profile>-rehearsal/``).

Per notebook, from what the rehearsal measured on this device:

* every trained run (``runs/<rehearsal>/<run>/log.csv``): its measured training throughput (images/s, the
  engine's own number) x the images the real run trains on (the real training-set size of its dataset x the
  full profile's epochs for that notebook; k-shot runs: k x classes per epoch, at least
  ``few_shot_min_steps`` batches), plus one validation pass per epoch at the measured per-image evaluation
  time (linear probes and LP-FT: plus one forward pass over the training set, whose features the head trains
  on); times the number of real runs it stands for (the full profile's seeds for a method in ``seeded_methods``,
  one for few-shot draws and ablations; the rehearsal trains one seed);
* every evaluation (``metrics/*.json``): the real test-set size x the measured per-image evaluation time of
  its model (:func:`measure_eval`: the image tower's forward pass on this device; without it, the runs'
  epoch-0 validation passes of the same model, or the slowest such time where a model has none);
* the rest of the notebook's rehearsal wall time (kernel start, model loading, plots, report) as is;
* the disk the real run leaves under ``runs/`` (``runs_gb``): each rehearsal run's files with ``best.pt`` at its
  uncompressed size (:func:`run_bytes`; the architecture's real tensors, and only where the profile's
  ``keep_weights`` keeps them), times the runs it stands for.

Upper bound: early stopping (``patience``) may end runs sooner, and best.pt packs below its uncompressed size.
Peak memory: the largest resident set of the notebook's kernel on CPU (sampled by the runner), or
``torch.cuda.max_memory_allocated`` where the kernel reported it.
"""

from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Profile

# Real split sizes (train, val, test) of the full profile's datasets.
REAL_SIZES: dict[str, tuple[int, int, int]] = {
    "pneumoniamnist": (4708, 524, 624),  # MedMNIST v2
    "chestmnist": (78468, 11219, 22433),  # MedMNIST v2 (the ChestX-ray14 stand-in)
    "chestxray14": (78468, 11219, 22433),  # as ChestMNIST (NIH's official split is 86,524 / 25,596 test)
    "pubmedvision": (2867, 410, 819),  # 4,096 sampled pairs split 70/10/20
    "mimic_cxr": (368960, 2991, 5159),  # MIMIC-CXR-JPG official split (only when configured)
    "flickr30k": (29000, 1014, 1000),  # Karpathy split
    "coco": (113287, 5000, 5000),  # Karpathy split
}
COLUMNS = ["notebook", "rehearsal_s", "trained_runs", "evaluations", "train_images", "eval_images",
           "projected_s", "projected_h", "runs_gb", "peak_memory_mb", "memory_kind", "device"]


def _parts(run: str) -> dict[str, str]:
    bits = run.split("__")
    keys = ("notebook", "dataset", "model", "method")
    return {k: (bits[i] if i < len(bits) else "") for i, k in enumerate(keys)}


def _epochs(full: Profile, notebook: str, dataset: str, method: str) -> tuple[int, int]:
    """(epochs, batch size) the real run uses for a trained run of ``notebook``."""
    nn = notebook[:2]
    if nn == "03":
        t = full.caption_finetune.train
    elif nn == "04":
        lf = full.label_finetune
        t = lf.multilabel_train if dataset in lf.multilabel_datasets else lf.train
        if "probe" in method and "lp" not in method.replace("probe", ""):
            return lf.probe_epochs, t.batch_size
        if "lp" in method:
            return lf.probe_epochs + t.epochs, t.batch_size
    elif nn == "05":
        t = full.imbalance.train
    elif nn == "06" and method == "supervised":
        return full.sota.cnn_epochs, full.sota.cnn_batch_size
    elif nn == "06":  # the domain model's label / multi-label fine-tunes
        lf = full.label_finetune
        t = lf.multilabel_train if "multilabel" in method else lf.train
    elif nn == "07":
        t = full.retrieval_study.train
    else:
        return 1, 128
    return t.epochs, t.batch_size


def _seed_kind(notebook: str, method: str) -> str:
    """The ``seeded_methods`` entry a trained run's method belongs to (as the notebooks call ``pipeline.seeds``);
    few-shot draws and ablations are not repeated per seed."""
    nn = notebook[:2]
    if re.search(r"\d+shot", method):
        return "few_shot"
    if nn == "03":
        return "caption_ft" if method == "caption-ft-plain" else "ablation"
    if nn == "04":
        return {"label-ft": "label_ft", "linear-probe": "linear_probe", "lp-ft": "lp_ft",
                "multilabel-ft": "multilabel_ft"}.get(method, "other")
    if nn == "05":
        return "remedies"
    if nn == "06":
        return "cnn" if method == "supervised" else "sota_domain"
    if nn == "07":
        return "retrieval_ft"
    return "other"


def _repeats(rehearsal: Profile, full: Profile, kind: str) -> float:
    """How many runs of the real profile one rehearsal run of ``kind`` stands for: its seeds / the rehearsal's, and
    for a few-shot run its draws / the rehearsal's."""
    n_full = len(full.seed_list) if kind in full.seeded_methods else 1
    n_reh = len(rehearsal.seed_list) if kind in rehearsal.seeded_methods else 1
    if kind == "few_shot":
        n_full, n_reh = full.label_finetune.shot_draws, rehearsal.label_finetune.shot_draws
    return n_full / max(n_reh, 1)


def _retrieval_sizes(trained: list[dict[str, Any]], rehearsal: Profile, full: Profile) -> list[dict[str, Any]]:
    """Notebook 07's arms at the real profile's training sizes: a rehearsed ``ft-nall-<aug>`` arm (same code, same
    throughput) stands for each size the rehearsal did not train; its dropped weights leave the log alone."""
    have = set(rehearsal.retrieval_study.train_sizes)
    out = []
    for t in trained:
        out.append(t)
        m = re.fullmatch(r"ft-nall-([a-z]+)", t["method"])
        if t["notebook"].startswith("07") and m:
            for n in [n for n in full.retrieval_study.train_sizes if n not in have]:
                out.append({**t, "method": f"ft-n{n}-{m.group(1)}", "run": f"{t['run']} (as n={n})",
                            "bytes": t.get("log_bytes", 0), "stand_in": True})
    return out


def run_bytes(folder: Path) -> int:
    """Bytes a finished run keeps under runs/: the size of its files (``best.pt`` holds the architecture's real
    tensors, plain, as the real run writes them)."""
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _classes(dataset: str) -> int:
    return {"pneumoniamnist": 2, "chestmnist": 14, "chestxray14": 14, "pubmedvision": 5}.get(dataset, 2)


def _split_sizes(reports: Path) -> dict[str, tuple[int, int, int]]:
    try:
        df = pd.read_csv(reports / "tables" / "data_summary.csv")
        return {r["dataset"]: (int(r["train"]), int(r["val"]), int(r["test"])) for _, r in df.iterrows()}
    except (OSError, KeyError, ValueError):
        return {}


def measure_eval(profile: Profile, batch: int = 16, repeats: int = 2) -> dict[str, float]:
    """Seconds per image of each model's image tower (forward, no grad) at its input size on the profile's
    device, as the evaluations run it (bf16 autocast on CUDA); best of ``repeats`` after a warm-up."""
    import time

    import torch

    from ..models import load_model, resolve_device

    device = resolve_device(profile.device)
    out: dict[str, float] = {}
    for spec in profile.models:
        quiet = logging.getLogger("medlib.models")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # "RANDOM INIT" is the point here
        try:
            b = load_model(spec, device, seed=profile.seed)
        finally:
            quiet.setLevel(level)
        x = torch.randn(batch, 3, b.image_size, b.image_size, device=device)
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                        enabled=False)
        best = float("inf")
        with torch.inference_mode(), ctx:
            for i in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                b.model.encode_image(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i:
                    best = min(best, time.perf_counter() - t0)
        out[spec.name] = best / batch
        del b
    return out


def project(rehearsal: Profile, full: Profile, eval_s_per_image: dict[str, float] | None = None) -> pd.DataFrame:
    """One row per notebook of the rehearsal: measured and projected seconds, peak memory."""
    reports, runs = rehearsal.reports_path, rehearsal.runs_path
    manifest = json.loads((reports / "manifest.json").read_text())
    sizes = _split_sizes(reports)
    real = dict(REAL_SIZES)
    for d in full.datasets:  # a dataset the profile skips (MIMIC-CXR without a path) costs nothing
        if d.source == "mimic_cxr" and not d.path:
            real[d.name] = (0, 0, 0)
    # measured training throughput and per-image evaluation time, per run
    trained: list[dict[str, Any]] = []
    eval_s_per_img: dict[str, list[float]] = {}
    logs = [(log, log.parent) for log in runs.glob("*/log.csv")]
    logs += [(log, log.parent.parent) for log in runs.glob("*/ft/log.csv")]  # LP-FT: the probe, then ft/ (timed)
    for log, folder in sorted(logs):
        run = folder.name
        p = _parts(run)
        try:
            df = pd.read_csv(log)
        except (OSError, ValueError):
            continue
        ep = df[df["epoch"] >= 1]
        ips = float(ep["images_per_s"].median()) if len(ep) else math.nan
        n_val = sizes.get(p["dataset"], (0, 0, 0))[1]
        row0 = df[df["epoch"] == 0]
        if len(row0) and n_val:
            eval_s_per_img.setdefault(p["model"], []).append(float(row0["seconds"].iloc[0]) / n_val)
        kind = _seed_kind(p["notebook"], p["method"])
        trained.append({**p, "run": run, "images_per_s": ips, "measured_s": float(df["seconds"].sum()),
                        "repeats": _repeats(rehearsal, full, kind), "bytes": run_bytes(folder),
                        "log_bytes": log.stat().st_size})
    trained = _retrieval_sizes(trained, rehearsal, full)
    per_img = {m: sorted(v)[len(v) // 2] for m, v in eval_s_per_img.items()}
    per_img.update(eval_s_per_image or {})  # a direct measurement wins over one taken from validation passes
    fallback = max(per_img.values()) if per_img else 0.0
    evals: list[dict[str, Any]] = []
    for f in sorted((reports / "metrics").glob("*.json")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        evals.append({**_parts(rec.get("run", f.stem)), "n": int(rec.get("n") or 0)})
    rows = []
    device = manifest.get("device", {}).get("gpu") or manifest.get("device", {}).get("processor") or "cpu"
    for stem, info in sorted(manifest.get("notebooks", {}).items()):
        wall = float(info.get("seconds", 0.0))
        nb_trained = [t for t in trained if t["notebook"] == stem]
        nb_evals = [e for e in evals if e["notebook"] == stem]
        nb_evals += [{**t, "n": 0} for t in nb_trained if t.get("stand_in")]  # a stand-in arm's test evaluation
        measured_compute, projected, train_images, eval_images, runs_bytes = 0.0, 0.0, 0, 0, 0.0
        for t in nb_trained:
            epochs, batch = _epochs(full, stem, t["dataset"], t["method"])
            n_train, n_val, _ = real.get(t["dataset"], sizes.get(t["dataset"], (0, 0, 0)))
            shot = re.search(r"(\d+)-?shot", t["method"])
            per_epoch = min(n_train, int(shot.group(1)) * _classes(t["dataset"])) if shot else n_train
            images = per_epoch * epochs
            if shot:
                images = max(images, full.label_finetune.few_shot_min_steps * batch)
            size = re.search(r"ft-n(\d+)-", t["method"])
            if stem.startswith("07") and size:  # a training-size arm: its first n images
                images = min(n_train, int(size.group(1))) * epochs
            if stem.startswith("07"):
                images = max(images, full.retrieval_study.min_steps * batch)
            s_img = per_img.get(t["model"], fallback)
            ips = t["images_per_s"] if t["images_per_s"] and not math.isnan(t["images_per_s"]) else 0.0
            features = per_epoch * s_img if "probe" in t["method"] or "lp" in t["method"] else 0.0  # cached once
            seeds = t["repeats"]
            projected += seeds * ((images / ips if ips else 0.0) + n_val * epochs * s_img + features)
            measured_compute += 0.0 if t.get("stand_in") else t["measured_s"]
            train_images += int(images * seeds)
            runs_bytes += t["bytes"] * seeds
        for e in nb_evals:
            n_test = real.get(e["dataset"], (0, 0, e["n"]))[2]
            s_img = per_img.get(e["model"], fallback)
            times = e.get("repeats") or _repeats(rehearsal, full, _seed_kind(stem, e["method"].removesuffix("-retrieval")))
            projected += times * n_test * s_img
            measured_compute += e["n"] * s_img
            eval_images += int(times * n_test)
        overhead = max(0.0, wall - measured_compute)
        total = projected + overhead
        peak, kind = info.get("peak_gpu_mb"), "gpu max_memory_allocated"
        if not peak:
            peak, kind = info.get("peak_rss_mb"), "cpu peak RSS"
        rows.append({"notebook": stem, "rehearsal_s": round(wall, 1),
                     "trained_runs": sum(not t.get("stand_in") for t in nb_trained),
                     "evaluations": len(nb_evals), "train_images": train_images, "eval_images": eval_images,
                     "projected_s": round(total), "projected_h": round(total / 3600, 2),
                     "runs_gb": round(runs_bytes / 1e9, 2),
                     "peak_memory_mb": peak if peak else "", "memory_kind": kind if peak else "", "device": device})
    table = pd.DataFrame(rows, columns=COLUMNS)
    if len(table):
        total = {"notebook": "TOTAL", "rehearsal_s": round(table["rehearsal_s"].sum(), 1),
                 "trained_runs": int(table["trained_runs"].sum()), "evaluations": int(table["evaluations"].sum()),
                 "train_images": int(table["train_images"].sum()), "eval_images": int(table["eval_images"].sum()),
                 "projected_s": int(table["projected_s"].sum()),
                 "projected_h": round(table["projected_s"].sum() / 3600, 2),
                 "runs_gb": round(float(table["runs_gb"].sum()), 2),
                 "peak_memory_mb": max([v for v in table["peak_memory_mb"] if v != ""], default=""),
                 "memory_kind": "", "device": device}
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table


def write(rehearsal: Profile, table: pd.DataFrame) -> Path:
    from ..files import write_text
    from .rehearsal import NOTICE

    out = table.copy()
    out.insert(0, "rehearsal", NOTICE)
    return write_text(rehearsal.reports_path / "projection.csv", out.to_csv(index=False))


def render(table: pd.DataFrame, full: Profile) -> str:
    """The projection as console text."""
    lines = [f"Projected wall time of the real `{full.name}` run on this device ({len(full.seed_list)} seed(s) for "
             f"{', '.join(full.seeded_methods)}; upper bound, early stopping may end runs sooner) and what it "
             f"leaves under runs/ (keep_weights: {full.keep_weights}; best.pt counted uncompressed):"]
    for _, r in table.iterrows():
        mem = f", peak {r['peak_memory_mb']} MB ({r['memory_kind']})" if r["peak_memory_mb"] not in ("", None) and \
            r["memory_kind"] else ""
        lines.append(f"  {r['notebook']:<28} {_hms(float(r['projected_s'])):>10}  {float(r['runs_gb']):7.2f} GB  "
                     f"(rehearsal {float(r['rehearsal_s']):.0f} s{mem})")
    return "\n".join(lines)


def _hms(seconds: float) -> str:
    h, rem = divmod(int(round(seconds)), 3600)
    m, s = divmod(rem, 60)
    return f"{h:d} h {m:02d} min" if h else f"{m:d} min {s:02d} s"


def main(argv: list[str] | None = None) -> int:
    """``python -m medlib.run.projection [--profile full] [--data-dir DIR]``: (re)write and print the projection
    from the last rehearsal's outputs (also after a partial rehearsal: the notebooks it finished)."""
    import argparse
    import sys

    from ..config import load_profile
    from ..errors import MedlibError
    from .rehearsal import NAME_SUFFIX

    ap = argparse.ArgumentParser(prog="python -m medlib.run.projection", description=main.__doc__.splitlines()[0])
    ap.add_argument("--profile", default="full")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args(argv)
    try:
        full = load_profile(args.profile, data_dir=args.data_dir)
        path = Path(full.data_dir) / "rehearsal" / f"{full.name}{NAME_SUFFIX}.yaml"
        if not path.is_file():
            raise MedlibError(f"{path}: no rehearsal of profile {full.name!r}. Fix: ./run_all.sh --profile "
                              f"{args.profile} --rehearse")
        rehearsal = load_profile(path, data_dir=path.parent)
        if not (rehearsal.reports_path / "manifest.json").is_file():
            raise MedlibError(f"{rehearsal.reports_path / 'manifest.json'}: missing. Fix: run the rehearsal first")
        table = project(rehearsal, full, measure_eval(rehearsal))
        out = write(rehearsal, table)
    except MedlibError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    print(render(table, full))
    print(f"projection: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
