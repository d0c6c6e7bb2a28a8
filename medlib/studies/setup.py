"""What every notebook does first: load the profile (notebook parameters override single keys), seed, print the
banner; the profile's models, the seeds of each method, the datasets (with skips recorded), prompts."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from ..config import ModelSpec, Profile, load_profile
from ..data import DatasetSkipped, get_dataset
from ..data.base import DatasetBundle
from ..models import ClipBundle, load_model, resolve_device
from ..outputs.records import reports_dir, save_table
from ..models.prompts import class_prompts, templates_for


NOTEBOOKS = {
    "01": "01_data_prep",
    "02": "02_zero_shot_baseline",
    "03": "03_caption_finetune",
    "04": "04_label_finetune",
    "05": "05_class_imbalance",
    "06": "06_sota_comparison",
    "07": "07_general_retrieval",
}


def load(name: str = "smoke", data_dir: str | None = None, seed: int | None = None, **overrides: Any) -> Profile:
    """Load the profile ``name`` (a name or a YAML path; notebook parameters override single keys), seed
    everything, print the banner."""
    profile = load_profile(name, {"seed": seed, **overrides}, data_dir=data_dir)
    torch.manual_seed(profile.seed)
    np.random.seed(profile.seed)
    print(banner(profile))
    return profile


def banner(profile: Profile) -> str:
    head = profile.notice or f"Profile {profile.name!r}."
    return (f"{head}\nprofile {profile.name} (hash {profile.hash()}), seeds {profile.seed_list} (for {', '.join(profile.seeded_methods)}; "
            f"other runs seed {profile.seed}), device {profile.device}, data {profile.data_dir}")


def seeds(profile: Profile, kind: str) -> list[int]:
    """The seeds a trained method runs with: every seed of the profile for the kinds it lists in
    ``seeded_methods`` (caption_ft, label_ft, multilabel_ft, lp_ft, cnn, remedies), else the first seed only."""
    return profile.seed_list if kind in profile.seeded_methods else profile.seed_list[:1]


def device(profile: Profile) -> torch.device:
    return resolve_device(profile.device)


def main_model(profile: Profile) -> ModelSpec:
    """The profile's main CLIP (role 'clip', exactly one: checked when the profile loads)."""
    return next(m for m in profile.models if m.role == "clip")


def load_clip(profile: Profile, spec: ModelSpec | str) -> ClipBundle:
    spec = profile.model(spec) if isinstance(spec, str) else spec
    return load_model(spec, device(profile), seed=profile.seed)


def datasets(profile: Profile, names: list[str], notebook: str, refresh: bool = False) -> Iterator[DatasetBundle]:
    """Yield each named dataset's prepared splits; a dataset the profile does not configure (MIMIC-CXR without a
    local copy) is skipped, printed, and recorded in ``tables/skipped_datasets.csv`` for the report."""
    for name in names:
        try:
            data = get_dataset(profile, name, refresh=refresh)
        except DatasetSkipped as exc:
            print(f"SKIPPED {name}: {exc}")
            note_skip(profile, notebook, name, str(exc))
            continue
        yield data  # a generated stand-in was announced by the data layer (one line per dataset)


def note_skip(profile: Profile, notebook: str, dataset: str, reason: str) -> None:
    path = reports_dir(profile, "tables") / "skipped_datasets.csv"
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["notebook", "dataset", "reason"])
    old = old[~((old["notebook"] == notebook) & (old["dataset"] == dataset))]
    row = pd.DataFrame([{"notebook": notebook, "dataset": dataset, "reason": reason}])
    save_table(profile, "skipped_datasets", pd.concat([old, row], ignore_index=True))


def templates(profile: Profile, data: DatasetBundle) -> list[str]:
    return list(profile.zero_shot.templates) or templates_for(data.domain)


def class_texts(profile: Profile, data: DatasetBundle) -> list[list[str]]:
    return class_prompts(data.class_names, templates(profile, data))
