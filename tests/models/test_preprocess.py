"""medlib.models.preprocess: batched preprocessing matches open_clip's PIL preprocess; tools.bench runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from medlib.config import ModelSpec
from medlib.models import load_model
from medlib.models.preprocess import (TOLERANCE_MAX_ABS, TOLERANCE_MEAN_ABS, bundle_input, open_clip_preprocess,
                               pil_reference, to_model_input)

REPO_ROOT = Path(__file__).resolve().parents[2]
MEAN, STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD


def _smooth(n: int, size: int, seed: int = 0, rgb: bool = False, w: int | None = None) -> np.ndarray:
    """Blurred noise with structure at several scales (closer to real scans than white noise)."""
    rng = np.random.default_rng(seed)
    shape = (n, size, w or size) + ((3,) if rgb else ())
    x = rng.random(shape)
    for axis in (1, 2):
        x = (x + np.roll(x, 1, axis) + np.roll(x, -1, axis)) / 3
    return (x * 255).astype(np.uint8)


def _diff(images: np.ndarray, size: int) -> tuple[float, float, torch.Tensor]:
    ours = to_model_input(images, size, MEAN, STD)
    ref = pil_reference(images, open_clip_preprocess(size, MEAN, STD))
    assert ours.shape == ref.shape == (len(images), 3, size, size) and ours.dtype == torch.float32
    d = (ours - ref).abs()
    return d.max().item(), d.mean().item(), ours


@pytest.mark.parametrize("src,dst", [(28, 224), (28, 28), (224, 224), (64, 28)])
def test_matches_open_clip_preprocess(src, dst):
    images = _smooth(16, src, seed=src + dst)
    mx, mean, _ = _diff(images, dst)
    assert mx <= TOLERANCE_MAX_ABS and mean <= TOLERANCE_MEAN_ABS
    if src == dst:  # no resize: bit-identical to ToTensor + Normalize
        assert mx == 0.0


def test_matches_open_clip_on_real_pneumoniamnist(shared_pneumonia):
    images = np.load(shared_pneumonia)["test_images"][:96]
    mx, mean, _ = _diff(images, 224)
    assert mx <= TOLERANCE_MAX_ABS and mean <= TOLERANCE_MEAN_ABS
    assert _diff(images, 28)[0] == 0.0


def test_rgb_non_square_resize_and_center_crop():
    images = _smooth(6, 40, seed=3, rgb=True, w=30)  # (6, 40, 30, 3): shortest side 30
    mx, mean, ours = _diff(images, 24)
    assert mx <= TOLERANCE_MAX_ABS and mean <= TOLERANCE_MEAN_ABS
    squash = to_model_input(images, 24, MEAN, STD, resize_mode="squash")
    assert squash.shape == (6, 3, 24, 24) and not torch.allclose(squash, ours)


def test_gray_becomes_three_identical_channels_like_rgb_copy():
    gray = _smooth(5, 28, seed=4)
    ours = to_model_input(gray, 56, MEAN, STD)
    rgb = to_model_input(np.repeat(gray[..., None], 3, axis=-1), 56, MEAN, STD)
    assert torch.equal(ours, rgb)
    # un-normalised, the three channels are the same image
    raw = ours * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
    assert torch.allclose(raw[:, 0], raw[:, 1], atol=1e-6) and torch.allclose(raw[:, 0], raw[:, 2], atol=1e-6)


def test_torch_input_and_bundle_input():
    gray = _smooth(3, 28, seed=5)
    assert torch.equal(to_model_input(torch.from_numpy(gray), 28, MEAN, STD), to_model_input(gray, 28, MEAN, STD))
    bundle = load_model(ModelSpec(name="tiny", arch="medclip-tiny"))
    x = bundle_input(bundle, gray)
    assert x.shape == (3, 3, bundle.image_size, bundle.image_size) and x.device == bundle.device
    assert torch.equal(x, to_model_input(gray, bundle.image_size, bundle.mean, bundle.std))


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(np.zeros((2, 8, 8), dtype=np.float32), 8, MEAN, STD)
    with pytest.raises(ValueError, match="gray or"):
        to_model_input(np.zeros((2, 8, 8, 4), dtype=np.uint8), 8, MEAN, STD)
    with pytest.raises(ValueError, match="medlib.train"):
        to_model_input(np.zeros((2, 8, 8), dtype=np.uint8), 8, MEAN, STD, train=True)


def test_bench_preprocess_cli_prints_ratio():
    out = subprocess.run([sys.executable, "-m", "tools.bench", "preprocess", "--n", "64", "--repeats", "1"],
                         capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr
    assert "images/s" in out.stdout and "open_clip PIL" in out.stdout
    ratio = float(out.stdout.split("ratio (batched / PIL):")[1].split("x")[0])
    assert ratio > 0
