"""``dar_random``: DaR's schedule dropping uniformly random samples (the random-drop control)."""
from __future__ import annotations

from .base import register_method
from .dar import DropAndRefresh


@register_method("dar_random")
class DropAndRefreshRandom(DropAndRefresh):
    """DaR's schedule (same W, I, p, R, alpha) dropping uniformly random samples: the random-drop control."""

    mode = "random"
