"""The work-dir contract, in one place: atomic writes, the ``last_checkpoint`` pointer, the git revision,
and the two records the results tables read (``log.jsonl`` of pre-training, ``metrics.json`` of transfer).

Every file the project writes into a work dir, a report folder or a published-model folder goes through
:func:`atomic_path`: the bytes land in a hidden temporary file beside the target (``.<name>.tmp<pid>``)
and are renamed into place only when complete, so a reader never sees half a file. On ANY failure (a full
disk, ``RLIMIT_FSIZE``, a signal turned into an exception, a bug in the writer) the temporary file is
removed and the previous file stays as it was. Only SIGKILL (or a lost node) leaves one behind:
:func:`remove_stale_temporaries` removes those when a run resumes.

``last_checkpoint`` holds the path of the newest checkpoint, as mmengine's ``CheckpointHook`` writes it;
pre-training writes it the same way. :func:`latest_checkpoint` is the one reader (through mmengine's
``find_latest_checkpoint`` where mmengine's runner is loaded), resolving a work dir moved since.

Imports: the standard library; ``torch`` and ``mmengine`` only inside the functions that need them, so
that this module (and everything above it) imports without OpenMMLab.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

LAST_CHECKPOINT = "last_checkpoint"
LOG_FILE = "log.jsonl"  # pre-training: one JSON record a line ({"type": "epoch"|"summary", ...})
METRICS_FILE = "metrics.json"  # transfer: {"task", "config", "backbone", "backbone_meta", "metrics"}
GIT_REV_FILE = "git_rev.txt"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ atomic writes
@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; rename it onto ``path`` when the block ends.

    If the block raises (anything, KeyboardInterrupt included) the temporary file is removed and
    ``path`` is left untouched. The folder must exist.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None or err.filename == str(tmp):  # a failed write() names no file: name the target
            err.filename = str(path)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


TEMPORARY_NAME = re.compile(r"^\.(?P<target>.+)\.tmp(?P<pid>\d+)$")  # atomic_path's ``.<name>.tmp<pid>``


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files of atomic writes that died with their process, anywhere under ``folder``.

    A file counts as stale when its writer pid (in its name) is not a running process on this machine and
    is not this process. Call it where the folder's previous writer is known to be gone (a resume, on the
    rank that writes); a writer on another node of a shared file system would look dead from here.
    Returns the files removed.
    """
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp*")):
        match = TEMPORARY_NAME.match(path.name)
        if match is None or not path.is_file():
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _running(pid):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _fsync(path: Path) -> None:
    """Flush the file's data to disk before the rename, so a crash cannot leave the new name empty."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path`` to fill; put it in ``path``'s place when the block
    ends (a folder already there is renamed aside, then removed). If the block raises, the temporary
    folder is removed and ``path`` is left as it was. The temporary name is fixed (``.<name>.tmp``), so
    the leftover of a killed run is cleared by the next one; one writer per folder at a time."""
    import shutil

    path = Path(path)
    tmp, old = path.with_name(f".{path.name}.tmp"), path.with_name(f".{path.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old)
    else:
        os.replace(tmp, path)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any, indent: int | None = 2, newline: bool = True, **dumps) -> Path:
    """``json.dumps(obj, indent=indent, **dumps)`` (+ a final newline), written atomically. The text is
    built before the file is opened: an object that does not serialise leaves nothing behind."""
    text = json.dumps(obj, indent=indent, **dumps) + ("\n" if newline else "")
    return atomic_write_text(path, text)


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)`` through a temporary file. Serialised in memory first (as mmengine's
    checkpoint writer does): a failed write is then the OS's ``OSError`` (EFBIG, ENOSPC) naming the file,
    where ``torch.save`` to a path raises an opaque ``RuntimeError`` ("unexpected pos ...")."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


# ---------------------------------------------------------------------------- the latest checkpoint
def write_last_checkpoint(work_dir: str | Path, checkpoint: str | Path) -> Path:
    """Point ``work_dir/last_checkpoint`` at ``checkpoint`` (as mmengine's CheckpointHook does)."""
    return atomic_write_text(Path(work_dir) / LAST_CHECKPOINT, str(checkpoint))


def _read_pointer(work_dir: Path) -> str:
    """The pointer's text. mmengine's ``find_latest_checkpoint`` is called where mmengine's runner is
    loaded already (fine-tuning processes); elsewhere (pre-training, the pipeline) importing it would cost
    seconds for a one-line read, so the file is read the same way (a test checks the two agree)."""
    runner_checkpoint = sys.modules.get("mmengine.runner.checkpoint")
    if runner_checkpoint is None:
        return (work_dir / LAST_CHECKPOINT).read_text().strip()
    return runner_checkpoint.find_latest_checkpoint(str(work_dir)) or ""


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    """The checkpoint ``work_dir/last_checkpoint`` names, or None when there is no pointer or its file
    is gone. A pointer into a folder that has been moved since (absolute, or relative to another
    working directory) is resolved to the file of that name inside ``work_dir``."""
    work_dir = Path(work_dir)
    if not (work_dir / LAST_CHECKPOINT).is_file():
        return None  # checked here: mmengine's reader logs a warning for a missing pointer
    path = Path(_read_pointer(work_dir))
    if not path.is_file() and (work_dir / path.name).is_file():
        path = work_dir / path.name
    return path if path.name and path.is_file() else None


# ------------------------------------------------------------------------------------- git revision
def git_revision(repo: str | Path | None = None) -> str:
    """The commit of ``repo`` (default: this project), ``-dirty`` when tracked files have local changes,
    or ``unknown`` outside a git checkout."""
    root = str(repo or PROJECT_ROOT)
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev + ("-dirty" if dirty else "")) if rev else "unknown"


def write_git_revision(work_dir: str | Path, rev: str | None = None) -> str:
    """Record the revision in ``work_dir/git_rev.txt``; return it."""
    rev = rev or git_revision()
    atomic_write_text(Path(work_dir) / GIT_REV_FILE, rev + "\n")
    return rev


# ---------------------------------------------------------------------------- log.jsonl, metrics.json
def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file (blank lines skipped)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one record as one line (``log.jsonl`` grows by a line per epoch). A write that fails half
    way (a full disk, a file-size limit) is cut back off: the file keeps its whole lines only."""
    data = memoryview((json.dumps(record) + "\n").encode())
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.lseek(fd, 0, os.SEEK_END)
        try:
            while data:  # unbuffered: a short write is seen here, not at close
                data = data[os.write(fd, data):]
        except OSError as err:
            os.ftruncate(fd, start)
            err.filename = err.filename or str(path)
            raise
    finally:
        os.close(fd)


def read_log(work_dir: str | Path) -> list[dict[str, Any]] | None:
    """The records of a pre-training work dir's ``log.jsonl``, or None when it has none."""
    log = Path(work_dir) / LOG_FILE
    return read_jsonl(log) if log.is_file() else None


def read_summary(work_dir: str | Path) -> dict[str, Any] | None:
    """The last ``{"type": "summary"}`` record of ``log.jsonl`` (written when a run finishes), or None."""
    summaries = [r for r in read_log(work_dir) or [] if r.get("type") == "summary"]
    return summaries[-1] if summaries else None


def read_metrics(work_dir: str | Path) -> dict[str, Any] | None:
    """A transfer work dir's ``metrics.json`` record, or None when it has none."""
    path = Path(work_dir) / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_metrics(work_dir: str | Path, record: dict[str, Any]) -> Path:
    """(Re)write ``work_dir/metrics.json`` atomically."""
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return atomic_write_json(Path(work_dir) / METRICS_FILE, record, sort_keys=False)


# ------------------------------------------------------------------------------- one run per work dir
LOCK_FILE = ".run.lock"  # holds the holder's record: {"pid", "host", "started", "command"}
_HELD: dict[str, int] = {}  # resolved work dir -> the open descriptor whose lock this process holds
_NO_LOCKS = {"ENOLCK", "EOPNOTSUPP", "ENOSYS", "ENOTSUP"}  # a file system without POSIX locks


class WorkDirBusy(RuntimeError):
    """Another live run holds the work dir; the message is one line naming its pid and host."""


def _host() -> str:
    import socket

    return socket.gethostname()


def _record() -> dict[str, Any]:
    import time

    return {"pid": os.getpid(), "host": _host(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "command": " ".join(sys.argv)[:300]}


def _read_record(path: Path, wait_s: float = 1.0) -> dict[str, Any]:
    """The holder's record; a holder that has just taken the lock writes it a moment later."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            record = json.loads(path.read_text() or "{}")
        except (OSError, ValueError):
            record = {}
        if record.get("pid") or time.monotonic() > deadline:
            return record
        time.sleep(0.05)


def _busy(work_dir: Path, record: dict[str, Any]) -> WorkDirBusy:
    since = f", since {record['started']}" if record.get("started") else ""
    return WorkDirBusy(f"work dir {work_dir} is in use by a running job: pid {record.get('pid', '?')} on host "
                       f"{record.get('host', '?')}{since} ({record.get('command', '?')}); wait for it to end or "
                       "use another --work-dir")


def hold_work_dir(work_dir: str | Path) -> Path:
    """Make this process the one run writing ``work_dir`` until it exits; raise :class:`WorkDirBusy`
    (one line: the holder's pid, host, start and command) when a live process holds it.

    The lock is a POSIX record lock (``fcntl.lockf``) on ``work_dir/.run.lock``; the kernel drops it when
    its process ends in any way (SIGKILL included), so a dead run's lock is simply taken over and its
    record overwritten. On a shared file system the lock is the server's: NFS (v3 through NLM, v4 natively:
    a crashed client's locks expire with its lease), Lustre mounted with ``-o flock``, GPFS, CephFS; so a
    run on another node is seen too. A POSIX lock is not inherited by forked children (data-loader
    workers), and is per process: taking it twice here is a no-op. Where the file system refuses locks
    (``ENOLCK``: e.g. Lustre with ``localflock``, NFS without lockd), the record alone decides: a holder on
    this host that is not running is taken over; one on another host cannot be checked from here, so the
    line says to remove the file once that run is gone. Returns the lock file.
    """
    import errno
    import fcntl

    work_dir = Path(work_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    lock = work_dir / LOCK_FILE
    if str(work_dir) in _HELD:
        return lock
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)  # (closing our descriptor releases nothing of the holder's)
        if err.errno in (errno.EACCES, errno.EAGAIN):
            raise _busy(work_dir, _read_record(lock)) from None
        if errno.errorcode.get(err.errno) not in _NO_LOCKS:
            raise
        return _hold_by_record(work_dir, lock)
    data = json.dumps(_record()).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    _HELD[str(work_dir)] = fd  # kept open for the life of the process: closing it would release the lock
    return lock


def _hold_by_record(work_dir: Path, lock: Path) -> Path:
    """The fallback without file locks: the record names the holder; a dead one on this host is replaced."""
    record = _read_record(lock, wait_s=0.0)
    mine = record.get("pid") == os.getpid() and record.get("host") == _host()
    if record.get("pid") and not mine:
        if record.get("host") != _host():
            raise WorkDirBusy(f"{_busy(work_dir, record)} (this file system has no locks: if that run is gone, "
                              f"remove {lock})")
        if _running(int(record["pid"])):
            raise _busy(work_dir, record)
    atomic_write_json(lock, _record(), indent=None)
    _HELD[str(work_dir)] = -1
    return lock


def work_dir_holder(work_dir: str | Path) -> dict[str, Any] | None:
    """The record of the live run holding ``work_dir`` (this process included), or None when none does."""
    import errno
    import fcntl

    work_dir = Path(work_dir).resolve()
    lock = work_dir / LOCK_FILE
    fd = _HELD.get(str(work_dir))
    if fd is not None:  # ours: read through our descriptor (closing any other one would drop the lock)
        return json.loads(os.pread(fd, 1 << 16, 0) or b"{}") if fd >= 0 else _read_record(lock, wait_s=0.0)
    if not lock.is_file():
        return None
    fd = os.open(lock, os.O_RDONLY)
    try:  # a shared (read) lock: granted unless a writer holds the exclusive one
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EACCES, errno.EAGAIN):
            return _read_record(lock) or {"pid": "?", "host": "?"}
        if errno.errorcode.get(err.errno) not in _NO_LOCKS:
            raise
        record = _read_record(lock, wait_s=0.0)
        alive = record.get("pid") and (record.get("host") != _host() or _running(int(record["pid"])))
        return record if alive else None
    finally:
        os.close(fd)
    return None


def release_work_dir(work_dir: str | Path) -> None:
    """Give up this process's hold of ``work_dir`` (a no-op without one); the record stays for reference."""
    fd = _HELD.pop(str(Path(work_dir).resolve()), None)
    if fd is not None and fd >= 0:
        os.close(fd)
