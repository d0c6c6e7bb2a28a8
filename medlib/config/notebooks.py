"""The project's numbered notebooks and which of them a profile leaves out."""

from __future__ import annotations

from .schema import Profile

NOTEBOOKS = {
    "01": "01_data_prep",
    "02": "02_zero_shot_baseline",
    "03": "03_caption_finetune",
    "04": "04_label_finetune",
    "05": "05_class_imbalance",
    "06": "06_sota_comparison",
    "07": "07_general_retrieval",
}


def left_out(profile: Profile, notebook: str) -> str:
    """Why ``notebook`` (one of :data:`NOTEBOOKS`, by stem or number) has nothing to do under ``profile`` ('' when
    it has): the profile leaves its study out."""
    lf, nn = profile.label_finetune, notebook[:2]
    if notebook not in (nn, NOTEBOOKS.get(nn)):  # not one of the project's notebooks: no study of the profile's
        return ""
    studies = {"01": ("datasets", [d.name for d in profile.datasets]),
               "02": ("zero_shot.datasets", profile.zero_shot.datasets),
               "03": ("caption_finetune.datasets", profile.caption_finetune.datasets),
               "04": ("label_finetune.datasets and label_finetune.multilabel_datasets",
                      lf.datasets + lf.multilabel_datasets),
               "05": ("imbalance.datasets", profile.imbalance.datasets),
               "06": ("sota.datasets, sota.retrieval_dataset and the fine-tuning studies it compares",
                      profile.sota.datasets + [profile.sota.retrieval_dataset] * bool(profile.sota.retrieval_dataset)
                      + profile.caption_finetune.datasets + lf.datasets + lf.multilabel_datasets),
               "07": ("retrieval_study.datasets", profile.retrieval_study.datasets)}
    key, names = studies.get(nn, ("", ["?"]))
    return "" if names else f"the profile leaves this study out ({key} empty)"
