"""A real ``kill -9`` in the middle of an epoch, then ``--resume``: the run must end as an uninterrupted one.

Not a test file: the method test files import it (``harness()`` in each puts this folder on the path).
Every run is ``tools/train.py`` in its own process; the kill is a real SIGKILL sent while the process
trains a given epoch, a few steps in (not a planned ``max_steps`` stop), so the resume starts from the
epoch checkpoint before it and retrains the interrupted epoch from its first step.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def _argv(config: str, work_dir: Path, options: list[str], resume: bool) -> list[str]:
    argv = [sys.executable, str(ROOT / "tools" / "train.py"), str(ROOT / "configs" / "pretrain" / config),
            "--work-dir", str(work_dir)]
    argv += ["--cfg-options", *options] if options else []
    return argv + (["--resume"] if resume else [])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def train(config: str, work_dir: Path, options: list[str], resume: bool = False) -> None:
    proc = subprocess.run(_argv(config, work_dir, options, resume), capture_output=True, text=True, cwd=ROOT,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def log_lines(work_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (work_dir / "log.jsonl").read_text().splitlines() if x.strip()]


FAULTS = ROOT / "tests" / "helpers" / "faults.py"  # marks each step / end-of-epoch rule in a log


def _steps_seen(marks: Path, epoch: int) -> int:
    """How many ``step`` marks follow the end-of-epoch rule of ``epoch - 1`` in a faults log (-1: not there)."""
    lines = marks.read_text().splitlines() if marks.is_file() else []
    points = [ln.split()[2:4] for ln in lines if len(ln.split()) >= 4]
    if epoch > 1:
        if ["selection", str(epoch - 1)] not in points:
            return -1
        points = points[points.index(["selection", str(epoch - 1)]) + 1:]
    return sum(1 for point, _ in points if point == "step")


def kill_during_epoch(config: str, work_dir: Path, options: list[str], epoch: int, after_steps: int = 2) -> None:
    """Start a run and SIGKILL it once it has trained ``after_steps`` steps of ``epoch`` (mid-epoch).

    The run goes through ``tests/helpers/faults.py``, which only marks each optimizer step and
    end-of-epoch rule in a log (no hold here): the kill follows the run's own progress, not a sleep, so it
    lands inside the epoch on a fast machine as on a crowded one.
    """
    marks = work_dir.parent / f"{work_dir.name}.faults.log"
    argv = _argv(config, work_dir, options, False)
    proc = subprocess.Popen([argv[0], str(FAULTS), *argv[1:]], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT, env={**_env(), "DAR_FAULTS_LOG": str(marks)})
    deadline = time.time() + 600
    while _steps_seen(marks, epoch) < after_steps:
        assert proc.poll() is None, f"the run ended before epoch {epoch}:\n{proc.stderr.read()[-3000:]}"
        assert time.time() < deadline, "the run is too slow"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    # it died inside the epoch: that epoch neither logged nor checkpointed
    assert [x["epoch"] for x in log_lines(work_dir)] == list(range(1, epoch))
    assert not (work_dir / f"epoch_{epoch}.pth").exists()


def same(a, b) -> bool:
    """Equal nested states: tensors bit-identical (NaN where NaN), everything else ``==``."""
    if isinstance(a, torch.Tensor):
        return (isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(torch.isnan(a) if a.is_floating_point() else a,
                                torch.isnan(b) if b.is_floating_point() else b)
                and (not a.is_floating_point() or torch.equal(a.nan_to_num(0.0), b.nan_to_num(0.0))))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def without_wall(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "wall_s"} for line in lines]


def check_kill_and_resume(config: str, tmp_path: Path, options: list[str], kill_in: int, epochs: int) -> dict:
    """Uninterrupted run vs killed-in-epoch-``kill_in`` + resumed run: log lines (wall-clock aside), final
    weights, the method's shared and per-rank state. Returns the uninterrupted run's final checkpoint."""
    full, cut = tmp_path / "full", tmp_path / "killed"
    train(config, full, options)
    kill_during_epoch(config, cut, options, kill_in)
    train(config, cut, options, resume=True)
    assert without_wall(log_lines(cut)) == without_wall(log_lines(full))
    a = torch.load(full / f"epoch_{epochs}.pth", map_location="cpu", weights_only=False)
    b = torch.load(cut / f"epoch_{epochs}.pth", map_location="cpu", weights_only=False)
    assert same(a["model"], b["model"])
    assert same(a["method"], b["method"])
    assert same([r["method"] for r in a["ranks"]], [r["method"] for r in b["ranks"]])
    return a


def rejected(config: str, work_dir: Path, options: list[str]) -> list[str]:
    """Run ``tools/train.py`` with bad ``options``: it must exit 2 before training, writing nothing; the
    stderr lines it printed."""
    proc = subprocess.run(_argv(config, work_dir, options, False), capture_output=True, text=True, cwd=ROOT,
                          env=_env(), timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert not work_dir.exists() or not any(work_dir.iterdir()), "a rejected run wrote to its work dir"
    return proc.stderr.strip().splitlines()
