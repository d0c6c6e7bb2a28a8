"""medlib.models: loading (tiny random, tag, hf-hub, local file), checkpoints, offline errors."""

from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from medlib.config import ModelSpec
from medlib.errors import MedlibError
from medlib.models import CONFIG_DIR, TINY_ARCHS, load_checkpoint, load_model, read_checkpoint, save_checkpoint
from medlib.models.preprocess import bundle_input

TINY = ModelSpec(name="tiny", arch="medclip-tiny", display="tiny test model")


def _state_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _outputs(bundle) -> tuple[torch.Tensor, torch.Tensor]:
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28), dtype=np.uint8)
    with torch.no_grad():
        img = bundle.model.encode_image(bundle_input(bundle, images))
        txt = bundle.model.encode_text(bundle.tokenizer(["a chest X-ray showing pneumonia.", "normal"]))
    return img, txt


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY)


def test_tiny_configs_registered_and_load(tiny):
    assert set(TINY_ARCHS) == {"medclip-tiny", "medclip-tiny-domain"}
    assert set(TINY_ARCHS) <= set(open_clip.list_models())
    assert tiny.image_size == 28 and len(tiny.mean) == 3 and len(tiny.std) == 3
    assert not tiny.model.training and tiny.display == "tiny test model" and tiny.pretrained == ""
    img, txt = _outputs(tiny)
    assert img.shape == (4, 64) and txt.shape == (2, 64)
    dom = load_model(ModelSpec(name="d", arch="medclip-tiny-domain"))
    assert dom.display == "medclip-tiny-domain:random" and dom.tokenizer(["x"]).shape[1] == 48


def test_random_init_is_seeded(tiny):
    again = load_model(TINY)
    assert _state_equal(tiny.model, again.model)
    other = load_model(TINY, seed=1)
    assert not _state_equal(tiny.model, other.model)
    state = torch.get_rng_state()
    load_model(TINY, seed=3)
    assert torch.equal(state, torch.get_rng_state())  # global RNG untouched


def test_unknown_arch_and_tag():
    with pytest.raises(MedlibError, match="unknown open_clip architecture"):
        load_model(ModelSpec(name="x", arch="No-Such-Model"))
    with pytest.raises(MedlibError, match=r"not a known open_clip tag for ViT-B-32.*openai"):
        load_model(ModelSpec(name="x", arch="ViT-B-32", pretrained="no_such_tag"))


def test_named_tag_offline_names_model_and_local_fix(monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("An error happened while trying to locate the file on the Hub (offline)")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(MedlibError) as err:
        load_model(ModelSpec(name="clip", arch="ViT-B-32", pretrained="openai"))
    msg = str(err.value)
    assert "\n" not in msg
    assert "ViT-B-32" in msg and "openai" in msg and "could not download" in msg
    assert "pretrained:" in msg and "local file path" in msg and "HF_HOME" in msg


def test_hf_hub_offline_names_hub_id(monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("cannot find the requested files in the local cache (offline)")

    monkeypatch.setattr(open_clip.factory, "download_pretrained_from_hf", offline)
    hub = "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    with pytest.raises(MedlibError) as err:
        load_model(ModelSpec(name="biomedclip", arch=hub))
    msg = str(err.value)
    assert "\n" not in msg and hub in msg and "HF_HOME" in msg and "arch: local-dir:" in msg
    with pytest.raises(MedlibError, match="hf-hub/local-dir arch"):
        load_model(ModelSpec(name="biomedclip", arch=hub, pretrained="openai"))


def test_local_dir_copy_of_a_hub_repo(tmp_path):
    """The offline fix for hub models: a downloaded repo folder used as ``arch: local-dir:<folder>``."""
    import json

    from safetensors.torch import save_file

    src = load_model(TINY, seed=11)
    cfg = json.loads((CONFIG_DIR / "medclip-tiny.json").read_text())
    (tmp_path / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": cfg, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}}))
    save_file({k: v.contiguous() for k, v in src.model.state_dict().items()},
              str(tmp_path / "open_clip_model.safetensors"))
    got = load_model(ModelSpec(name="local", arch=f"local-dir:{tmp_path}"))
    assert _state_equal(src.model, got.model)
    assert got.mean == (0.5, 0.5, 0.5) and got.std == (0.25, 0.25, 0.25) and got.image_size == 28
    with pytest.raises(MedlibError, match="local-dir:.*could not load the model folder"):
        load_model(ModelSpec(name="local", arch=f"local-dir:{tmp_path / 'missing'}"))


def test_hf_text_tower_without_transformers_says_install(tmp_path):
    """BiomedCLIP-like configs (HF text tower) need `transformers`; the error says so, not 'offline'."""
    import importlib.util
    import json

    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is installed")
    cfg = json.loads((CONFIG_DIR / "medclip-tiny.json").read_text())
    cfg["text_cfg"] = {"hf_model_name": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                       "hf_tokenizer_name": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                       "hf_proj_type": "mlp", "hf_pooler_type": "cls_last_hidden_state_pooler", "context_length": 256}
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    (tmp_path / "open_clip_model.bin").write_bytes(b"")
    with pytest.raises(MedlibError, match="pip install transformers"):
        load_model(ModelSpec(name="bio", arch=f"local-dir:{tmp_path}"))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_open_clip_state_dict_as_pretrained(tmp_path, suffix):
    src = load_model(TINY, seed=7)
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in src.model.state_dict().items()}
    if suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    got = load_model(ModelSpec(name="tiny", arch="medclip-tiny", pretrained=str(path)))  # seed 0 skeleton
    assert _state_equal(src.model, got.model)
    assert got.pretrained == str(path) and got.display == f"medclip-tiny:{path.name}"


def test_missing_or_wrong_weights_file(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(MedlibError, match="nope.pt: weights file .* not found"):
        load_model(ModelSpec(name="t", arch="medclip-tiny", pretrained=str(missing)))
    other = tmp_path / "other.pt"
    torch.save(load_model(ModelSpec(name="d", arch="medclip-tiny-domain")).model.state_dict(), other)
    with pytest.raises(MedlibError, match="other.pt: not loadable as medclip-tiny weights"):
        load_model(ModelSpec(name="t", arch="medclip-tiny", pretrained=str(other)))


def test_checkpoint_round_trip_exact(tmp_path):
    bundle = load_model(ModelSpec(name="tiny", arch="medclip-tiny", display="Tiny (trained)"), seed=5)
    with torch.no_grad():
        bundle.model.logit_scale.fill_(3.0)
    path = save_checkpoint(bundle, tmp_path / "ckpt" / "model.pt", extra={"epoch": 3, "rng": torch.get_rng_state()})
    assert path.is_file() and [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temp file left
    back = load_checkpoint(path)
    assert _state_equal(bundle.model, back.model)
    for a, b in zip(_outputs(bundle), _outputs(back)):
        assert torch.equal(a, b)
    assert (back.name, back.display, back.arch, back.pretrained) == ("tiny", "Tiny (trained)", "medclip-tiny", "")
    assert back.preprocess_cfg() == bundle.preprocess_cfg() and not back.model.training
    extra = read_checkpoint(path)["extra"]
    assert extra["epoch"] == 3 and torch.equal(extra["rng"], torch.get_rng_state())
    # the same file as a profile's `pretrained:` gives the same weights
    via_spec = load_model(ModelSpec(name="ft", arch="medclip-tiny", pretrained=str(path)))
    assert _state_equal(bundle.model, via_spec.model) and via_spec.name == "ft"
    with pytest.raises(MedlibError, match="saved from arch 'medclip-tiny'"):
        load_model(ModelSpec(name="x", arch="medclip-tiny-domain", pretrained=str(path)))


def test_corrupt_checkpoint_names_file(tmp_path, tiny):
    path = save_checkpoint(tiny, tmp_path / "model.pt")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MedlibError, match=r"truncated\.pt: truncated or corrupt"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(MedlibError, match=r"garbage\.pt: truncated or corrupt"):
        load_model(ModelSpec(name="t", arch="medclip-tiny", pretrained=str(garbage)))
    with pytest.raises(MedlibError, match=r"absent\.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "absent.pt")
    plain = tmp_path / "plain.pt"
    torch.save(tiny.model.state_dict(), plain)
    with pytest.raises(MedlibError, match="not a medlib checkpoint"):
        load_checkpoint(plain)


def test_failed_save_keeps_previous_checkpoint(tmp_path, tiny, monkeypatch):
    path = save_checkpoint(tiny, tmp_path / "model.pt", extra={"epoch": 1})

    def crash(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(tiny, path, extra={"epoch": 2})
    monkeypatch.undo()
    assert read_checkpoint(path)["extra"] == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
