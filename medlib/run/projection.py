"""Project the real full run's wall time, compute, disk and memory from a rehearsal (``reports/<profile>-rehearsal/``).

Per notebook it counts what the notebooks' code runs for the real profile (:func:`run_plan` calls the code's own
epoch and step rules: ``few_shot_config``, the retrieval study's ``train_config``; :func:`_evaluation`) and times
it with the rehearsal's measurements on this device: each trained run's training throughput (``log.csv``), the
towers' per-image and per-caption encoding times and forward FLOPs (:func:`measure_eval`,
``torch.utils.flop_counter.FlopCounterMode``). The rules, with their assumptions, are :data:`ASSUMPTIONS` (written
beside ``projection.csv`` as ``projection_assumptions.md``). ``tflop`` and ``implied_tflop_s`` (= ``tflop`` /
projected compute seconds) let the projection be checked against the device's peak by arithmetic. Disk
(``runs_gb``): each rehearsal run's files as stored (:func:`run_bytes`; ``best.pt`` only where the profile's
``keep_weights`` keeps it), times the runs it stands for. Upper bound: early stopping may end runs sooner. Peak memory: the kernel's largest resident set on CPU
(sampled by the runner), or ``torch.cuda.max_memory_allocated`` where the kernel reported it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from ..config import Profile
from .measure import measure_eval, run_bytes

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
CAPTIONS_PER_IMAGE = {"flickr30k": 5, "coco": 5}  # Karpathy splits; the medical sets have one report/caption each
COLUMNS = ["notebook", "rehearsal_s", "trained_runs", "evaluations", "train_images", "val_images", "eval_images",
           "captions", "projected_s", "projected_h", "tflop", "implied_tflop_s", "runs_gb", "peak_memory_mb",
           "memory_kind", "device"]
ASSUMPTIONS = """# Assumptions of projection.csv (medlib.run.projection: what the real profile's code runs, timed here)

- Training: the real training set (a k-shot run: k x classes images; a retrieval-study arm: its first n images) x
  the epochs the run really takes: the profile's epochs, stretched to the step floors (few_shot_min_steps for
  k-shot runs, min_steps for the retrieval study's small arms), with no early stopping (an upper bound).
  Contrastive epochs drop the last partial batch. Timed at the rehearsed run's measured images/s.
- Validation: one pass per epoch plus the epoch-0 pass before training (the ResNet baseline: one per epoch, no
  epoch 0). Notebook 07 encodes every validation caption (five per image) in each pass. k-shot runs validate on
  their own k-shot validation subset. Linear probes (and LP-FT's probe stage) encode their training and
  validation images once; the head then trains on cached features (counted as free).
- Evaluation: the test split once per real run (and the validation split where the run scores it); retrieval
  evaluations encode every caption of each test image. Notebook 03's retrieval evaluations run for the first
  seed only; k-shot runs once per draw; trained runs once per seed where the method is seeded.
- Encoding times: the image tower's and text tower's measured seconds per image / caption (forward pass, no
  grad); without a text measurement a caption costs what an image does.
- Compute: a trained tower costs 3x its forward FLOPs per example (forward + backward), a frozen or encoding-only
  tower 1x; forward FLOPs from torch's FlopCounterMode on one batch per model and tower. Label-mode runs use the
  image tower only (the text tower builds the head once); label-generated captions count one per image (an upper
  bound: the engine encodes each distinct prompt of a batch once). implied_tflop_s = tflop / projected compute s.
- Overhead: rehearsal wall time not explained by its measured compute (kernel start, loading, plots) is added.
"""


def _parts(run: str) -> dict[str, str]:
    bits = run.split("__")
    keys = ("notebook", "dataset", "model", "method")
    return {k: (bits[i] if i < len(bits) else "") for i, k in enumerate(keys)}


def run_plan(full: Profile, notebook: str, dataset: str, method: str,
             sizes: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """What one real run of ``method`` in ``notebook`` does (the code's own epoch and step rules): ``epochs``,
    ``train_images`` (images through training steps), ``train_captions`` (captions through the text tower in
    training), ``val_images`` / ``val_captions`` (forward passes of validation, and a probe's feature pass),
    ``image_trained`` / ``text_trained`` (which towers training back-propagates through), ``tower`` (``clip`` or
    ``cnn``). ``sizes``: the real (train, val, test) sizes (default :data:`REAL_SIZES`)."""
    from ..studies.few_shot import few_shot_config
    from ..train.variants import probe_config
    from ..studies.general_retrieval import AUGMENTATIONS, Arm, train_config

    n_train, n_val, _ = sizes or REAL_SIZES.get(dataset, (0, 0, 0))
    nn, lf = notebook[:2], full.label_finetune
    plan = {"epochs": 0, "train_images": 0, "train_captions": 0, "val_images": 0, "val_captions": 0,
            "image_trained": True, "text_trained": False, "tower": "clip"}
    if nn == "06" and method == "supervised":  # the ResNet baseline: every epoch, validated after each
        e = full.sota.cnn_epochs
        return {**plan, "epochs": e, "train_images": n_train * e, "val_images": n_val * e, "tower": "cnn"}
    contrastive, captions = nn in ("03", "07"), CAPTIONS_PER_IMAGE.get(dataset, 1) if nn == "07" else 0
    shot = re.search(r"(\d+)-?shot", method)
    if nn == "03":
        cfg = full.caption_finetune.train
    elif nn == "07":
        m = re.fullmatch(r"ft-n(\d+|all)-([a-z]+)(?:-([a-z_]+))?", method)
        if not m or m.group(2) not in AUGMENTATIONS:
            return plan
        arm = Arm(0 if m.group(1) == "all" else int(m.group(1)), m.group(2), m.group(3) or "")
        n_train = min(n_train, arm.n_train) if arm.n_train else n_train
        cfg = train_config(full, arm, n_train)
    elif nn in ("04", "05", "06"):
        multi = dataset in lf.multilabel_datasets or "multilabel" in method
        cfg = full.imbalance.train if nn == "05" else lf.multilabel_train if multi else lf.train
        if "probe" in method:
            cfg = probe_config(lf.train, lf.probe_epochs, lf.probe_lr)
    else:
        return plan
    if shot:  # k examples per class in train and validation, stretched to few_shot_min_steps
        n_train, n_val = min(n_train, int(shot.group(1)) * _classes(dataset)), min(n_val, int(shot.group(1)) * _classes(dataset))
        cfg = few_shot_config(cfg, n_train, lf.few_shot_min_steps)
    per_epoch = n_train // cfg.batch_size * cfg.batch_size if contrastive else n_train
    if cfg.lock_image and not contrastive:  # a linear probe: one feature pass, the head trains on cached features
        return {**plan, "epochs": cfg.epochs, "val_images": n_train + n_val, "image_trained": False}
    probe_features = n_train + n_val if method == "lp-ft" else 0  # LP-FT: the probe stage, then this fine-tune
    return {**plan, "epochs": cfg.epochs, "train_images": per_epoch * cfg.epochs,
            "train_captions": per_epoch * cfg.epochs if contrastive else 0,
            "val_images": n_val * (cfg.epochs + 1) + probe_features, "val_captions": n_val * captions * (cfg.epochs + 1),
            "image_trained": not cfg.lock_image, "text_trained": contrastive and not cfg.lock_text}


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


def _classes(dataset: str) -> int:
    return {"pneumoniamnist": 2, "chestmnist": 14, "chestxray14": 14, "pubmedvision": 5}.get(dataset, 2)


def _split_sizes(reports: Path) -> dict[str, tuple[int, int, int]]:
    try:
        df = pd.read_csv(reports / "tables" / "data_summary.csv")
        return {r["dataset"]: (int(r["train"]), int(r["val"]), int(r["test"])) for _, r in df.iterrows()}
    except (OSError, KeyError, ValueError):
        return {}


def project(rehearsal: Profile, full: Profile,
            eval_s_per_image: dict[str, float | dict[str, float]] | None = None) -> pd.DataFrame:
    """One row per notebook of the rehearsal: measured and projected seconds, what the real run encodes and
    trains on, its compute (TFLOP) and peak memory. ``eval_s_per_image``: :func:`measure_eval`'s per-model
    measurements (a bare number: seconds per image of the image tower)."""
    reports, runs = rehearsal.reports_path, rehearsal.runs_path
    manifest = json.loads((reports / "manifest.json").read_text())
    sizes = _split_sizes(reports)
    real = dict(REAL_SIZES)
    # a dataset the profile skips (MIMIC-CXR without a path) costs nothing
    real.update({d.name: (0, 0, 0) for d in full.datasets if d.source == "mimic_cxr" and not d.path})
    # measured training throughput per run, per-image encoding time from epoch-0 validation passes
    trained: list[dict[str, Any]] = []
    eval_s_per_img: dict[str, list[float]] = {}
    logs = [(log, log.parent) for log in runs.glob("*/log.csv")]
    logs += [(log, log.parent.parent) for log in runs.glob("*/ft/log.csv")]  # LP-FT: the probe, then ft/ (timed)
    for log, folder in sorted(logs):
        run, p = folder.name, _parts(folder.name)
        try:
            df = pd.read_csv(log)
        except (OSError, ValueError):
            continue
        ep = df[df["epoch"] >= 1]
        ips = float(ep["images_per_s"].median()) if len(ep) else math.nan
        n_val = sizes.get(p["dataset"], (0, 0, 0))[1]
        row0 = df[df["epoch"] == 0]
        if len(row0) and n_val and not p["notebook"].startswith("07"):  # 07's passes encode captions too
            eval_s_per_img.setdefault(p["model"], []).append(float(row0["seconds"].iloc[0]) / n_val)
        kind = _seed_kind(p["notebook"], p["method"])
        trained.append({**p, "run": run, "images_per_s": ips, "measured_s": float(df["seconds"].sum()),
                        "repeats": _repeats(rehearsal, full, kind), "bytes": run_bytes(folder),
                        "log_bytes": log.stat().st_size})
    trained = _retrieval_sizes(trained, rehearsal, full)
    meas: dict[str, dict[str, float]] = {m: {"image_s": sorted(v)[len(v) // 2]} for m, v in eval_s_per_img.items()}
    for m, v in (eval_s_per_image or {}).items():  # a direct measurement wins over one taken from validation passes
        meas[m] = dict(v) if isinstance(v, dict) else {"image_s": float(v)}
    fallback = max((v["image_s"] for v in meas.values()), default=0.0)

    def cost(model: str, images: float, captions: float, trained_images: float = 0.0, trained_captions: float = 0.0,
             image_factor: int = 1, text_factor: int = 1) -> tuple[float, float]:
        """(seconds to encode ``images`` and ``captions``, FLOPs of all of it; NaN without a FLOP count)."""
        m = meas.get(model, {})
        s_img = m.get("image_s", fallback)
        seconds = images * s_img + captions * m.get("text_s", s_img)
        fi, ft = m.get("image_flops", math.nan), m.get("text_flops", math.nan)
        flops = (images + image_factor * trained_images) * fi
        if captions or trained_captions:
            flops += (captions + text_factor * trained_captions) * ft
        return seconds, flops

    evals: list[dict[str, Any]] = []
    for f in sorted((reports / "metrics").glob("*.json")):
        try:
            rec = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        evals.append({**_parts(rec.get("run", f.stem)), "n": int(rec.get("n") or 0),
                      "n_text": int(rec.get("n_text") or 0), "task": rec.get("task"),
                      "val": "val_metrics" in (rec.get("extra") or {})})
    rows = []
    device = manifest.get("device", {}).get("gpu") or manifest.get("device", {}).get("processor") or "cpu"
    for stem, info in sorted(manifest.get("notebooks", {}).items()):
        wall = float(info.get("seconds", 0.0))
        nb_trained = [t for t in trained if t["notebook"] == stem]
        nb_evals = [e for e in evals if e["notebook"] == stem]
        nb_evals += [{**t, "n": 0, "n_text": 0, "task": "retrieval", "val": False}
                     for t in nb_trained if t.get("stand_in")]  # a stand-in arm's test evaluation
        measured, compute, flops, runs_bytes = 0.0, 0.0, 0.0, 0.0
        counts = {"train_images": 0.0, "val_images": 0.0, "eval_images": 0.0, "captions": 0.0}
        for t in nb_trained:
            plan = run_plan(full, stem, t["dataset"], t["method"], real.get(t["dataset"], sizes.get(t["dataset"])))
            model = "resnet18" if plan["tower"] == "cnn" else t["model"]
            ips = t["images_per_s"] if t["images_per_s"] and not math.isnan(t["images_per_s"]) else 0.0
            seconds, f = cost(model, plan["val_images"], plan["val_captions"], plan["train_images"],
                              plan["train_captions"], 3 if plan["image_trained"] else 1, 3 if plan["text_trained"] else 1)
            seeds = t["repeats"]
            compute += seeds * ((plan["train_images"] / ips if ips else 0.0) + seconds)
            flops += seeds * f
            measured += 0.0 if t.get("stand_in") else t["measured_s"]
            counts["train_images"] += seeds * plan["train_images"]
            counts["val_images"] += seeds * plan["val_images"]
            counts["captions"] += seeds * (plan["train_captions"] + plan["val_captions"])
            runs_bytes += t["bytes"] * seeds
        for e in nb_evals:
            images, captions, times = _evaluation(stem, e, real, rehearsal, full)
            seconds, f = cost(e["model"], images, captions)
            compute += times * seconds
            flops += times * f
            reh_val = sizes.get(e["dataset"], (0, 0, 0))[1] if e["val"] else 0
            measured += cost(e["model"], e["n"] + reh_val, e["n_text"])[0]
            counts["eval_images"] += times * images
            counts["captions"] += times * captions
        total = compute + max(0.0, wall - measured)
        peak, kind = info.get("peak_gpu_mb"), "gpu max_memory_allocated"
        if not peak:
            peak, kind = info.get("peak_rss_mb"), "cpu peak RSS"
        rows.append({"notebook": stem, "rehearsal_s": round(wall, 1),
                     "trained_runs": sum(not t.get("stand_in") for t in nb_trained), "evaluations": len(nb_evals),
                     **{k: int(round(v)) for k, v in counts.items()},
                     "projected_s": round(total), "projected_h": round(total / 3600, 2),
                     "tflop": round(flops / 1e12, 1) if math.isfinite(flops) else "",
                     "implied_tflop_s": round(flops / 1e12 / compute, 3) if math.isfinite(flops) and compute else "",
                     "runs_gb": round(runs_bytes / 1e9, 2),
                     "peak_memory_mb": peak if peak else "", "memory_kind": kind if peak else "", "device": device})
    table = pd.DataFrame(rows, columns=COLUMNS)
    if len(table):
        known = [v for v in table["tflop"] if v != ""]
        total = {"notebook": "TOTAL", "rehearsal_s": round(table["rehearsal_s"].sum(), 1),
                 **{k: int(table[k].sum()) for k in ("trained_runs", "evaluations", "train_images", "val_images",
                                                     "eval_images", "captions", "projected_s")},
                 "projected_h": round(table["projected_s"].sum() / 3600, 2),
                 "tflop": round(sum(known), 1) if len(known) == len(table) else "", "implied_tflop_s": "",
                 "runs_gb": round(float(table["runs_gb"].sum()), 2),
                 "peak_memory_mb": max([v for v in table["peak_memory_mb"] if v != ""], default=""),
                 "memory_kind": "", "device": device}
        table = pd.concat([table, pd.DataFrame([total])], ignore_index=True)
    return table


def _evaluation(stem: str, e: dict[str, Any], real: dict[str, tuple[int, int, int]], rehearsal: Profile,
                full: Profile) -> tuple[int, int, float]:
    """(images, captions, times) of one evaluation in the real run: the test split, the validation split where
    the run scored it (a k-shot run: its k-shot subset), every caption of each test image for retrieval; as often
    as the notebook evaluates it (notebook 03's retrieval: the first seed only)."""
    _, n_val, n_test = real.get(e["dataset"], (0, 0, e["n"]))
    shot = re.search(r"(\d+)-?shot", e["method"])
    images = n_test + (min(n_val, int(shot.group(1)) * _classes(e["dataset"])) if shot else n_val) * bool(e["val"])
    captions = n_test * CAPTIONS_PER_IMAGE.get(e["dataset"], 1) if e.get("task") == "retrieval" else 0
    if e.get("repeats"):  # a stand-in arm: the runs its rehearsed arm stands for
        return images, captions, e["repeats"]
    method = e["method"].removesuffix("-retrieval")
    once = stem.startswith("03") and e["method"].endswith("-retrieval")
    return images, captions, 1.0 if once else _repeats(rehearsal, full, _seed_kind(stem, method))


def write(rehearsal: Profile, table: pd.DataFrame) -> Path:
    """``projection.csv`` (labelled REHEARSAL) and, beside it, ``projection_assumptions.md`` (:data:`ASSUMPTIONS`)."""
    from ..files import write_text
    from .rehearsal import NOTICE

    out = table.copy()
    out.insert(0, "rehearsal", NOTICE)
    write_text(rehearsal.reports_path / "projection_assumptions.md", ASSUMPTIONS)
    return write_text(rehearsal.reports_path / "projection.csv", out.to_csv(index=False))


def render(table: pd.DataFrame, full: Profile) -> str:
    """The projection as console text."""
    lines = [f"Projected wall time of the real `{full.name}` run on this device ({len(full.seed_list)} seed(s) for "
             f"{', '.join(full.seeded_methods)}; upper bound, early stopping may end runs sooner) and what it "
             f"leaves under runs/ (keep_weights: {full.keep_weights}):"]
    for _, r in table.iterrows():
        mem = f", peak {r['peak_memory_mb']} MB ({r['memory_kind']})" if r["peak_memory_mb"] not in ("", None) and \
            r["memory_kind"] else ""
        flop = f"{r['tflop']:>10} TFLOP  " if r.get("tflop", "") not in ("", None) else ""
        lines.append(f"  {r['notebook']:<28} {_hms(float(r['projected_s'])):>10}  {float(r['runs_gb']):7.2f} GB  "
                     f"{flop}(rehearsal {float(r['rehearsal_s']):.0f} s{mem})")
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
