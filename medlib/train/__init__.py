"""Training CLIP models, one job per module (as open_clip's training package):

=================  ====================================================================
``engine.py``      the loop: :func:`train` (contrastive, label, multilabel), resume
``heads.py``       classifier heads from class prompts, :func:`predict`
``variants.py``    LP-FT (:func:`lp_ft`) and WiSE-FT (:func:`wise_ft`)
``optim.py``       trainable parameters, weight-decay groups, the optimizer
``scheduler.py``   learning-rate warmup + cosine schedule
``checkpoint.py``  the one checkpoint format (also used by ``medlib.train.cnn``)
``validation.py``  split checks and the per-epoch validation metric
``result.py``      :class:`TrainResult`
``distributed.py`` several processes: this rank's rows, gathering (DDP under torchrun)
``launch.py``      ``torchrun -m medlib.train.launch <run spec>`` and the launcher the pipeline calls
=================  ====================================================================

The loss factory is :func:`medlib.losses.make_loss`, next to the losses.
"""

from .engine import train
from .heads import ClipClassifier, head_from_texts, predict
from .result import MODES, TrainResult
from .variants import lp_ft, wise_ft, wise_interpolate

__all__ = ["train", "predict", "head_from_texts", "ClipClassifier", "TrainResult", "MODES", "lp_ft", "wise_ft",
           "wise_interpolate"]
