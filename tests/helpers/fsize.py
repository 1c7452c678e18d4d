"""Real write failures (EFBIG) for the transfer-side tests: a file-size limit set by the kernel, either on a
whole child process or armed at the moment one named file is opened for writing.

* :func:`limited` -- ``preexec_fn`` for ``subprocess``: the child runs with ``RLIMIT_FSIZE`` = ``limit``
  bytes and SIGXFSZ ignored, so any write past the limit fails with ``OSError(EFBIG)`` instead of killing it.
* ``python fsize.py LIMIT NAME SCRIPT ARGS...`` -- runs ``SCRIPT`` (e.g. ``tools/pipeline.py``) unlimited
  until it opens a file called ``NAME`` (a glob; the hidden temporary ``.NAME.tmp<pid>`` of an atomic write
  counts) for writing; from then on the process runs under the limit. An audit hook (``sys.addaudithook``)
  sees every ``open``, whichever writer does it, so a writer that bypasses ``dar_common.workdir`` fails too.

Nothing is mocked: the failing ``write()`` is the kernel's. Nothing in the project imports this file.
"""
from __future__ import annotations

import fnmatch
import os
import resource
import runpy
import signal
import sys
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT


def set_limit(limit: int) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def limited(limit: int):
    """A ``preexec_fn`` that runs the child under a ``limit``-byte file-size limit."""
    return lambda: set_limit(limit)


def target_name(path: str) -> str:
    """The file an open is for: ``.report.md.tmp123`` (an atomic write's temporary) -> ``report.md``."""
    name = Path(path).name
    if name.startswith(".") and ".tmp" in name:
        name = name[1:].rsplit(".tmp", 1)[0]
    return name


def is_write(mode: object, flags: object) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & _WRITE_FLAGS)


def arm(limit: int, pattern: str) -> None:
    """Set the limit when this process first opens a file matching ``pattern`` for writing."""
    armed = []

    def hook(event: str, args: tuple) -> None:
        if event != "open" or armed or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        path = os.fsdecode(args[0])
        if fnmatch.fnmatch(target_name(path), pattern) and is_write(args[1], args[2]):
            armed.append(path)
            set_limit(limit)

    sys.addaudithook(hook)


if __name__ == "__main__":
    limit, pattern, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    sys.argv = sys.argv[3:]
    sys.path.insert(0, str(Path(script).resolve().parent.parent))
    arm(limit, pattern)
    runpy.run_path(script, run_name="__main__")
