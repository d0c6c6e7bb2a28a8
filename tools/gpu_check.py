"""The GPU check's numbers: MFU from a peak-throughput table, and ``summary.md`` (``scripts/gpu_check.sh``).

``python -m tools.gpu_check summary --out DIR [--peak-tflops T] [--cpu-dry-run] [--env FILE]`` reads what the
check wrote to ``DIR`` (``engine.json`` from ``python -m tools.bench train --json``, ``openclip.json`` from
``python -m tools.bench_openclip run``, ``steps.tsv`` with each step's exit code, seconds and command,
``projection.csv`` from the rehearsal) and writes ``DIR/summary.md``: the GPU, both trainers' images/s, their
ratio, the engine's MFU, the rehearsal's exit code and wall time and its projection. Missing pieces are
written as missing, never guessed.

MFU is given two ways, both from the engine's measured images/s:

* **counted**: training FLOPs per sample counted by torch's ``FlopCounterMode`` on the benchmarked model (forward
  of the image tower, and of the text tower in contrastive mode, times 3; a multiply-add is 2 FLOPs);
* **issue convention**: a fixed 13.2 GFLOP per image for ViT-B-32 (open_clip's table value of 4.4 for the
  image tower's forward, times 3). open_clip's table counts a multiply-add as one FLOP and leaves out the
  text tower, so this convention gives roughly a third of the counted MFU for contrastive training.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

#: dense bf16 tensor-core peak, TFLOP/s, by a substring of torch.cuda.get_device_name(); the first match wins,
#: so the more specific names come first. From NVIDIA's data sheets (dense, i.e. without 2:4 sparsity).
PEAK_BF16_TFLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.0),  # SXM (e.g. "NVIDIA H100 80GB HBM3")
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
]
#: the issue's convention: ViT-B/32 ~ 4.4 GFLOP per 224 px image forward (open_clip's table), training ~ 3x
CONVENTION_GFLOP_PER_IMAGE = {"ViT-B-32": 4.4 * 3}


def peak_tflops(device_name: str, override: float | None = None) -> float | None:
    """The GPU's dense bf16 peak (TFLOP/s): ``override`` if given, else the table's first match, else None."""
    if override:
        return float(override)
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def mfu(img_s: float, flop_per_image: float, peak_tflops_: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak (None when the peak is unknown)."""
    if not peak_tflops_ or not flop_per_image or img_s <= 0:
        return None
    return img_s * flop_per_image / (peak_tflops_ * 1e12)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_steps(path: Path) -> dict[str, tuple[int, float, str]]:
    """``steps.tsv`` (``name<TAB>exit code<TAB>seconds[<TAB>command]`` per line) -> {name: (rc, seconds, command)};
    the last line of a name wins."""
    out: dict[str, tuple[int, float, str]] = {}
    try:
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) >= 3:
                out[parts[0]] = (int(parts[1]), float(parts[2]), parts[3] if len(parts) > 3 else "")
    except (OSError, ValueError):
        pass
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _step_line(name: str, steps: dict[str, tuple[int, float, str]]) -> str:
    if name not in steps:
        return "not run"
    rc, s, _ = steps[name]
    what = {0: "ok", 124: "TIMED OUT", 137: "KILLED (timeout)"}.get(rc, "FAILED")
    return f"exit {rc} ({what}), {s:.0f} s"


def projection_table(path: Path) -> list[str]:
    """projection.csv as Markdown rows: notebook, projected time, peak memory."""
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    lines = ["| notebook | rehearsal s | projected h | runs GB | peak memory MB | memory | device |",
             "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r.get('notebook', '')} | {r.get('rehearsal_s', '')} | {r.get('projected_h', '')} | "
                     f"{r.get('runs_gb', '')} | {r.get('peak_memory_mb', '')} | {r.get('memory_kind', '')} | "
                     f"{r.get('device', '')} |")
    return lines


def summarize(out: Path, peak_override: float | None = None, cpu_dry_run: bool = False, env: str = "") -> str:
    """The text of ``summary.md`` from the files the check wrote to ``out``."""
    engine = _read_json(out / "engine.json")
    ref = _read_json(out / "openclip.json")
    steps = read_steps(out / "steps.tsv")
    device = (engine or {}).get("gpu") or (engine or {}).get("device") or "unknown"
    lines = ["# GPU check" + (" — CPU DRY RUN (tests the script; NOT a GPU result)" if cpu_dry_run else ""), ""]
    if cpu_dry_run:
        lines += ["**CPU dry run**: tiny model, a few steps, on CPU. These numbers test that the check runs end "
                  "to end; they say nothing about GPU throughput.", ""]
    lines += [f"- device: {device}"]
    if "total" in steps:
        lines.append(f"- the check's wall time: {steps['total'][1]:.0f} s")
    lines += [f"- {line}" for line in env.strip().splitlines()]
    lines.append("")
    lines += ["## Training throughput (random weights, contrastive, same images and batch size)", ""]
    e_s = engine["img_s"] if engine else None
    r_s = ref["img_s"] if ref else None
    if engine:
        lines.append(f"- engine (`python -m tools.bench train`): **{e_s:,.1f} images/s** — {engine['arch']} "
                     f"{engine['image_size']} px, {engine['mode']}, batch {engine['batch_size']}, "
                     f"{engine['precision']}, {engine['steps']} timed steps after {engine.get('warmup', 2)} warm-up; "
                     f"input preparation {100 * engine['prep_share']:.0f}% of step time "
                     f"({_step_line('engine', steps)})")
    else:
        lines.append(f"- engine: no result ({_step_line('engine', steps)}; see engine.log)")
    if ref:
        lines.append(f"- open_clip's script (`open_clip_train.main`, CSV of JPEG files, {ref['workers']} workers): "
                     f"**{r_s:,.1f} images/s** — {ref['arch']}, batch {ref['batch_size']}, {ref['precision']}, "
                     f"{ref['steps_measured']} logged steps of epochs {ref['measured_epochs']} (each epoch's first "
                     f"step and the warm-up epoch left out); median step {ref['median_step_img_s']:,.1f} images/s; "
                     f"data wait {100 * ref['data_wait_share']:.0f}% of step time "
                     f"({_step_line('openclip', steps)})")
    else:
        lines.append(f"- open_clip's script: no result ({_step_line('openclip', steps)}; see logs/openclip.log in logs.tar.gz)")
    if e_s and r_s:
        lines.append(f"- ratio engine / open_clip: **{e_s / r_s:.2f}x**")
        if cpu_dry_run:
            lines.append("- (a CPU dry run's ratio is no comparison: a tiny model for a few steps, on shared cores)")
        elif abs(e_s / r_s - 1) <= 0.05:
            lines.append("- within 5%: on par (run-to-run differences are of that order)")
        elif e_s < r_s:
            share = engine["prep_share"]
            where = ("look at input preparation first (pinned memory, non-blocking copies, the next batch prepared "
                     "while the current step runs)" if share > 0.3 else
                     "input preparation is not the limit: compare the compute (kernels, precision, optimizer)")
            lines.append(f"- the engine is slower: input preparation (uint8 gather, host-to-device copy, resize, "
                         f"augmentation; each step synchronised) takes {100 * share:.0f}% of its step time; {where}")
    lines.append("- inputs differ by design: the engine gathers uint8 images from memory (as from its prepared "
                 "splits) and resizes on the device; open_clip decodes the JPEG files in its data-loader workers.")
    lines.append("")
    if engine:
        peak = None if cpu_dry_run else peak_tflops(device, peak_override)
        counted = engine.get("train_flops_per_sample")
        conv = CONVENTION_GFLOP_PER_IMAGE.get(engine["arch"])
        lines += ["## Engine MFU", ""]
        if cpu_dry_run:
            lines.append("- not computed on CPU (no tensor-core peak to compare with)")
        elif peak is None:
            lines.append(f"- unknown peak for '{device}': rerun the summary with `--peak-tflops T` "
                         "(dense bf16 TFLOP/s from the GPU's data sheet)")
        else:
            lines.append(f"- peak {peak:,.0f} TFLOP/s dense bf16 ({'override' if peak_override else 'table'})")
            if counted:
                lines.append(f"- counted ({counted / 1e9:.1f} GFLOP per training sample, torch FlopCounterMode, "
                             f"image{' + text' if engine['mode'] == 'contrastive' else ''} tower x 3): "
                             f"**{_pct(mfu(e_s, counted, peak))}**")
            if conv:
                lines.append(f"- issue convention ({conv:.1f} GFLOP per image = 4.4 x 3, open_clip's MAC count of the "
                             f"image tower only): {_pct(mfu(e_s, conv * 1e9, peak))}")
        lines.append("")
    lines += ["## Full-profile rehearsal on this device", ""]
    if cpu_dry_run:
        lines.append("- skipped in the CPU dry run")
    else:
        command = steps.get("rehearsal", (0, 0.0, ""))[2] or "./run_all.sh --profile full --rehearse"
        lines.append(f"- `{command}`: {_step_line('rehearsal', steps)} (log: logs/rehearsal.log in logs.tar.gz)")
        table = projection_table(out / "projection.csv")
        if table:
            lines += ["", "Projected wall time of the real full run on this device (projection.csv; REHEARSAL — "
                      "random weights, capped steps):", "", *table]
        else:
            lines.append("- no projection.csv (the rehearsal did not reach its end; see logs/rehearsal.log in logs.tar.gz)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.gpu_check", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("summary", help="write DIR/summary.md from the check's outputs")
    s.add_argument("--out", required=True)
    s.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak (TFLOP/s)")
    s.add_argument("--cpu-dry-run", action="store_true")
    s.add_argument("--env", default=None, help="a text file about the machine (versions, nvidia-smi), quoted as is")
    args = ap.parse_args(argv)
    from medlib.files import write_text

    out = Path(args.out)
    env = Path(args.env).read_text(errors="replace") if args.env and Path(args.env).is_file() else ""
    text = summarize(out, args.peak_tflops, args.cpu_dry_run, env)
    write_text(out / "summary.md", text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
