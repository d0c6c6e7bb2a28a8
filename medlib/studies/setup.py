"""What every notebook does first: load the profile (notebook parameters override single keys), seed, print the
banner; the profile's models, the seeds of each method, the datasets (with skips recorded), prompts."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from ..config.notebooks import NOTEBOOKS, left_out  # noqa: F401 - NOTEBOOKS: the notebooks read it here
from ..config import ModelSpec, Profile, env_overrides, format_overrides, load_profile
from ..data import DatasetSkipped, get_dataset
from ..data.base import DatasetBundle
from ..models import ClipBundle, load_model, resolve_device
from ..outputs.records import reports_dir, save_table
from ..models.prompts import class_prompts, phrases_for, templates_for



def load(name: str = "smoke", data_dir: str | None = None, seed: int | None = None, **overrides: Any) -> Profile:
    """Load the profile ``name`` (a name or a YAML path) with the run's ``--set`` overrides (``$MEDLIB_OVERRIDES``,
    set by ``./run_all.sh``; none in JupyterLab) and the notebook's parameters over them; seed everything, print
    the banner."""
    given = env_overrides()
    profile = load_profile(name, {**given, "seed": seed, **overrides}, data_dir=data_dir)
    torch.manual_seed(profile.seed)
    np.random.seed(profile.seed)
    print(banner(profile, given))
    return profile


def banner(profile: Profile, overrides: dict[str, Any] | None = None) -> str:
    head = profile.notice or f"Profile {profile.name!r}."
    sets = f"; --set {' '.join(format_overrides(overrides))}" if overrides else ""
    return (f"{head}\nprofile {profile.name} (hash {profile.hash()}{sets}), seeds {profile.seed_list} (for "
            f"{', '.join(profile.seeded_methods)}; other runs seed {profile.seed}), device {profile.device}, "
            f"data {profile.data_dir}")


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


def described(profile: Profile, table: pd.DataFrame) -> pd.DataFrame:
    """``table`` (one row per ``dataset``) with what the profile says of each dataset: its ``description`` and
    ``citation``, and its ``license`` where the profile names one (else the source's)."""
    table = table.copy()
    specs = {d.name: d for d in profile.datasets}
    for key in ("description", "citation"):
        table[key] = [getattr(specs.get(n), key, "") or "" for n in table.get("dataset", [])]
    if "license" in table:
        table["license"] = [getattr(specs.get(n), "license", "") or lic for n, lic in zip(table["dataset"],
                                                                                         table["license"])]
    return table


def skipped(profile: Profile, notebook: str) -> bool:
    """True (and one printed line) when the profile leaves ``notebook``'s study out: its cells then do nothing."""
    reason = left_out(profile, notebook)
    if reason:
        print(f"SKIPPED {notebook}: {reason}")
    return bool(reason)


def note_skip(profile: Profile, notebook: str, dataset: str, reason: str) -> None:
    path = reports_dir(profile, "tables") / "skipped_datasets.csv"
    old = pd.read_csv(path) if path.is_file() else pd.DataFrame(columns=["notebook", "dataset", "reason"])
    old = old[~((old["notebook"] == notebook) & (old["dataset"] == dataset))]
    row = pd.DataFrame([{"notebook": notebook, "dataset": dataset, "reason": reason}])
    save_table(profile, "skipped_datasets", pd.concat([old, row], ignore_index=True))


def domain(profile: Profile, data: DatasetBundle) -> str:
    """The prompt family of ``data``: the profile's ``domain:`` for it, else the source's (a CSV of your own pairs:
    ``general``, CLIP's "a photo of {}." family; chest X-ray sets ``chest_xray``; Flickr30K/COCO ``general``; the
    other medical sources ``medical``)."""
    spec = _spec(profile, data)
    if spec is not None and spec.domain:
        return spec.domain
    return "general" if spec is not None and spec.source == "csv_pairs" else data.domain


def templates(profile: Profile, data: DatasetBundle) -> list[str]:
    """The prompt templates of ``data``: its own (``datasets[].templates``), else the profile's
    (``zero_shot.templates``), else the ensemble of its domain (:func:`domain`)."""
    spec = _spec(profile, data)
    return list(spec.templates if spec is not None and spec.templates else profile.zero_shot.templates) or \
        templates_for(domain(profile, data))


def class_phrases(profile: Profile, data: DatasetBundle) -> list[str]:
    """What each class of ``data`` stands for in prompts: the profile's ``class_texts`` for it, else its name."""
    spec = _spec(profile, data)
    return phrases_for(data.class_names, spec.class_texts if spec is not None else None,
                       f"{profile.name}: datasets[{data.name}].class_texts")


def class_texts(profile: Profile, data: DatasetBundle) -> list[list[str]]:
    """The prompts of each class (one list per class, one prompt per template)."""
    return class_prompts(class_phrases(profile, data), templates(profile, data))


def _spec(profile: Profile, data: DatasetBundle):
    return next((d for d in profile.datasets if d.name == data.name), None)
