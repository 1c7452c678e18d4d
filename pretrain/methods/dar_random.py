"""``dar_random``: DaR's schedule dropping uniformly random samples (the random-drop control)."""
from __future__ import annotations

from .base import register_method
from .dar import DropAndRefresh


@register_method("dar_random")
class DropAndRefreshRandom(DropAndRefresh):
    """DaR's schedule (same W, I, p, R, alpha) dropping uniformly random samples: the random-drop control."""

    mode = "random"
    # its drops come from a generator seeded alike on every rank; the loss table it gathers (only dumped)
    # is DaR's, which keeps the 2-rank CI coverage
    has_cross_rank_state = False
