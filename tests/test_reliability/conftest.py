"""Shared fixture of the reliability tests: one uninterrupted reference run per (config, options, ranks)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers.harness import Reference, reference_run


class References:
    def __init__(self, factory: pytest.TempPathFactory):
        self._factory, self._done = factory, {}

    def get(self, config: Path, options: list[str], ranks: int = 1) -> Reference:
        key = (str(config), tuple(options), ranks)
        if key not in self._done:
            self._done[key] = reference_run(config, self._factory.mktemp(f"ref_{config.stem}_{ranks}r") / "run",
                                            options, ranks)
        return self._done[key]


@pytest.fixture(scope="session")
def references(tmp_path_factory) -> References:
    return References(tmp_path_factory)
