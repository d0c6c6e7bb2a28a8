"""Transitional alias (removed once the training engine imports :mod:`medlib.train.class_weights`)."""

from .train.class_weights import balanced_sampler

__all__ = ["balanced_sampler"]
