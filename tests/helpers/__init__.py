"""Shared test helpers, importable as ``helpers`` (``pythonpath = ["tests"]`` in pyproject.toml).

Scripts in this package are also run as subprocesses (``python tests/helpers/<name>.py``); they import
their siblings as top-level modules, which works because a script's own folder is first on its path.
"""
