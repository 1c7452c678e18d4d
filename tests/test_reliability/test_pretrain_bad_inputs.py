"""Pre-training with bad resume checkpoints and failing writes, through real ``tools/train.py`` subprocesses.

* A truncated, foreign or other-world-size resume checkpoint: one ``error:`` line naming it, exit 2,
  before any training.
* A real write failure (EFBIG: ``RLIMIT_FSIZE``, armed when the process opens the file in question --
  ``fsize.py``) in each pre-training writer -- an epoch checkpoint, ``last_checkpoint``, ``log.jsonl``,
  a selection npz, ``backbone.pth``: one ``error:`` line naming the file, exit 1, the previous file
  byte for byte as it was, and no temporary file left.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.harness import ROOT, TINY_OPTIONS, TRAIN, _env, write_record
from helpers.transfer_runs import tool_in_process

CONFIG = ROOT / "configs" / "pretrain" / "tiny_digits_dar.py"
UNIFORM = ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py"
OPTIONS = TINY_OPTIONS  # the interruption tests' options: their reference run is reused
FSIZE = ROOT / "tests" / "helpers" / "fsize.py"


def train(work_dir: Path, *args: str, options: list[str] = OPTIONS, prefix: list[str] | None = None,
          ranks: int = 1, config: Path = CONFIG, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = [str(config), "--work-dir", str(work_dir), "--cfg-options", *options, *args]
    if ranks > 1:
        from helpers.harness import _free_port

        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
               str(_free_port()), str(TRAIN), *cmd, "--launcher", "pytorch"]
    else:
        cmd = [sys.executable, *(prefix or []), str(TRAIN), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=_env(work_dir.parent / "marks.txt"),
                          timeout=timeout)


def refused(work_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """:func:`train` for a refusal before training, in this process (``tools/train.py``'s ``main``): ~10 s of
    imports less; the process-level path is ``tests/test_pretrain/test_cli.py``'s
    ``test_tools_train_exits_nonzero_with_one_line``."""
    return tool_in_process("train.py", CONFIG, "--work-dir", work_dir, "--cfg-options", *OPTIONS, *args)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    text = (proc.stderr + proc.stdout).replace("\r", "\n")
    return [line[line.index("error: "):] for line in text.splitlines() if "error: " in line]


def one_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    errors = error_lines(proc)
    assert proc.returncode == code, (proc.returncode, proc.stderr[-3000:])
    assert len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback (most recent call last)" not in proc.stderr, proc.stderr[-3000:]
    assert all(n in errors[0] for n in needles), (errors[0], needles)
    return errors[0]


@pytest.fixture(scope="module")
def step_checkpoint(tmp_path_factory) -> Path:
    """A run stopped after 2 steps (``runtime.max_steps``): its resumable ``step_2.pth``."""
    work = tmp_path_factory.mktemp("stopped") / "run"
    proc = train(work, options=[*OPTIONS, "runtime.max_steps=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work / "step_2.pth"


def _bad_input(what: str, proc: subprocess.CompletedProcess, line: str) -> None:
    write_record("pretrain_bad_input", {"tool": "tools/train.py", "input": what, "exit_code": proc.returncode,
                                        "line": line})


@pytest.mark.slow
def test_a_truncated_resume_checkpoint_is_one_line(step_checkpoint, tmp_path):
    bad = tmp_path / "step_2.pth"
    bad.write_bytes(step_checkpoint.read_bytes()[: step_checkpoint.stat().st_size // 2])
    proc = refused(tmp_path / "run", "--resume", str(bad))
    _bad_input("`--resume` a checkpoint cut in half", proc, one_line(proc, 2, "cannot read resume checkpoint", str(bad)))
    # the same file found through last_checkpoint (auto resume)
    work = tmp_path / "auto"
    work.mkdir()
    shutil.copy(bad, work / "step_2.pth")
    (work / "last_checkpoint").write_text(str(work / "step_2.pth"))
    proc = refused(work, "--resume")
    _bad_input("`--resume` (auto) when last_checkpoint names a truncated file", proc,
               one_line(proc, 2, "cannot read resume checkpoint"))
    assert not (work / "log.jsonl").exists()  # nothing started


@pytest.mark.parametrize("kind", ["backbone", "state_dict", "text"])
def test_a_foreign_resume_checkpoint_is_one_line(kind, step_checkpoint, tmp_path):
    bad = tmp_path / f"{kind}.pth"
    state = torch.load(step_checkpoint, map_location="cpu", weights_only=False)
    if kind == "backbone":  # what tools/train.py writes at the end, and publish ships: weights only
        torch.save({"state_dict": state["model"], "meta": state["meta"]}, bad)
        needle = "is not a pre-training checkpoint with resume state"
    elif kind == "state_dict":  # a plain timm state dict
        torch.save(state["model"], bad)
        needle = "is not a pre-training checkpoint with resume state"
    else:
        bad.write_text("not a checkpoint\n")
        needle = "cannot read resume checkpoint"
    proc = refused(tmp_path / "run", "--resume", str(bad))
    _bad_input(f"`--resume` a {kind.replace('_', ' ')} file", proc, one_line(proc, 2, needle, str(bad)))


@pytest.mark.slow
def test_a_checkpoint_of_another_world_size_is_one_line(step_checkpoint, tmp_path):
    proc = train(tmp_path / "run", "--resume", str(step_checkpoint), options=["data.batch_size=64", "data.img_size=16"],
                 ranks=2)
    errors = error_lines(proc)
    assert proc.returncode != 0 and len(errors) == 1, proc.stderr[-3000:]
    assert "world size: 1 vs 2" in errors[0] and "data.batch_size: 128 vs 64" in errors[0]
    # torchrun reports its failed workers with a traceback of its own; none comes from the workers
    assert not re.search(r'File ".*/(pretrain|tools)/', proc.stderr), proc.stderr[-3000:]
    _bad_input("`--resume` a 1-rank checkpoint on 2 ranks (torchrun)", proc, errors[0])


# -- write failures ---------------------------------------------------------------------------------------------
def _finished_copy(references, tmp_path: Path, resume_from: str, config: Path = CONFIG) -> Path:
    """A copy of a finished run whose last_checkpoint names ``resume_from`` (a resume retrains from there)."""
    reference = references.get(config, OPTIONS)
    work = tmp_path / "run"
    shutil.copytree(reference.work_dir, work)
    (work / "last_checkpoint").write_text(str(work / resume_from))
    return work


def _snapshot(work: Path) -> dict[str, bytes]:
    return {str(p.relative_to(work)): p.read_bytes() for p in work.rglob("*") if p.is_file()}


WRITERS = {  # writer: (pattern armed at, limit in bytes, resume from, files that must stay as they were)
    "epoch checkpoint": ("epoch_3.pth", 1 << 20, "epoch_2.pth", ["epoch_3.pth", "last_checkpoint"]),
    "last_checkpoint": ("last_checkpoint", 8, "epoch_2.pth", ["last_checkpoint"]),
    "selection npz": ("epoch_003.npz", 1000, "epoch_2.pth", ["selection/epoch_003.npz"]),
    "backbone.pth": ("backbone.pth", 100_000, "epoch_5.pth", ["backbone.pth"]),
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_failed_write_keeps_the_previous_file_and_is_one_line(writer, references, tmp_path):
    pattern, limit, resume_from, kept = WRITERS[writer]
    work = _finished_copy(references, tmp_path, resume_from)
    before = _snapshot(work)
    proc = train(work, "--resume", prefix=[str(FSIZE), str(limit), pattern])
    line = one_line(proc, 1, "File too large", pattern)
    after = _snapshot(work)
    for name in kept:
        assert after[name] == before[name], f"{name} changed"
    temporaries = sorted(p.name for p in work.rglob(".*.tmp*"))
    assert temporaries == []
    write_record("pretrain_write_failure", {"writer": writer, "exit_code": proc.returncode, "unchanged": True,
                                            "files_checked": len(kept), "temporaries": temporaries, "line": line})


def test_a_failed_log_append_keeps_the_whole_lines(references, tmp_path):
    """The resume trims log.jsonl to epochs 1-2 (a whole-file atomic write, under the limit); the limit
    then cuts epoch 3's append half way: the half line is cut back off. (uniform: no selection file is
    written before the log line.)"""
    work = _finished_copy(references, tmp_path, "epoch_2.pth", UNIFORM)
    lines = (work / "log.jsonl").read_text().splitlines(keepends=True)
    kept = "".join(lines[:2])
    proc = train(work, "--resume", config=UNIFORM, prefix=[str(FSIZE), str(len(kept) + 40), "log.jsonl"])
    line = one_line(proc, 1, "File too large", "log.jsonl")
    assert (work / "log.jsonl").read_text() == kept
    temporaries = sorted(p.name for p in work.rglob(".*.tmp*"))
    assert temporaries == []
    write_record("pretrain_write_failure", {"writer": "log.jsonl (append cut half way)", "exit_code": proc.returncode,
                                            "unchanged": True, "files_checked": 1, "temporaries": temporaries,
                                            "line": line})
