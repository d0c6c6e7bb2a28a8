"""Checkpoints are plain tensors: any PyTorch user opens them with torch.load(weights_only=True), without medlib, and
finds the very weights medlib trained and evaluates."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
import torch

from medlib.config import ModelSpec, load_profile
from medlib.errors import MedlibError
from medlib.models import load_model
from medlib.studies import runs
from medlib.train import checkpoint, cnn, engine
from medlib.train.fit import fit
from helpers import CFG, CLASS_TEXTS, make_data

# What a PyTorch user runs: every checkpoint under a folder, opened with torch alone (no medlib on the path).
OPEN_WITH_TORCH_ALONE = r"""
import hashlib, json, pathlib, sys
import torch
out = {}
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.pt")):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    out[str(path)] = {name: [str(t.dtype), list(t.shape),
                             hashlib.sha256(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()]
                      for name, t in ckpt.get("model", {}).items()}
assert "medlib" not in sys.modules
print(json.dumps(out))
"""


def _fingerprint(t: torch.Tensor) -> list:
    import hashlib

    t = t.detach().cpu().contiguous()
    return [str(t.dtype), list(t.shape), hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()]


def _open_without_medlib(folder) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", OPEN_WITH_TORCH_ALONE, str(folder)], capture_output=True, text=True,
                          env=env, cwd=folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def _weights_of(result) -> dict:
    """The weights medlib evaluates for a training result, named as in its checkpoint (ClipClassifier's names in
    label modes: ``clip.*`` and ``head.*``)."""
    state = result.model.model.state_dict()
    if result.mode == "contrastive":
        return state
    head = {f"head.{k}": v for k, v in result.head.state_dict().items()}
    return {**{f"clip.{k}": v for k, v in state.items()}, **head}


def test_every_checkpoint_of_finished_runs_opens_with_torch_alone_and_holds_the_weights_medlib_evaluates(
        bundle, tmp_path):
    """The notebooks' kinds of runs (caption, label, multi-label fine-tunes, a linear probe, LP-FT, the ResNet-18):
    each file opens with torch.load(weights_only=True) in a process that never imports medlib; each best.pt's
    tensors are, bit for bit, the weights of the model medlib returned and evaluated."""
    P = load_profile("smoke", {"reports_dir": str(tmp_path / "reports"), "runs_dir": str(tmp_path / "runs")})
    one = dataclasses.replace(CFG, epochs=1)
    data, ml = make_data(n_train=128), make_data(n_train=128, multilabel=True)
    results = {}
    caption_cfg = dataclasses.replace(one, lock_text=False)
    for method, mode, d, kw in [("caption-ft-plain", "contrastive", data, {"cfg": caption_cfg}),
                                ("label-ft", "label", data, {"cfg": one}),
                                ("multilabel-ft", "multilabel", ml, {"cfg": one}),
                                ("linear-probe", "label", data, {"cfg": one, "variant": "linear_probe"}),
                                ("lp-ft", "label", data, {"cfg": one, "variant": "lp_ft", "probe_epochs": 1})]:
        notebook = "03_caption_finetune" if mode == "contrastive" else "04_label_finetune"
        res, _ = runs.finetune(P, bundle, d, notebook=notebook, method=method, mode=mode, class_texts=CLASS_TEXTS, **kw)
        results[method] = res
    cnn_dir = P.runs_path / "06_sota_comparison__toy__resnet18__supervised"
    resnet = cnn.train_cnn(data, epochs=1, batch_size=64, lr=1e-3, seed=0, run_dir=cnn_dir, weights="none",
                           progress=False)

    opened = _open_without_medlib(P.runs_path)
    assert len(opened) == 2 * 5 + 2 + 2  # best.pt + last.pt per run; LP-FT has two stages
    for path, tensors in opened.items():  # medlib's own reading of each file finds the same tensors
        medlib_reads = checkpoint.load(path).get("model", {})
        assert tensors == {k: _fingerprint(v) for k, v in medlib_reads.items()}, path
    for method, res in results.items():
        best = res.run_dir / ("ft" if method == "lp-ft" else "") / "best.pt"
        held = opened[str(best)]
        assert held, best
        evaluated = _weights_of(res)
        for name, fp in held.items():
            assert fp == _fingerprint(evaluated[name]), (method, name)
    held = opened[str(cnn_dir / "best.pt")]
    assert held == {k: _fingerprint(v) for k, v in resnet.model.state_dict().items()}
    assert set(opened[str(results["linear-probe"].run_dir / "best.pt")]) == {"head.weight", "head.bias"}


def test_a_checkpoint_put_into_another_base_model_is_refused(bundle, tmp_path):
    """best.pt holds what the run changed; the frozen text tower comes from the model it is loaded into. Another
    base (here: the tiny model with another seed) would give a model the run never trained: a one-line error."""
    data = make_data(n_train=128)
    fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS, progress=False)
    other = load_model(ModelSpec(name="tiny", arch="medclip-tiny"), seed=1)
    with pytest.raises(MedlibError, match="another base model") as e:
        fit(other, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS, progress=False)
    assert "\n" not in str(e.value) and "best.pt" in str(e.value)


def test_a_finished_engine_is_freed_without_the_cycle_collector(bundle, tmp_path, monkeypatch):
    """Nothing of a run outlives it by reference cycles: notebooks train dozens of runs in one kernel, and a cycle
    (an optimizer hook holding the engine) would keep every run's model copies until the collector ran."""
    import gc
    import weakref

    seen = []
    init = engine.Engine.__init__

    def spy(self, *a, **k):
        init(self, *a, **k)
        seen.append(weakref.ref(self))

    monkeypatch.setattr(engine.Engine, "__init__", spy)
    gc.collect()
    gc.disable()
    try:
        r = fit(bundle, make_data(n_train=128), mode="label", cfg=CFG, run_dir=tmp_path, seed=0,
                class_texts=CLASS_TEXTS, progress=False)
        del r
        assert seen and seen[0]() is None
    finally:
        gc.enable()
