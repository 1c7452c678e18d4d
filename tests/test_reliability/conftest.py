"""Shared fixture of the reliability tests: one uninterrupted reference run per (config, options, ranks).

Under pytest-xdist each worker has its own session, so the runs live in the folder the workers share
(the parent of each worker's base temp dir) behind a file lock: the first worker to need a reference
runs it, the others wait for it and read it (the pytest-xdist docs' recipe for a session-wide fixture).
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from filelock import FileLock
from helpers.harness import Reference, RunRecord, reference_run


class References:
    def __init__(self, factory: pytest.TempPathFactory, worker: str):
        # with xdist every worker's base temp dir is a sibling in one folder; without it, use our own
        base = factory.getbasetemp()
        self._root = (base.parent if worker != "master" else base) / "references"
        self._root.mkdir(parents=True, exist_ok=True)
        self._done: dict[tuple, Reference] = {}

    def get(self, config: Path, options: list[str], ranks: int = 1) -> Reference:
        key = (str(config), tuple(options), ranks)
        if key not in self._done:
            self._done[key] = self._shared(config, list(options), ranks)
        return self._done[key]

    def _shared(self, config: Path, options: list[str], ranks: int) -> Reference:
        digest = hashlib.sha1(json.dumps([str(config), options, ranks]).encode()).hexdigest()[:12]
        folder = self._root / f"{config.stem}_{ranks}r_{digest}"
        record = folder / "reference.json"
        with FileLock(str(folder) + ".lock"):
            if not record.is_file():  # a failed run leaves no record: the next test runs it again
                shutil.rmtree(folder / "run", ignore_errors=True)
                ref = reference_run(config, folder / "run", options, ranks)
                record.write_text(json.dumps({"events": ref.events, "run": vars(ref.run)}))
        saved = json.loads(record.read_text())
        return Reference(folder / "run", [tuple(e) for e in saved["events"]], RunRecord(**saved["run"]))


@pytest.fixture(scope="session")
def references(tmp_path_factory, worker_id) -> References:
    return References(tmp_path_factory, worker_id)
