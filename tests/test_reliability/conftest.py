"""Shared fixture of the reliability tests: one uninterrupted reference run per (config, options, ranks).

Under pytest-xdist each worker has its own session: each reference is run once for all of them
(``helpers.session_once``): the first worker to need it runs it, the others wait for it and read it.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers.harness import Reference, RunRecord, reference_run
from helpers.session_once import run_once, shared_root


class References:
    def __init__(self, factory: pytest.TempPathFactory, worker: str):
        self._root = shared_root(factory, worker) / "references"
        self._done: dict[tuple, Reference] = {}

    def get(self, config: Path, options: list[str], ranks: int = 1) -> Reference:
        key = (str(config), tuple(options), ranks)
        if key not in self._done:
            self._done[key] = self._shared(config, list(options), ranks)
        return self._done[key]

    def _shared(self, config: Path, options: list[str], ranks: int) -> Reference:
        digest = hashlib.sha1(json.dumps([str(config), options, ranks]).encode()).hexdigest()[:12]
        folder = self._root / f"{config.stem}_{ranks}r_{digest}"

        def make(folder: Path) -> dict:
            ref = reference_run(config, folder / "run", options, ranks)
            return {"events": ref.events, "run": vars(ref.run)}

        saved = run_once(folder, make, "reference.json")
        return Reference(folder / "run", [tuple(e) for e in saved["events"]], RunRecord(**saved["run"]))


@pytest.fixture(scope="session")
def references(tmp_path_factory, worker_id) -> References:
    return References(tmp_path_factory, worker_id)
