"""Work done once per test session, however many pytest-xdist workers need it.

Under pytest-xdist each worker has its own session, so a session-scoped fixture would run once per worker.
The pytest-xdist docs' recipe for a session-wide fixture: the work lives in the folder the workers share
(the parent of each worker's base temp dir) behind a file lock; the first worker to need it does it and
saves a JSON record, the others wait for the lock and read the record.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from filelock import FileLock


def shared_root(factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The folder every worker of this session sees (this session's base temp dir without xdist)."""
    base = factory.getbasetemp()
    return base.parent if worker_id != "master" else base


def run_once(folder: Path, make: Callable[[Path], dict], record: str = "record.json") -> dict:
    """``make(folder)``'s record, from ``folder/record`` if a worker already made it, else made now into a
    fresh ``folder`` (a failed ``make`` leaves no record: the next caller starts over)."""
    saved = folder / record
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        if not saved.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            saved.write_text(json.dumps(make(folder)))
    return json.loads(saved.read_text())
