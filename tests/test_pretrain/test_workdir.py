"""dar_common.workdir, the work-dir contract: atomic writes under real write failures (RLIMIT_FSIZE, an object
that fails to pickle, an error inside the block), the last_checkpoint reader against mmengine's, the git
revision, the log.jsonl / metrics.json readers, and that it all imports without OpenMMLab."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dar_common import workdir
from dar_common.workdir import (
    atomic_path,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    git_revision,
    latest_checkpoint,
    read_log,
    read_metrics,
    read_summary,
    write_last_checkpoint,
    write_metrics,
)

ROOT = Path(__file__).resolve().parents[2]


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_write_past_the_file_size_limit_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    """A real EFBIG from the OS (RLIMIT_FSIZE), in a child process so the limit stays there."""
    target = tmp_path / "log.txt"
    atomic_write_text(target, "old\n")
    script = (f"import resource, sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from dar_common.workdir import atomic_write_bytes, atomic_write_text, atomic_save\n"
              "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
              "for write in (lambda: atomic_write_bytes(sys.argv[1], b'x' * 100_000),\n"
              "              lambda: atomic_write_text(sys.argv[1], 'y' * 100_000),\n"
              "              lambda: atomic_save({'w': __import__('torch').zeros(100_000)}, sys.argv[1])):\n"
              "    try:\n"
              "        write()\n"
              "    except Exception as e:  # atomic_save serialises first: the write's own EFBIG\n"
              "        print(getattr(e, 'errno', None) or type(e).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import errno

    assert proc.stdout.split() == [str(errno.EFBIG)] * 3
    assert target.read_text() == "old\n" and names(tmp_path) == ["log.txt"]


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot pickle this")


def test_a_save_that_fails_half_way_keeps_the_old_checkpoint(tmp_path):
    target = tmp_path / "epoch_1.pth"
    atomic_save({"x": 1}, target)
    # torch has written the zip header and the first tensor by the time it meets the bad object
    with pytest.raises(RuntimeError, match="cannot pickle"):
        atomic_save({"w": torch.zeros(1000), "bad": Unpicklable()}, target)
    assert torch.load(target, weights_only=True) == {"x": 1} and names(tmp_path) == ["epoch_1.pth"]


def test_an_error_inside_the_block_or_in_serialising_leaves_nothing(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    with pytest.raises(TypeError):
        atomic_write_json(target, {"a": object()})
    assert json.loads(target.read_text()) == {"a": 1} and names(tmp_path) == ["m.json"]
    atomic_write_bytes(target, b"[2]")
    assert json.loads(target.read_text()) == [2]


def test_json_text_is_what_json_dumps_writes(tmp_path):
    obj = {"b": [1, 2], "a": None}
    atomic_write_json(tmp_path / "a.json", obj)
    atomic_write_json(tmp_path / "b.json", obj, indent=1, newline=False)
    assert (tmp_path / "a.json").read_text() == json.dumps(obj, indent=2) + "\n"
    assert (tmp_path / "b.json").read_text() == json.dumps(obj, indent=1)


def test_latest_checkpoint_absent_present_gone_and_moved(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    assert latest_checkpoint(work) is None
    ckpt = atomic_save({"x": 1}, work / "epoch_2.pth")
    write_last_checkpoint(work, ckpt)
    assert latest_checkpoint(work) == ckpt
    moved = tmp_path / "moved"
    work.rename(moved)  # the pointer still names the old absolute path
    assert latest_checkpoint(moved) == moved / "epoch_2.pth"
    (moved / "epoch_2.pth").unlink()
    assert latest_checkpoint(moved) is None
    (moved / "last_checkpoint").write_text("")
    assert latest_checkpoint(moved) is None


def test_a_relative_pointer_as_mmengine_writes_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("runs/a").mkdir(parents=True)
    atomic_save({}, "runs/a/iter_4.pth")
    write_last_checkpoint("runs/a", "runs/a/iter_4.pth")  # mmengine: join(work_dir, name), cwd-relative
    assert latest_checkpoint("runs/a") == Path("runs/a/iter_4.pth")
    monkeypatch.chdir(tmp_path / "runs")  # read from elsewhere: resolved inside the work dir
    assert latest_checkpoint("a") == Path("a/iter_4.pth")


def test_the_reader_agrees_with_mmengines_find_latest_checkpoint(tmp_path, monkeypatch):
    from mmengine.runner.checkpoint import find_latest_checkpoint

    ckpt = atomic_save({}, tmp_path / "epoch_1.pth")
    (tmp_path / "last_checkpoint").write_text(f"  {ckpt}\n")  # stripped by both
    assert find_latest_checkpoint(str(tmp_path)) == str(ckpt)
    assert latest_checkpoint(tmp_path) == ckpt  # through mmengine (loaded above)
    monkeypatch.delitem(sys.modules, "mmengine.runner.checkpoint")
    assert latest_checkpoint(tmp_path) == ckpt  # the plain read


def test_pretrain_imports_without_openmmlab(tmp_path):
    script = ("import sys\nsys.modules['mmengine'] = None  # any import of mmengine now fails\n"
              "import dar_common.workdir as w, pretrain.checkpoint as c\n"
              "c.save_checkpoint({'x': 1}, sys.argv[1], 'e.pth')\n"
              "print(w.latest_checkpoint(sys.argv[1]) == c.find_last(sys.argv[1]) != None)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "True", proc.stderr


def test_git_revision(tmp_path):
    assert git_revision(tmp_path) == "unknown"
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert git_revision() in (head, head + "-dirty")
    rev = workdir.write_git_revision(tmp_path, "abc")
    assert rev == "abc" and (tmp_path / "git_rev.txt").read_text() == "abc\n"


def test_log_and_metrics_readers(tmp_path):
    assert read_log(tmp_path) is None and read_summary(tmp_path) is None and read_metrics(tmp_path) is None
    for rec in ({"type": "epoch", "epoch": 1}, {"type": "summary", "top1": 1.0}, {"type": "summary", "top1": 2.0}):
        workdir.append_jsonl(tmp_path / "log.jsonl", rec)
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write("\n")
    assert [r["type"] for r in read_log(tmp_path)] == ["epoch", "summary", "summary"]
    assert read_summary(tmp_path) == {"type": "summary", "top1": 2.0}  # the last one
    record = {"task": "seg", "config": "c.py", "backbone": None, "backbone_meta": None, "metrics": {"mIoU": 1.5}}
    write_metrics(tmp_path / "t", record)
    assert read_metrics(tmp_path / "t") == record and names(tmp_path / "t") == ["metrics.json"]
    assert not any(n.startswith(".") for n in os.listdir(tmp_path))


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    out = tmp_path / "data"
    with workdir.atomic_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not out.exists()  # nothing under the final name until the block ends
    assert names(out) == ["a.txt"]
    with pytest.raises(KeyboardInterrupt), workdir.atomic_dir(out) as tmp:
        (tmp / "b.txt").write_text("2")
        raise KeyboardInterrupt
    assert names(out) == ["a.txt"] and names(tmp_path) == ["data"]
    (tmp_path / ".data.tmp").mkdir()  # the leftover of a killed run
    (tmp_path / ".data.tmp" / "junk").write_text("x")
    with workdir.atomic_dir(out) as tmp:
        assert names(tmp) == []
        (tmp / "c.txt").write_text("3")
    assert names(out) == ["c.txt"] and names(tmp_path) == ["data"]


KILLED_WRITER = """
import sys, time
from dar_common.workdir import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    tmp.write_bytes(b"half a checkpoint")
    print(tmp.name, flush=True)
    time.sleep(600)  # SIGKILLed here, inside the write
"""


def test_a_resume_removes_only_temporaries_whose_writer_is_gone(tmp_path):
    """A SIGKILL inside an atomic write leaves ``.<name>.tmp<pid>``; once that pid is gone it is removed.
    A running writer's temporary, this process's own and files that merely look alike stay."""
    import signal

    from dar_common.workdir import remove_stale_temporaries

    (tmp_path / "selection").mkdir()
    target = tmp_path / "selection" / "epoch_003.npz"
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    dead = tmp_path / "selection" / writer.stdout.readline().strip()
    assert dead.name == f".epoch_003.npz.tmp{writer.pid}" and dead.is_file()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = tmp_path / f".epoch_4.pth.tmp{alive.pid}"
        live.write_bytes(b"being written")
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
        own = tmp_path / f".log.jsonl.tmp{os.getpid()}"
        lookalikes = [tmp_path / ".notes.tmpfile", tmp_path / "epoch_5.pth.tmp1"]
        for p in (own, *lookalikes):
            p.write_text("x")
        assert remove_stale_temporaries(tmp_path) == [dead]
        assert not dead.exists() and not target.exists()
        assert live.is_file() and own.is_file() and all(p.is_file() for p in lookalikes)
    finally:
        alive.kill()
        alive.wait()
    assert remove_stale_temporaries(tmp_path) == [live]  # its writer is gone now
