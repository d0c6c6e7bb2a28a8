"""Models: loading OpenCLIP models, prompts and class texts, preprocessing, augmentation, zero-shot scoring.

==================  ==========================================================================
``load``            build or load a CLIP (tiny configs, open_clip tags, ``hf-hub:``, local files); checkpoints
``prompts``         class phrases, prompt templates per domain, captions from labels
``preprocess``      open_clip's preprocessing as batched tensor operations
``augment``         training-time image augmentation on batches
``zeroshot``        image and text features, prompt ensembles, zero-shot classification scores
``configs/``        the tiny architectures' open_clip configs
==================  ==========================================================================
"""

from .load import (CONFIG_DIR, TINY_ARCHS, ClipBundle, checkpoint_extra, load_checkpoint, load_model, logit_scale,
                   read_checkpoint, resolve_device, save_checkpoint)

__all__ = ["CONFIG_DIR", "TINY_ARCHS", "ClipBundle", "checkpoint_extra", "load_checkpoint", "load_model",
           "logit_scale", "read_checkpoint", "resolve_device", "save_checkpoint"]
