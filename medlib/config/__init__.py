"""Run profiles: every knob of a run, as YAML, loaded into typed dataclasses and checked.

==============  ==========================================================================
``schema``      the dataclasses (:class:`Profile` and its sections), choices, numeric ranges
``load``        :func:`load_profile`: a name or YAML path, dotted-key overrides (``--set``), every check
``notebooks``   the numbered notebooks (:data:`NOTEBOOKS`) and which studies a profile leaves out
``profiles/``   ``smoke.yaml`` (CPU, minutes) and ``full.yaml`` (one GPU, the study)
==============  ==========================================================================
"""

from .load import (OVERRIDES_ENV, PROFILE_DIR, available_profiles, check_overrides, env_overrides, format_overrides,
                   load_profile, parse_overrides, profile_path, project_root)
from .schema import (CHOICES, NOTICES, RUN_KINDS, CaptionFinetuneConfig, DatasetSpec, DistributedConfig, ImbalanceConfig,
                     LabelFinetuneConfig, ModelSpec, Profile, RetrievalStudyConfig, SotaConfig, TrainConfig,
                     ZeroShotConfig)

__all__ = ["CHOICES", "NOTICES", "OVERRIDES_ENV", "PROFILE_DIR", "RUN_KINDS", "CaptionFinetuneConfig", "DatasetSpec", "DistributedConfig",
           "ImbalanceConfig", "LabelFinetuneConfig", "ModelSpec", "Profile", "RetrievalStudyConfig", "SotaConfig",
           "TrainConfig", "ZeroShotConfig", "available_profiles", "check_overrides", "env_overrides", "format_overrides",
           "load_profile", "parse_overrides", "profile_path", "project_root"]
