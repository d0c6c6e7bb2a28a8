"""Run profiles: every knob of a run, as YAML, loaded into typed dataclasses and checked.

==============  ==========================================================================
``schema``      the dataclasses (:class:`Profile` and its sections), choices, numeric ranges
``load``        :func:`load_profile`: a name or YAML path, dotted-key overrides, every check
``profiles/``   ``smoke.yaml`` (CPU, minutes) and ``full.yaml`` (one GPU, the study)
==============  ==========================================================================
"""

from .load import PROFILE_DIR, available_profiles, load_profile, profile_path, project_root
from .schema import (CHOICES, NOTICES, RUN_KINDS, CaptionFinetuneConfig, DatasetSpec, DistributedConfig, ImbalanceConfig,
                     LabelFinetuneConfig, ModelSpec, Profile, RetrievalStudyConfig, SotaConfig, TrainConfig,
                     ZeroShotConfig)

__all__ = ["CHOICES", "NOTICES", "PROFILE_DIR", "RUN_KINDS", "CaptionFinetuneConfig", "DatasetSpec", "DistributedConfig",
           "ImbalanceConfig", "LabelFinetuneConfig", "ModelSpec", "Profile", "RetrievalStudyConfig", "SotaConfig",
           "TrainConfig", "ZeroShotConfig", "available_profiles", "load_profile", "profile_path", "project_root"]
