"""best.pt stores a run's difference from its start, losslessly (medlib/train/delta.py)."""

import dataclasses

import pytest
import torch

from medlib.train import cnn
from medlib.train.fit import fit
from medlib.errors import MedlibError
from medlib.train import checkpoint, delta, engine
from helpers import CFG, CLASS_TEXTS, make_data


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8),
                                                                      b.reshape(-1).view(torch.uint8))


def test_pack_round_trips_bit_for_bit_every_kind_of_tensor():
    g = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(64, 16, generator=g), "h": torch.randn(8, generator=g).bfloat16(),
            "emb": torch.randn(500, 8, generator=g), "zero_bias": torch.zeros(16)}
    lrs = [1e-3 * min(1.0, (i + 1) / 5) for i in range(30)]
    state = {"w": base["w"] + 1e-3 * torch.randn(64, 16, generator=g), "h": (base["h"].float() * 1.01).bfloat16(),
             "emb": delta.replay_decay(base["emb"], lrs, 0.1), "zero_bias": torch.randn(16, generator=g),
             "steps": torch.tensor(7), "new": torch.randn(3, 3, generator=g), "nan": torch.tensor([float("nan"), -0.0])}
    state["emb"][[3, 77]] += 0.25  # two rows a batch touched
    packed = delta.pack(state, base, decay={"lrs": lrs, "weight_decay": 0.1}, replay={"emb"})
    checkpoint_obj = torch.load(_roundtrip(packed), weights_only=True)  # plain tensors and values only
    out = delta.unpack(checkpoint_obj, base)
    assert set(out) == set(state)
    for k in state:
        assert _same_bits(out[k], state[k]), k
    # the replayed decay predicts every untouched row exactly: the table costs about its two touched rows
    assert packed["tensors"]["emb"]["pred"] == "replay"
    assert packed["tensors"]["emb"]["data"].numel() < 500 * 8 * 4 // 20


def _roundtrip(obj):
    import io
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_contrastive_best_pt_is_a_fraction_of_the_changed_weights_and_loads_exactly(bundle, tmp_path):
    """The tiny model's token table (49,408 x 128, ~85% of what a contrastive run trains) decays in every row, but
    only the rows of the captions' tokens move otherwise: best.pt keeps those and the other weights' low bits."""
    data = make_data(n_train=128)
    cfg = dataclasses.replace(CFG, epochs=2, lock_text=False, weight_decay=0.1)
    r = fit(bundle, data, mode="contrastive", cfg=cfg, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                     progress=False)
    changed = sum(p.numel() * 4 for p in r.model.model.parameters())
    size = (tmp_path / "best.pt").stat().st_size
    assert size < 0.25 * changed, (size, changed)
    packed = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    assert packed["tensors"]["token_embedding.weight"]["pred"] == "replay"
    assert packed["tensors"]["token_embedding.weight"]["data"].numel() < 0.02 * 49408 * 128 * 4
    again = fit(bundle, data, mode="contrastive", cfg=cfg, run_dir=tmp_path, seed=0,
                         class_texts=CLASS_TEXTS, progress=False)
    assert again.resumed_from == r.history["epoch"].max()
    for k, v in r.model.model.state_dict().items():
        assert _same_bits(v, again.model.model.state_dict()[k]), k


def test_resnet_best_pt_is_packed_and_a_rerun_returns_the_same_weights(tmp_path):
    data = make_data(n_train=96)
    kw = dict(epochs=1, batch_size=32, lr=1e-3, seed=0, run_dir=tmp_path, weights="none", progress=False)
    a = cnn.train_cnn(data, **kw)
    packed = torch.load(tmp_path / "best.pt", weights_only=True)["model"]
    assert delta.is_packed(packed)
    raw = sum(v.numel() * v.element_size() for v in a.model.state_dict().values())
    assert (tmp_path / "best.pt").stat().st_size < 0.8 * raw
    b = cnn.train_cnn(data, **kw)
    for k, v in a.model.state_dict().items():
        assert _same_bits(v, b.model.state_dict()[k]), k


def test_a_damaged_packed_best_pt_is_a_one_line_error(bundle, tmp_path):
    data = make_data(n_train=128)
    fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                 progress=False)
    ck = checkpoint.load(tmp_path / "best.pt")
    name = next(iter(ck["model"]["tensors"]))
    ck["model"]["tensors"][name]["data"] = ck["model"]["tensors"][name]["data"][:-40].clone()
    checkpoint.save(tmp_path / "best.pt", {k: v for k, v in ck.items() if k not in ("format", "version")})
    with pytest.raises(MedlibError, match="best.pt") as e:
        fit(bundle, data, mode="label", cfg=CFG, run_dir=tmp_path, seed=0, class_texts=CLASS_TEXTS,
                     progress=False)
    assert "\n" not in str(e.value)


def test_a_finished_engine_is_freed_without_the_cycle_collector(bundle, tmp_path, monkeypatch):
    """Nothing of a run outlives it by reference cycles: notebooks train dozens of runs in one kernel, and a cycle
    (the optimizer's step hook holding the engine) kept every run's model copies until the collector ran."""
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
