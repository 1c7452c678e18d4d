"""A meta-path finder for ``mmcv._ext`` on the lite stack, installed at interpreter start by a ``.pth`` file.

mmcv-lite has no compiled ``mmcv._ext``; :mod:`transfer.mm.mmcv_lite_ops` provides one on torchvision's
kernels, but only once ``transfer`` is imported. The toolboxes' own scripts (e.g. mmdet's
``.mim/tools/test.py``) import ``mmcv.ops`` before a config's ``custom_imports`` can import ``transfer``,
and an upstream model built without ``transfer`` never imports it. ``tools/setup_env.py`` therefore writes
``dar_transfer_mmcv_ext.pth`` into the venv's site-packages; its one line executes this file (by path:
importing the ``transfer`` package would import torch at every interpreter start). Nothing of an installed
package is edited.

:class:`LiteExtFinder` is appended to the END of ``sys.meta_path``: where mmcv has its compiled ``_ext``
(the full stack) the ordinary path finder finds it first and this finder is never asked. Asked for
``mmcv._ext``, it imports :mod:`transfer.mm.mmcv_lite_ops` (only then: the cost falls on processes that
import ``mmcv.ops``) and hands out its stand-in module. Standard library only.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

NAME = "mmcv._ext"
PTH_NAME = "dar_transfer_mmcv_ext.pth"


class LiteExtFinder(importlib.abc.MetaPathFinder):
    """Finds ``mmcv._ext`` (only that name) when nothing before it on ``sys.meta_path`` did."""

    loading = False  # True while the stand-in is being built (mmcv_lite_ops.install must not refuse then)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != NAME:
            return None
        return importlib.machinery.ModuleSpec(NAME, _Loader(self), origin=__file__)


class _Loader(importlib.abc.Loader):
    def __init__(self, finder: LiteExtFinder):
        self.finder = finder

    def create_module(self, spec):
        self.finder.loading = True
        try:
            from transfer.mm import mmcv_lite_ops  # imports transfer (its compat fixes) on the way
        finally:
            self.finder.loading = False
        return mmcv_lite_ops.build_ext_module()

    def exec_module(self, module) -> None:
        pass


def installed() -> LiteExtFinder | None:
    """The finder on ``sys.meta_path``, if the ``.pth`` (or :func:`install`) put one there."""
    return next((f for f in sys.meta_path if type(f).__name__ == "LiteExtFinder"), None)


def install() -> LiteExtFinder:
    """Append the finder to ``sys.meta_path`` once (what the ``.pth`` line runs)."""
    finder = installed()
    if finder is None:
        finder = LiteExtFinder()
        sys.meta_path.append(finder)
    return finder


def pth_line(path: str) -> str:
    """The ``.pth`` line that runs this file (given by absolute ``path``) at interpreter start; a missing
    file (the checkout moved) is skipped silently, as a ``.pth`` line must never break Python."""
    return (f"import os; _p = {path!r}; os.path.isfile(_p) and exec(compile(open(_p).read(), _p, 'exec'), "
            "{'__name__': '_dar_mmcv_ext_finder', '__file__': _p})\n")


if __name__ == "_dar_mmcv_ext_finder":  # executed by the .pth line
    install()
