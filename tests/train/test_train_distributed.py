"""The engine on two CPU processes (gloo) equals one process with the same global batch, and resumes after a
rank is killed. Small: the tiny model, 128 training images, two epochs."""

import dataclasses
import os
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from medlib.train import losses
from medlib.train.fit import fit
from medlib.config import ModelSpec, TrainConfig
from medlib.errors import MedlibError
from medlib.models import load_model
from medlib.train import engine, predict
from medlib.train.launch import FAULT_ENV, run_distributed
from helpers import CLASS_TEXTS, make_data

SPEC = ModelSpec(name="tiny", arch="medclip-tiny")
CFG = TrainConfig(epochs=2, batch_size=32, lr=1e-3, weight_decay=0.05, warmup_steps=2, patience=0, augment=True,
                  precision="fp32")
CONTRASTIVE = dataclasses.replace(CFG, lock_text=False, label_aware=True)


def _gathered_losses(rank, world, init_file, img, txt, labels, scale, out):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    b = len(img) // world
    mine = slice(rank * b, (rank + 1) * b)
    plain = losses.clip_loss(img[mine], txt[mine], scale, rank=rank, world_size=world)
    aware = losses.label_aware_clip_loss(img[mine], txt[mine], scale, labels[mine], rank=rank, world_size=world)
    torch.save({"plain": plain.detach(), "aware": aware.detach()}, f"{out}.{rank}")
    dist.destroy_process_group()


def test_gathered_contrastive_loss_equals_single_process_loss_over_the_global_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(8, 16, generator=g), dim=-1)
    txt = F.normalize(img + 0.5 * torch.randn(8, 16, generator=g), dim=-1)
    labels = torch.tensor([0, 1, 0, 2, 1, 1, 0, 2])
    scale = torch.tensor(10.0)
    out = tmp_path / "loss"
    mp.spawn(_gathered_losses, args=(2, tmp_path / "init", img, txt, labels, scale, out), nprocs=2, join=True)
    got = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    # DDP averages the ranks' gradients: the objective is the mean of the ranks' local losses
    torch.testing.assert_close((got[0]["plain"] + got[1]["plain"]) / 2, losses.clip_loss(img, txt, scale))
    torch.testing.assert_close((got[0]["aware"] + got[1]["aware"]) / 2,
                               losses.label_aware_clip_loss(img, txt, scale, labels))
    assert not torch.allclose(got[0]["plain"], losses.clip_loss(img[:4], txt[:4], scale))  # negatives are global


@pytest.fixture(scope="module")
def runs():
    """1-process and 2-process runs of the label and contrastive modes (same seed, global batch 32)."""
    data = make_data(n_train=128, n_val=32)
    bundle = load_model(SPEC)
    root = tempfile.TemporaryDirectory()
    out = {}
    for mode, cfg in (("label", CFG), ("contrastive", CONTRASTIVE)):
        kw = {"mode": mode, "seed": 0, "class_texts": CLASS_TEXTS}
        one = fit(bundle, data, cfg=cfg, run_dir=f"{root.name}/{mode}-1", progress=False, **kw)
        run_distributed(SPEC, data, run_dir=f"{root.name}/{mode}-2", nproc_per_node=2,
                        device="cpu", kwargs={**kw, "cfg": dataclasses.asdict(cfg)})
        two = fit(bundle, data, cfg=cfg, run_dir=f"{root.name}/{mode}-2", progress=False, **kw)
        out[mode] = (one, two)
    yield bundle, data, root.name, out
    root.cleanup()


def _comparable(k, t):
    """``t`` without the attention key bias: its true gradient is identically zero (softmax is shift-invariant),
    so Adam turns the rounding noise of any two gradient sums (one process vs. DDP's average of two) into
    updates of about lr on it. It changes no output (the predictions are compared too)."""
    t = t.double().flatten()
    if k.endswith("attn.in_proj_bias"):
        d = len(t) // 3
        t = torch.cat([t[:d], t[2 * d:]])
    return t


def _assert_same_weights(a, b, rtol):
    """The weight vector within ``rtol`` relative L2 error, and every weight matrix too."""
    sa, sb = a.model.model.state_dict(), b.model.model.state_dict()
    if a.head is not None:
        sa, sb = {**sa, "head": a.head.weight}, {**sb, "head": b.head.weight}
    x = torch.cat([_comparable(k, v) for k, v in sa.items()])
    y = torch.cat([_comparable(k, sb[k]) for k in sa])
    assert (x - y).norm() <= rtol * x.norm()
    for k in sa:
        if sa[k].ndim >= 2:
            assert (sa[k].double() - sb[k].double()).norm() <= rtol * sa[k].double().norm(), k


@pytest.mark.parametrize("mode", ["label", "contrastive"])
def test_two_processes_equal_one_process_with_the_same_global_batch(runs, mode):
    _, _, _, out = runs
    one, two = out[mode]
    assert two.resumed_from == CFG.epochs  # trained by torchrun, loaded here
    assert list(two.history["epoch"]) == [0, 1, 2]
    _assert_same_weights(one, two, 1e-5)
    assert two.history["val_metric"].tolist() == one.history["val_metric"].tolist()
    x = runs[1].splits["test"].images
    p_one = predict(one, x, mode="label", class_texts=CLASS_TEXTS)
    assert abs(predict(two, x, mode="label", class_texts=CLASS_TEXTS) - p_one).max() <= 1e-4
    assert two.history["train_loss"].iloc[1:].tolist() == pytest.approx(one.history["train_loss"].iloc[1:].tolist(),
                                                                        rel=1e-5)


def test_killed_rank_stops_the_run_and_restart_resumes_to_the_same_end(runs):
    bundle, data, root, out = runs
    kw = {"mode": "label", "seed": 0, "class_texts": CLASS_TEXTS, "cfg": dataclasses.asdict(CFG)}
    run = f"{root}/label-killed"
    with pytest.raises(MedlibError, match="distributed training failed") as e:  # rank 1 SIGKILLed in epoch 2
        run_distributed(SPEC, data, run_dir=run, nproc_per_node=2, device="cpu", kwargs=kw,
                        env={FAULT_ENV: "kill:1:2:1"})
    msg = str(e.value)  # one line: which rank, how, where its output is, that a rerun resumes; no gloo text
    assert "\n" not in msg and len(msg) < 400 and "gloo" not in msg and "Connection" not in msg
    assert msg.startswith(f"{run}: distributed training failed: rank 1 was killed by SIGKILL"), msg
    assert f"{run}/launch/torchrun.log" in msg and f"resume from {run}/last.pt" in msg
    assert "(SIGKILL)" in (Path(run) / "launch" / "torchrun.log").read_text()  # torchrun's summary, kept
    assert torch.load(f"{run}/last.pt", weights_only=True)["epoch"] == 1
    run_distributed(SPEC, data, run_dir=run, nproc_per_node=2, device="cpu", kwargs=kw,
                    env={FAULT_ENV: ""})
    resumed = fit(bundle, data, cfg=CFG, run_dir=run, progress=False, mode="label", seed=0,
                           class_texts=CLASS_TEXTS)
    _assert_same_weights(out["label"][1], resumed, 0)  # exactly the uninterrupted 2-process run
    for k, v in out["label"][1].model.model.state_dict().items():
        assert torch.equal(v, resumed.model.model.state_dict()[k]), k
    assert resumed.history["val_metric"].tolist() == out["label"][1].history["val_metric"].tolist()


def test_a_failing_rank_stops_all_with_its_one_line_error(runs):
    _, data, root, _ = runs
    kw = {"mode": "label", "seed": 0, "class_texts": CLASS_TEXTS, "cfg": dataclasses.asdict(CFG)}
    with pytest.raises(MedlibError, match=r"rank 1: .*injected fault") as e:
        run_distributed(SPEC, data, run_dir=f"{root}/label-raise", nproc_per_node=2, device="cpu",
                        kwargs=kw, env={FAULT_ENV: "raise:1:1:0"})
    assert "\n" not in str(e.value)


SUMMARY = """medlib.train.launch FAILED
Failures:
[1]:
  rank      : 0 (local_rank: 0)
  exitcode  : -15 (pid: 11873)  (SIGTERM)
Root Cause (first observed failure):
[0]:
  rank      : {root} (local_rank: {root})
  exitcode  : {code} (pid: 11874)
"""


@pytest.mark.parametrize("root, code, files, expected", [
    (1, -9, {"started-rank0.txt": "", "started-rank1.txt": "",
             "error-rank0.json": '{"rank": 0, "message": "RuntimeError: [gloo/pair.cc:545] Read error", '
                                 '"lost_peer": true}'},
     "rank 1 was killed by SIGKILL (kill -9, or the out-of-memory killer)"),
    (1, 3, {"started-rank0.txt": "", "started-rank1.txt": ""}, "rank 1 exited with code 3"),
    (0, -15, {"started-rank0.txt": "", "started-rank1.txt": ""}, "rank 1 stopped without an error message (killed?)"),
    (0, 1, {"error-rank0.json": '{"rank": 0, "message": "RuntimeError: NCCL timeout", "lost_peer": true}'},
     "rank 0 lost its connection to the other ranks"),
    (0, 1, {"error-rank1.json": '{"rank": 1, "message": "ValueError: bad batch", "lost_peer": false}',
            "error-rank0.json": '{"rank": 0, "message": "gloo: closed", "lost_peer": true}'},
     "rank 1: ValueError: bad batch"),
])
def test_failure_names_the_rank_that_failed_first_and_how(tmp_path, root, code, files, expected):
    from medlib.train.launch import failure

    (tmp_path / "torchrun.log").write_text("progress ...\n" + SUMMARY.format(root=root, code=code))
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        time.sleep(0.01)  # error files are ordered by time
    assert failure(tmp_path, 1) == expected


def test_gpus_flag_reaches_the_profile(monkeypatch):
    from medlib.config import load_profile
    from medlib.run.runner import main

    assert load_profile("smoke").distributed.nproc_per_node == 1  # one process unless asked
    monkeypatch.setenv("MEDLIB_GPUS", "2")  # what ./run_all.sh --gpus 2 exports to the notebooks' kernels
    P = load_profile("smoke")
    assert P.distributed.nproc_per_node == 2 and P.hash() == load_profile("smoke", {"seed": 0}).hash()
    monkeypatch.setenv("MEDLIB_GPUS", "two")
    with pytest.raises(MedlibError, match="MEDLIB_GPUS"):
        load_profile("smoke")
    monkeypatch.delenv("MEDLIB_GPUS")
    assert main(["--gpus", "x"]) == 2  # one line (tests/test_runner_messages.py), not argparse's usage block


def test_pipeline_finetune_launches_torchrun_and_evaluates_here(tmp_path, monkeypatch):
    """What the notebooks call: with 2 processes LP-FT runs under torchrun, the result is loaded and evaluated in
    this process, and the test split's metrics are written as with one process."""
    from medlib.studies import runs
    from medlib.config import load_profile
    P = load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs"),
                               "distributed.nproc_per_node": 2})
    data = make_data(n_train=64, n_val=32)
    clip = load_model(P.model("tiny"))
    cfg = dataclasses.replace(CFG, epochs=1)
    result, rec = runs.finetune(P, clip, data, notebook="04_label_finetune", method="lp-ft", mode="label",
                                cfg=cfg, variant="lp_ft", probe_epochs=1, class_texts=CLASS_TEXTS)
    assert result.resumed_from == 1 and list(result.history["stage"]) == ["probe", "probe", "ft", "ft"]
    assert rec["n"] == 64 and 0 <= rec["metrics"]["acc"] <= 1
    assert not (result.run_dir / "launch").exists()  # the run spec and its arrays are removed after success


def test_pipeline_second_seed_trains_the_notebooks_model_under_torchrun(tmp_path):
    """A later seed's run (``__s1``) trains the model the notebook loaded (built with the profile's seed): the
    ranks rebuild it with the profile's seed, not the training seed. Row 0 of the log (before any update) is
    therefore the same as with one process."""
    from medlib.studies import runs
    from medlib.config import load_profile

    data = make_data(n_train=64, n_val=32)
    cfg = dataclasses.replace(CFG, epochs=1)
    rows = []
    for nproc in (1, 2):
        P = load_profile("smoke", {"reports_dir": str(tmp_path / f"r{nproc}"), "runs_dir": str(tmp_path / f"u{nproc}"),
                                   "distributed.nproc_per_node": nproc})
        clip = load_model(P.model("tiny"), seed=P.seed)
        result, _ = runs.finetune(P, clip, data, notebook="04_label_finetune", method="label-ft", mode="label",
                                      cfg=cfg, seed=1, evaluate=False, class_texts=CLASS_TEXTS)
        assert result.run_dir.name.endswith("__s1")
        rows.append(float(result.history["val_metric"].iloc[0]))
    assert rows[0] == rows[1]
