"""Transitional alias of :mod:`medlib.outputs.records` (removed once every importer uses that module)."""

from .outputs.records import *  # noqa: F401,F403
from .outputs.records import read_metrics  # noqa: F401
