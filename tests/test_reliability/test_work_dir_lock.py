"""Issue 20, one run per work dir: real concurrent subprocesses of ``tools/train.py`` (pre-training and
fine-tuning), ``tools/test.py`` and ``tools/publish_model.py``.

The holder is held still with SIGSTOP once it has taken the lock (a live process that holds it, however
slow the machine), the second run must stop at once with one ``error:`` line naming the holder's pid and
host; a holder killed with SIGKILL leaves a lock that the next run takes over (the kernel dropped it).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.transfer_runs import ROOT, TINY, assert_one_error_line, tool, write_record

from dar_common.workdir import LOCK_FILE, hold_work_dir, release_work_dir, work_dir_holder

PRETRAIN = ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py"
PRE_FAST = ["--cfg-options", "data.img_size=16", "schedule.epochs=2", "schedule.milestones=[1]"]
SEG = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"
SEG_FAST = ["--cfg-options", "train_cfg.max_iters=1", "default_hooks.checkpoint.interval=1", "val_cfg=None",
            "val_dataloader=None", "val_evaluator=None"]


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), *map(str, args)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})


def held_by(proc: subprocess.Popen, work: Path, timeout: float = 600) -> dict:
    """Wait until ``proc`` has taken ``work``'s lock; its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        try:
            record = json.loads((work / LOCK_FILE).read_text() or "{}")
        except (OSError, ValueError):
            record = {}
        if record.get("pid") == proc.pid:
            return record
        time.sleep(0.1)
    raise AssertionError(f"{proc.args} took no lock on {work} in {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stderr.close()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from transfer.tinydata import generate

    root = tmp_path_factory.mktemp("tiny") / "data"
    generate(root, **TINY)
    return root


def test_lock_is_per_process_and_dropped_at_exit(tmp_path):
    """In process: taking it twice is a no-op; the holder is this process; a child sees it held and, after
    release, free (the kernel's record lock, not the file, decides)."""
    work = tmp_path / "w"
    hold_work_dir(work)
    hold_work_dir(work)
    assert work_dir_holder(work)["pid"] == os.getpid()
    probe = [sys.executable, "-c", "import sys; from dar_common.workdir import work_dir_holder as h; "
             "print((h(sys.argv[1]) or {}).get('pid'))", str(work)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    assert subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip() == str(os.getpid())
    release_work_dir(work)
    assert subprocess.run(probe, capture_output=True, text=True, env=env).stdout.strip() == "None"
    assert (work / LOCK_FILE).is_file()  # the record stays: a dead holder's file is no lock


@pytest.mark.slow
def test_second_pretraining_stops_at_once_and_a_killed_holder_is_taken_over(tmp_path):
    work = tmp_path / "run"
    first = start(PRETRAIN, "--work-dir", work, *PRE_FAST)
    try:
        record = held_by(first, work)
        os.kill(first.pid, signal.SIGSTOP)  # alive, holding the lock, whatever the machine's load
        t0 = time.monotonic()
        second = tool("train.py", PRETRAIN, "--work-dir", work, *PRE_FAST)
        line = assert_one_error_line(second, f"work dir {work.resolve()} is in use", f"pid {first.pid}",
                                     f"host {socket.gethostname()}")
        assert second.returncode == 2 and "Traceback" not in second.stderr
        refused_s = time.monotonic() - t0
        publish = tool("publish_model.py", work, tmp_path / "pub" / "m")
        assert_one_error_line(publish, "still being written", f"pid {first.pid}")
        assert not (tmp_path / "pub").exists()
        os.kill(first.pid, signal.SIGKILL)  # the holder dies without a word: its lock goes with it
        first.wait()
    finally:
        stop(first)
    assert json.loads((work / LOCK_FILE).read_text())["pid"] == record["pid"]  # the stale record is there
    third = tool("train.py", PRETRAIN, "--work-dir", work, *PRE_FAST)
    assert third.returncode == 0, third.stderr[-3000:]
    assert json.loads((work / LOCK_FILE).read_text())["pid"] not in (record["pid"], None)
    summaries = [r for r in map(json.loads, (work / "log.jsonl").read_text().splitlines()) if r["type"] == "summary"]
    assert len(summaries) == 1
    assert tool("publish_model.py", work, tmp_path / "pub" / "m").returncode == 0  # one run, ended: published
    write_record("work_dir_lock", case="second pre-training into a held work dir; SIGKILLed holder taken over",
                 exit_code=second.returncode, line=line, refused_in_s=round(refused_s, 1))


@pytest.mark.slow
def test_publish_refuses_a_log_of_two_runs(tmp_path):
    """The state two unlocked runs left (the issue's case): two summaries in one log.jsonl."""
    work = tmp_path / "run"
    assert tool("train.py", PRETRAIN, "--work-dir", work, *PRE_FAST).returncode == 0
    log = work / "log.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines + [x for x in lines if '"summary"' in x]) + "\n")
    proc = tool("publish_model.py", work, tmp_path / "pub" / "m")
    line = assert_one_error_line(proc, f"{log} holds 2 runs' summaries")
    assert not (tmp_path / "pub").exists()
    write_record("bad_input", tool="tools/publish_model.py", input="a work dir whose log.jsonl holds two runs",
                 exit_code=proc.returncode, line=line)


@pytest.mark.slow
def test_fine_tuning_into_a_held_work_dir_stops_at_once(tmp_path, tiny):
    """A fine-tuning holds its work dir: a second fine-tuning, tools/test.py and a pre-training into it stop."""
    from helpers.transfer_runs import tool as run_tool

    backbone = tmp_path / "backbone.pth"
    import timm
    import torch

    torch.save({"state_dict": timm.create_model("resnet18").state_dict(),
                "meta": {"arch": "resnet18", "method": "uniform"}}, backbone)
    work = tmp_path / "ft"
    args = [SEG, "--backbone", backbone, "--data-root", tiny / "cityscapes", "--work-dir", work, *SEG_FAST]
    first = start(*args)
    try:
        held_by(first, work)
        os.kill(first.pid, signal.SIGSTOP)
        needles = (f"work dir {work.resolve()} is in use", f"pid {first.pid}", f"host {socket.gethostname()}")
        second = run_tool("train.py", *args)
        line = assert_one_error_line(second, *needles)
        ckpt = tmp_path / "iter_1.pth"
        shutil.copy(backbone, ckpt)
        test = run_tool("test.py", SEG, ckpt, "--data-root", tiny / "cityscapes", "--work-dir", work)
        assert_one_error_line(test, *needles)
        pre = run_tool("train.py", PRETRAIN, "--work-dir", work, *PRE_FAST)
        assert_one_error_line(pre, *needles)
        assert not (work / "log.jsonl").exists()  # the pre-training wrote nothing there
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=900) == 0, first.stderr.read()[-3000:]
    finally:
        stop(first)
    write_record("work_dir_lock", case="fine-tuning, tools/test.py and a pre-training into a fine-tuning's "
                 "held work dir", exit_code=second.returncode, line=line)


@pytest.mark.slow
def test_a_two_rank_fine_tuning_into_a_held_work_dir_stops_before_any_rank_writes(tmp_path, tiny):
    """The lock is rank 0's (one lock per work dir, taken before mmengine's Runner exists): rank 0 of a second
    run refuses with the one line; the other rank, which never takes it, writes nothing there either (in
    mmengine a non-zero rank only makes the work dir and its timestamp folder, and that after the process
    group exists) and is stopped by torchrun. The holder here is this test process."""
    work = tmp_path / "ft"
    hold_work_dir(work)
    try:
        before = sorted(p.name for p in work.iterdir())
        env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore",
               "PORT": str(_free_port())}
        proc = subprocess.run([str(ROOT / "tools" / "dist_train.sh"), str(SEG), "2", "--backbone", "none",
                               "--data-root", str(tiny / "cityscapes"), "--work-dir", str(work), *SEG_FAST],
                              cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
        after = sorted(p.name for p in work.iterdir())
    finally:
        release_work_dir(work)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]  # rank 0's; rank 1 says nothing of its own
    for needle in (f"work dir {work.resolve()} is in use", f"pid {os.getpid()}", f"host {socket.gethostname()}"):
        assert needle in errors[0], errors[0]
    assert proc.returncode == 1, proc.stderr[-3000:]  # torchrun's code for a failed worker (rank 0 exited 2)
    assert "exitcode  : 2" in proc.stderr and "Traceback" not in proc.stderr
    assert before == after == [LOCK_FILE]  # no checkpoint, log, timestamp folder or config dump from either rank
    write_record("work_dir_lock", case="2-rank fine-tuning (tools/dist_train.sh) into a held work dir: rank 0 "
                 "refuses, rank 1 writes nothing", exit_code=proc.returncode, line=errors[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
