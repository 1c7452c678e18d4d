"""Selection methods: one module each, registered by ``@register_method`` (protocol in :mod:`.base`).

Every module of this package is imported on first use of the registry (:func:`load_all`), so adding a
method is adding its module: nothing here lists the methods.
"""
from __future__ import annotations

from .base import METHODS, SelectionMethod, build_method, load_all, method_class, register_method

__all__ = ["METHODS", "SelectionMethod", "build_method", "list_methods", "load_all", "method_class",
           "register_method"]


def list_methods() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered method, in registration order."""
    load_all()
    return [(name, cls.description()) for name, cls in METHODS.items()]
