"""``uniform``: every sample every epoch, reshuffled per epoch -- the 100% baseline."""
from __future__ import annotations

from .base import SubsetMethod, register_method


@register_method("uniform")
class Uniform(SubsetMethod):
    """Every sample every epoch, reshuffled (the 100% baseline)."""
