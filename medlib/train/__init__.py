"""Training CLIP models, one job per module (as open_clip's training package):

====================  ====================================================================
``variants.py``       :func:`train` with a variant (fine-tune, linear probe, LP-FT); WiSE-FT
``fit.py``            the epoch loop (contrastive, label, multilabel): checkpoints, resume
``engine.py``         one run's state and steps: a training epoch, a validation pass
``heads.py``          classifier heads from class prompts, :func:`predict`
``losses.py``         contrastive and label losses, the loss factory
``class_weights.py``  class weights and the class-balanced sampler (from the training labels)
``optim.py``          trainable parameters, weight-decay groups, the optimizer
``scheduler.py``      learning-rate warmup + cosine schedule
``checkpoint.py``     the one checkpoint format of both trainers (plain tensors, with a digest)
``validation.py``     split checks and the per-epoch validation metric
``result.py``         :class:`TrainResult`
``distributed.py``    several processes: this rank's rows, gathering (DDP under torchrun)
``launch.py``         ``torchrun -m medlib.train.launch <run spec>`` and its launcher (several processes)
``cnn.py``            the supervised ResNet-18 baseline, on the same checkpoints and validation
====================  ====================================================================
"""

from .heads import ClipClassifier, head_from_texts, predict
from .result import MODES, TrainResult
from .variants import VARIANTS, lp_ft, probe_config, train, wise_ft, wise_interpolate

__all__ = ["VARIANTS", "ClipClassifier", "MODES", "TrainResult", "head_from_texts", "lp_ft", "predict",
           "probe_config", "train", "wise_ft", "wise_interpolate"]
