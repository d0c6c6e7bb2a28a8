import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)  # two cores, and pytest-xdist may run two workers

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
PNEUMONIA_NPZ = SHARED_DATA / "medmnist" / "pneumoniamnist.npz"


@pytest.fixture
def shared_pneumonia() -> Path:
    """Path to the real PneumoniaMNIST file in ../shared/data (skips where it is absent)."""
    if not PNEUMONIA_NPZ.is_file():
        pytest.skip(f"{PNEUMONIA_NPZ} not present")
    return PNEUMONIA_NPZ


@pytest.fixture(autouse=True)
def _no_data_dir_env(monkeypatch):
    """Tests choose their own data dir; a user's MEDLIB_DATA_DIR must not leak in."""
    monkeypatch.delenv("MEDLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def bundle():
    """The tiny random-init CLIP (one per test module)."""
    from medlib.config import ModelSpec
    from medlib.models import load_model

    return load_model(ModelSpec(name="tiny", arch="medclip-tiny"))
