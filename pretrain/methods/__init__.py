"""Selection methods: one module each, registered by ``@register_method`` (protocol in :mod:`.base`).

Every module of this package is imported on first use of the registry (:func:`load_all`), so adding a
method is adding its module: nothing here lists the methods.
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import METHODS, SelectionMethod, build_method, method_class, register_method

__all__ = ["METHODS", "SelectionMethod", "build_method", "list_methods", "load_all", "method_class",
           "register_method"]

_loaded = False


def load_all() -> None:
    """Import every method module of this package once (their decorators fill ``METHODS``)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name != "base":
            importlib.import_module(f"{__name__}.{info.name}")


def list_methods() -> list[tuple[str, str]]:
    """``(name, one-line description)`` of every registered method, in registration order."""
    load_all()
    return [(name, cls.description()) for name, cls in METHODS.items()]
