"""The projection counts what the notebooks' code runs: stretched epochs and their validation passes (epoch 0
included, captions encoded in notebook 07), k-shot runs at their real size, LP-FT's probe on cached features,
notebook 03's single retrieval evaluation, and a FLOP count beside the times."""

import json
import math

import pandas as pd
import pytest
import yaml

from medlib.run import measure, projection, rehearsal
from medlib.config import load_profile, profile_path

COCO = (113287, 5000, 5000)
MODEL = "vit-b-32-openai"


@pytest.fixture
def full():
    return load_profile("full")


def _rehearsal(tmp_path, notebook, seconds=1.0):
    tmp_path.mkdir(parents=True, exist_ok=True)
    over = rehearsal.overlay(yaml.safe_load(profile_path("full").read_text()), tmp_path / "data")
    over.update(reports_dir=str(tmp_path / "reports"), runs_dir=str(tmp_path / "runs"))
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(over))
    P = load_profile(tmp_path / "r.yaml")
    (P.reports_path / "metrics").mkdir(parents=True)
    (P.reports_path / "manifest.json").write_text(json.dumps({"notebooks": {notebook: {
        "seconds": seconds, "status": "ok"}}, "device": {"processor": "x86_64"}}))
    return P


def _log(P, run, ips, epochs=1):
    (P.runs_path / run).mkdir(parents=True)
    pd.DataFrame([{"epoch": e, "seconds": 0.5, "images_per_s": ips} for e in range(1, epochs + 1)]).to_csv(
        P.runs_path / run / "log.csv", index=False)


def _metrics(P, run, n, **rec):
    (P.reports_path / "metrics" / f"{run}.json").write_text(json.dumps({"run": run, "n": n, **rec}))


def test_coco_1k_arm_runs_its_stretched_epochs_and_validates_every_caption(full):
    plan = projection.run_plan(full, "07_general_retrieval", "coco", "ft-n1000-both", COCO)
    t = full.retrieval_study.train
    steps = 1000 // t.batch_size  # 7 full batches of 128 (the partial one is dropped)
    epochs = math.ceil(full.retrieval_study.min_steps / steps)  # 43 epochs for 300 optimizer steps, not the profile's 5
    assert (steps, epochs) == (7, 43) and plan["epochs"] == epochs
    assert plan["train_images"] == plan["train_captions"] == steps * t.batch_size * epochs
    # a validation pass before training and after each epoch, each encoding 5,000 images and their 25,000 captions
    assert plan["val_images"] == 5000 * (epochs + 1) and plan["val_captions"] == 25000 * (epochs + 1)
    assert plan["image_trained"] and plan["text_trained"]
    locked = projection.run_plan(full, "07_general_retrieval", "coco", "ft-nall-both-lock_text", COCO)
    assert locked["text_trained"] is False and locked["epochs"] == t.epochs  # 885 steps per epoch: no stretch


def test_one_shot_run_trains_on_its_two_images(full):
    plan = projection.run_plan(full, "04_label_finetune", "pneumoniamnist", "label-ft-1shot-d0")
    # 1 image per class = 2 images = 1 step per epoch: few_shot_min_steps (100) epochs of 2 images
    assert full.label_finetune.few_shot_min_steps == 100
    assert (plan["epochs"], plan["train_images"], plan["val_images"]) == (100, 200, 2 * 101)
    probe = projection.run_plan(full, "04_label_finetune", "pneumoniamnist", "linear-probe-1shot-d0")
    assert (probe["train_images"], probe["val_images"]) == (0, 2 + 2)  # one feature pass, then cached features
    lpft = projection.run_plan(full, "04_label_finetune", "pneumoniamnist", "lp-ft")
    e = full.label_finetune.train.epochs  # the probe epochs cost a feature pass, not fine-tuning throughput
    assert lpft["train_images"] == 4708 * e and lpft["val_images"] == 524 * (e + 1) + 4708 + 524


def test_projection_times_the_coco_arms_and_counts_their_flops(tmp_path, full):
    P = _rehearsal(tmp_path, "07_general_retrieval")
    full = load_profile("full", {"retrieval_study.train_sizes": [1000, 0], "seeds": [0]})
    _log(P, f"07_general_retrieval__coco__{MODEL}__ft-nall-both", ips=100.0)
    _metrics(P, f"07_general_retrieval__coco__{MODEL}__ft-nall-both-retrieval", 16, n_text=80, task="retrieval")
    m = {"image_s": 0.01, "text_s": 0.002, "image_flops": 4e9, "text_flops": 3e9}
    row = projection.project(P, full, {MODEL: m}).iloc[0]
    secs, flops = 0.0, 0.0
    for method in ("ft-n1000-both", "ft-nall-both"):
        plan = projection.run_plan(full, "07_general_retrieval", "coco", method, COCO)
        secs += plan["train_images"] / 100.0 + plan["val_images"] * 0.01 + plan["val_captions"] * 0.002
        flops += 3 * (plan["train_images"] * 4e9 + plan["train_captions"] * 3e9)  # both towers trained
        flops += plan["val_images"] * 4e9 + plan["val_captions"] * 3e9
    secs += 2 * (5000 * 0.01 + 25000 * 0.002)  # each arm's test evaluation: 5,000 images, 25,000 captions
    flops += 2 * (5000 * 4e9 + 25000 * 3e9)
    measured = 0.5 + 16 * 0.01 + 80 * 0.002  # what the rehearsal itself spent in compute
    assert row.projected_s == round(secs + max(0.0, 1.0 - measured))
    assert row.tflop == pytest.approx(flops / 1e12, abs=0.06)
    assert row.implied_tflop_s == pytest.approx(flops / 1e12 / secs, rel=1e-3)
    assert row.eval_images == 2 * 5000 and row.captions > 2 * 25000


def test_k_shot_draws_and_the_first_seed_retrieval_are_counted_as_run(tmp_path, full):
    P = _rehearsal(tmp_path, "04_label_finetune")
    _log(P, f"04_label_finetune__pneumoniamnist__{MODEL}__label-ft-1shot-d0", ips=10.0)
    row = projection.project(P, full, {MODEL: 0.01}).iloc[0]
    assert row.train_images == 200 * full.label_finetune.shot_draws  # not few_shot_min_steps full batches
    P = _rehearsal(tmp_path / "b", "03_caption_finetune")
    _metrics(P, f"03_caption_finetune__pubmedvision__{MODEL}__caption-ft-plain-retrieval", 16, n_text=16,
             task="retrieval")
    _metrics(P, f"03_caption_finetune__pubmedvision__{MODEL}__caption-ft-plain", 16,
             extra={"val_metrics": {"acc": 0.5}})
    row = projection.project(P, full, {MODEL: 0.01}).iloc[0]
    seeds = len(full.seed_list)
    # the retrieval evaluation runs once (first seed); the classification evaluation per seed, test and val
    assert row.eval_images == 819 + seeds * (819 + 410) and row.captions == 819


def test_assumptions_are_written_beside_the_projection(tmp_path, full):
    P = _rehearsal(tmp_path, "02_zero_shot_baseline")
    out = projection.write(P, projection.project(P, full))
    text = (out.parent / "projection_assumptions.md").read_text()
    assert "epoch-0" in text and "FlopCounterMode" in text and "caption" in text


def test_measured_flops_match_the_architecture(tmp_path):
    P = load_profile("smoke", {"reports_dir": str(tmp_path / "r"), "runs_dir": str(tmp_path / "runs")})
    m = measure.measure_eval(P, batch=2, repeats=1)
    assert set(m) == {*(s.name for s in P.models), "resnet18"}
    # ResNet-18 at 224 px: 1.82 GMACs per image (He et al. 2016), counted as 2 FLOPs per multiply-add
    assert m["resnet18"]["image_flops"] == pytest.approx(2 * 1.82e9, rel=0.03)
    for spec in P.models:
        assert m[spec.name]["image_flops"] > 0 and m[spec.name]["text_flops"] > 0 and m[spec.name]["text_s"] > 0


def test_forward_flops_of_a_vit_b_32_image_match_its_published_count():
    import open_clip
    import torch

    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()  # random weights: nothing downloaded
    flops = measure.forward_flops(model.encode_image, torch.randn(2, 3, 224, 224))
    assert flops == pytest.approx(2 * 4.41e9, rel=0.03)  # 4.41 GMACs (timm's table), fused attention included
