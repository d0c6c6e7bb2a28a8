"""Transitional alias (removed once the training engine imports :mod:`medlib.train.losses`)."""

from .train.losses import clip_loss, label_aware_clip_loss, make_loss

__all__ = ["clip_loss", "label_aware_clip_loss", "make_loss"]
