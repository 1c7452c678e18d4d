"""From a config's ``method`` and ``schedule`` to what a run trains: no data, no model.

``--dry-run`` and the trainer use the same :func:`make_plan` (the method's own ``plan()``), so the
printed cost is the trained one. The methods and their keys: ``tools/train.py --list-methods`` and
``pretrain/methods/``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ConfigError
from .methods import METHODS, build_method, load_all
from .methods.base import Plan, RunInfo, describe

__all__ = ["METHODS", "ConfigError", "Plan", "describe", "make_plan"]

load_all()  # METHODS holds every registered method once this module is imported


def make_plan(method: Mapping[str, Any], epochs: int, num_samples: int, *, batch_size: int = 1, img_size: int = 224,
              world_size: int = 1, seed: int = 0) -> Plan:
    """Check ``method`` (``type`` + its keys) and plan the run; ``batch_size`` is per rank."""
    return build_method(method, RunInfo(num_samples, epochs, batch_size, img_size, world_size, 0, seed)).plan()
