"""Shared fixture of the pre-training tests: tiny real runs on scikit-learn's digits, each run once per session
(for all xdist workers: ``helpers.session_once``; the tests only read the finished runs)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.session_once import run_once, shared_root

from pretrain.cli import train_main

ROOT = Path(__file__).resolve().parents[2]


class TinyRuns:
    """Runs ``configs/pretrain/tiny_digits_<method>.py`` in this process; finished runs are cached."""

    configs = ROOT / "configs" / "pretrain"

    def __init__(self, tmp_path_factory, worker_id: str):
        self._root = shared_root(tmp_path_factory, worker_id) / "tiny_runs"

    def run(self, method: str, work_dir: Path, *options: str, resume: bool = False) -> int:
        argv = [str(self.configs / f"tiny_digits_{method}.py"), "--work-dir", str(work_dir)]
        if options:
            argv += ["--cfg-options", *options]
        if resume:
            argv.append("--resume")
        return train_main(argv)

    def finished(self, method: str) -> Path:
        """Work dir of an uninterrupted run of ``method`` (run on first use in the session)."""
        def make(folder: Path) -> dict:
            assert self.run(method, folder / "run") == 0
            return {}

        run_once(self._root / method, make)
        return self._root / method / "run"

    @staticmethod
    def log(work_dir: Path) -> list[dict]:
        lines = (Path(work_dir) / "log.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, worker_id) -> TinyRuns:
    return TinyRuns(tmp_path_factory, worker_id)
