"""Which project modules a selection of tests reaches: ``make test-fast`` must still reach every module.

A test file reaches what it imports (at any depth, helpers included), the ``tools/`` scripts,
``configs/`` files (with their ``_base_`` files and ``custom_imports``) and ``python -m`` modules it
names, and everything those import in turn (import-linter's graph library, grimp, follows the project's
imports, function-local ones too); a registry that imports its package's modules on first use
(``DYNAMIC``) reaches them all. Reaching is importing, not covering
every line: it proves that no module is left without a single test in the fast selection.
"""
from __future__ import annotations

import ast
import fnmatch
from collections.abc import Iterable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("dar_common", "pretrain", "transfer")
TOOLS = ROOT / "tools"
CONFIGS = ROOT / "configs"
# modules that import every module of a package at run time (pkgutil), which no import statement shows
DYNAMIC = {"pretrain.methods.base": "pretrain.methods."}


@cache
def _graph():
    import grimp

    return grimp.build_graph(*PACKAGES)


def project_modules() -> set[str]:
    """Every module of the three packages, and every ``tools/*.py`` script (as ``tools/<name>.py``)."""
    return set(_graph().modules) | {str(p.relative_to(ROOT)) for p in TOOLS.rglob("*.py") if p.name != "__init__.py"}


def _names_in(path: Path) -> set[str]:
    """Modules imported by a Python file, and strings in it that name a module or a ``tools/`` script."""
    tree = ast.parse(path.read_text(), str(path))
    modules, tools = set(_graph().modules), {p.name: str(p.relative_to(ROOT)) for p in TOOLS.rglob("*.py")}
    configs = {p.name: p for p in CONFIGS.rglob("*.py")}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in modules:  # python -m pretrain.torchrun, custom_imports, ...
                out.add(text)
            name = Path(text).name
            if name in tools and (text == name or text.endswith(tools[name])):  # ROOT / "tools" / "x.py"
                out.add(tools[name])
            for config in fnmatch.filter(configs, name) if name.endswith(".py") else []:  # globs too
                out.add(str(configs[config].relative_to(ROOT)))
            base = (path.parent / text).resolve() if text.endswith(".py") else None
            if base is not None and base.is_relative_to(CONFIGS) and base.is_file():  # a config's _base_
                out.add(str(base.relative_to(ROOT)))
    return out


def reached(test_files: Iterable[Path]) -> set[str]:
    """The project modules and tools that ``test_files`` reach (see the module docstring)."""
    graph, modules = _graph(), set(_graph().modules)
    helpers = {f"helpers.{p.stem}": p for p in (ROOT / "tests" / "helpers").glob("*.py")}
    todo, seen_files, names = [Path(f) for f in test_files], set(), set()
    while todo:
        path = todo.pop()
        if path in seen_files:
            continue
        seen_files.add(path)
        found = _names_in(path)
        names |= found
        todo += [helpers[n] for n in found if n in helpers]
        todo += [ROOT / n for n in found if n.startswith(("tools/", "configs/"))]
    out = {n for n in names if n in modules or n.startswith("tools/")}
    while True:  # what those import, and the registries' packages, until nothing new
        before = len(out)
        for module in [n for n in out if n in modules]:
            out |= graph.find_upstream_modules(module)
            out |= {m for m in modules if module.startswith(m + ".")}  # a package's __init__ runs first
        for module, package in DYNAMIC.items():
            if module in out:
                out |= {m for m in modules if m.startswith(package)}
        if len(out) == before:
            return out
