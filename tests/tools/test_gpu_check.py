"""The GPU check (scripts/gpu_check.sh): open_clip log parsing, FLOP counting, MFU, summary, and its CPU dry run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tools.bench_openclip import parse_log, write_image_csv
from medlib.errors import MedlibError
from tools.gpu_check import mfu, peak_tflops, summarize

REPO = Path(__file__).resolve().parents[2]

# open_clip_train's own log lines (open_clip 3.3, --log-every-n-steps 1), batch 16, 2 epochs of 4 steps
LOG = """\
2026-11-26,11:34:41 | INFO | Running with a single process. Device cpu.
2026-11-26,11:34:43 | INFO | Train Epoch: 0 [16/64 (25%)] Data (t): 0.059 Batch (t): 1.527, 10.4794/s, 10.4794/s/gpu LR: 0.000010 Logit Scale: 14.286 Contrastive_loss: 2.9038 (2.9038) Loss: 2.9038 (2.9038)
2026-11-26,11:34:43 | INFO | Train Epoch: 0 [32/64 (50%)] Data (t): 0.015 Batch (t): 0.710, 22.5394/s, 22.5394/s/gpu LR: 0.000010 Logit Scale: 14.286 Contrastive_loss: 2.9203 (2.9121) Loss: 2.9203 (2.9121)
2026-11-26,11:34:44 | INFO | Train Epoch: 0 [48/64 (75%)] Data (t): 0.009 Batch (t): 0.658, 24.3093/s, 24.3093/s/gpu LR: 0.000010 Logit Scale: 14.285 Contrastive_loss: 2.8630 (2.8957) Loss: 2.8630 (2.8957)
2026-11-26,11:34:44 | INFO | Train Epoch: 0 [64/64 (100%)] Data (t): 0.011 Batch (t): 0.327, 48.9924/s, 48.9924/s/gpu LR: 0.000008 Logit Scale: 14.285 Contrastive_loss: 2.8381 (2.8813) Loss: 2.8381 (2.8813)
2026-11-26,11:34:47 | INFO | Train Epoch: 1 [16/64 (25%)] Data (t): 0.052 Batch (t): 2.432, 6.58014/s, 6.58014/s/gpu LR: 0.000006 Logit Scale: 14.285 Contrastive_loss: 2.8317 (2.8317) Loss: 2.8317 (2.8317)
2026-11-26,11:34:47 | INFO | Train Epoch: 1 [32/64 (50%)] Data (t): 0.007 Batch (t): 0.446, 35.8658/s, 35.8658/s/gpu LR: 0.000004 Logit Scale: 14.285 Contrastive_loss: 2.7972 (2.8145) Loss: 2.7972 (2.8145)
2026-11-26,11:34:48 | INFO | Train Epoch: 1 [48/64 (75%)] Data (t): 0.010 Batch (t): 0.392, 40.8367/s, 40.8367/s/gpu LR: 0.000002 Logit Scale: 14.285 Contrastive_loss: 2.8474 (2.8254) Loss: 2.8474 (2.8254)
2026-11-26,11:34:48 | INFO | Train Epoch: 1 [64/64 (100%)] Data (t): 0.007 Batch (t): 0.212, 75.4176/s, 75.4176/s/gpu LR: 0.000000 Logit Scale: 14.285 Contrastive_loss: 2.8460 (2.8306) Loss: 2.8460 (2.8306)
"""


def test_parse_log_times_the_steps_after_warm_up_and_leaves_out_each_epochs_first_step():
    r = parse_log(LOG, batch_size=16)
    kept = [35.8658, 40.8367, 75.4176]  # epoch 1 without its first step (the data loader's restart)
    assert r["steps_measured"] == 3 and r["steps_logged"] == 8 and r["measured_epochs"] == [1]
    # images over the sum of the steps' seconds, each step's seconds = 16 / its rate
    assert r["img_s"] == pytest.approx(3 * 16 / sum(16 / x for x in kept))
    assert r["median_step_img_s"] == pytest.approx(40.8367)
    assert r["data_wait_share"] == pytest.approx(0.007 / 0.212)


def test_parse_log_without_step_lines_is_a_one_line_error():
    with pytest.raises(MedlibError, match="no 'Train Epoch"):
        parse_log("Traceback (most recent call last):\nModuleNotFoundError: No module named 'braceexpand'\n", 16)


def test_peak_table_matches_specific_names_first_and_takes_an_override():
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("Some Future GPU") is None
    assert peak_tflops("Some Future GPU", override=500) == 500.0
    assert mfu(1000.0, 13.2e9, 989.0) == pytest.approx(1000 * 13.2e9 / 989e12)
    assert mfu(1000.0, 13.2e9, None) is None


def test_counted_flops_of_vit_b_32_are_twice_open_clips_table_value():
    """open_clip's table gives ViT-B-32's image tower 4.4 GFLOPs: multiply-adds. torch counts 2 FLOPs each."""
    import open_clip
    import torch

    from tools.bench import train_flops_per_sample

    model = open_clip.create_model("ViT-B-32")
    image = train_flops_per_sample(model, 224, None, torch.device("cpu")) / 3
    assert image / 1e9 == pytest.approx(2 * 4.4, rel=0.02)
    tokens = open_clip.get_tokenizer("ViT-B-32")(["a chest X-ray"])
    both = train_flops_per_sample(model, 224, tokens, torch.device("cpu")) / 3
    assert (both - image) / 1e9 == pytest.approx(5.8, rel=0.05)  # the text tower at 77 tokens


def test_bench_train_cycles_a_pool_of_the_written_images_and_counts_the_text_tower_in_contrastive_mode(tmp_path):
    from tools.bench import bench_train

    label = bench_train("medclip-tiny", "cpu", batch_size=4, steps=2, size=28, mode="label", warmup=1, pool=12)
    con = bench_train("medclip-tiny", "cpu", batch_size=4, steps=2, size=28, mode="contrastive", warmup=1, pool=12)
    assert label["pool"] == 12 and label["warmup"] == 1
    assert con["train_flops_per_sample"] > label["train_flops_per_sample"] > 0
    # the files open_clip reads are the bench's images
    import numpy as np
    from PIL import Image

    from tools.bench import _images

    csv_path = write_image_csv(tmp_path, n=3, size=28)
    lines = csv_path.read_text().splitlines()
    assert lines[0] == "filepath,title" and len(lines) == 4
    first = np.asarray(Image.open(lines[1].split(",")[0]))
    assert np.abs(first.astype(int) - _images(3, 28, 0, rgb=False)[0]).mean() < 3  # JPEG quality 95


def _write_outputs(out: Path, rehearsal_rc: int = 0) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "engine.json").write_text(json.dumps({
        "arch": "ViT-B-32", "device": "cuda:0", "gpu": "NVIDIA H100 80GB HBM3", "precision": "bf16",
        "mode": "contrastive", "batch_size": 128, "steps": 100, "warmup": 5, "image_size": 224, "img_s": 3000.0,
        "train_flops_per_sample": 43.6e9, "prep_share": 0.1, "compute_share": 0.9}))
    (out / "openclip.json").write_text(json.dumps({
        "img_s": 2500.0, "median_step_img_s": 2600.0, "steps_measured": 60, "measured_epochs": [1, 2, 3, 4],
        "data_wait_share": 0.2, "arch": "ViT-B-32", "batch_size": 128, "precision": "amp_bf16", "workers": 12}))
    (out / "steps.tsv").write_text(f"data\t0\t4.0\nengine\t0\t40.2\nopenclip\t0\t70.5\n"
                                   f"rehearsal\t{rehearsal_rc}\t300.0\t./run_all.sh --profile full --rehearse --device cuda\n"
                                   "total\t0\t421\n")
    (out / "projection.csv").write_text(
        "rehearsal,notebook,rehearsal_s,trained_runs,evaluations,train_images,eval_images,projected_s,projected_h,"
        "runs_gb,peak_memory_mb,memory_kind,device\n"
        "R,04_label_finetune,36.1,85,97,4703520,91697,5337,1.48,12.5,8782,cuda max allocated,NVIDIA H100 80GB HBM3\n")


def test_summary_gives_both_throughputs_the_ratio_the_mfu_and_the_rehearsal(tmp_path):
    _write_outputs(tmp_path, rehearsal_rc=124)
    text = summarize(tmp_path, env="torch 2.11.0 cuda 13.0 open_clip 3.3.0\n")
    assert "NVIDIA H100 80GB HBM3" in text and "- torch 2.11.0 cuda 13.0 open_clip 3.3.0" in text
    assert "**3,000.0 images/s**" in text and "**2,500.0 images/s**" in text
    assert "**1.20x**" in text
    assert f"**{100 * 3000 * 43.6e9 / 989e12:.1f}%**" in text  # counted: 13.2%
    assert f"{100 * 3000 * 13.2e9 / 989e12:.1f}%" in text  # issue convention: 4.0%
    assert "`./run_all.sh --profile full --rehearse --device cuda`: exit 124 (TIMED OUT), 300 s" in text
    assert "wall time: 421 s" in text
    assert "the engine is slower" not in text  # 3,000 > 2,500 images/s
    ref = json.loads((tmp_path / "openclip.json").read_text())
    (tmp_path / "openclip.json").write_text(json.dumps({**ref, "img_s": 4000.0}))
    slower = summarize(tmp_path)
    assert "the engine is slower" in slower and "input preparation is not the limit" in slower  # 10% preparation
    (tmp_path / "openclip.json").write_text(json.dumps({**ref, "img_s": 3100.0}))
    par = summarize(tmp_path)
    assert "**0.97x**" in par and "on par" in par and "the engine is slower" not in par
    assert "| 04_label_finetune | 36.1 | 1.48 | 12.5 | 8782 |" in text
    assert "DRY RUN" not in text


def test_summary_says_what_is_missing_and_labels_a_cpu_dry_run(tmp_path):
    _write_outputs(tmp_path)
    (tmp_path / "openclip.json").unlink()
    (tmp_path / "projection.csv").unlink()
    text = summarize(tmp_path)
    assert "open_clip's script: no result" in text and "ratio engine / open_clip" not in text
    assert "no projection.csv" in text
    _write_outputs(tmp_path / "dry")
    dry = summarize(tmp_path / "dry", cpu_dry_run=True)
    assert "CPU DRY RUN" in dry and "not computed on CPU" in dry and "no comparison" in dry
    assert "%" not in dry.split("## Engine MFU")[1].split("## Full")[0]  # no MFU from a CPU run


@pytest.mark.slow  # both trainers on CPU for a few steps (~1 min on a loaded 2-core machine)
def test_cpu_dry_run_runs_both_trainers_end_to_end(tmp_path):
    pytest.importorskip("braceexpand", reason="open_clip_train needs it: pip install -e '.[gpu-check]'")
    pytest.importorskip("webdataset", reason="open_clip_train needs it: pip install -e '.[gpu-check]'")
    env = dict(os.environ, OUT=str(tmp_path / "out"), MEDLIB_PYTHON=sys.executable)
    p = subprocess.run(["bash", "scripts/gpu_check.sh", "--cpu-dry-run"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    out = tmp_path / "out"
    steps = dict(line.split("\t")[:2] for line in (out / "steps.tsv").read_text().splitlines())
    assert steps == {"data": "0", "engine": "0", "openclip": "0", "total": "0"}
    # what a device call brings back: at most 8 files, the logs packed in one
    assert sorted(p.name for p in out.iterdir()) == ["engine.json", "logs.tar.gz", "openclip.json", "steps.tsv",
                                                     "summary.md"]
    assert json.loads((out / "engine.json").read_text())["img_s"] > 0
    assert json.loads((out / "openclip.json").read_text())["steps_measured"] >= 1
    summary = (out / "summary.md").read_text()
    assert "CPU DRY RUN" in summary and "ratio engine / open_clip" in summary
