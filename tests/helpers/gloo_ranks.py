"""Real gloo ranks for tests: a test file is also its own worker script, started once per rank.

The test calls ``run_ranks(__file__, tmp_path)``, which starts ``python that_file.py RANK WORLD STORE OUT``
for every rank (plain subprocesses joined by a file store, so the worker needs no importable test
package) and returns what each rank saved. The file's ``__main__`` calls ``serve(job)``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]


def gloo_threads() -> list[str]:
    """Names of this process's live gloo threads (Linux: from /proc); empty where that cannot be read."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return []
    names = (Path(tasks, t, "comm").read_text().strip() for t in os.listdir(tasks))
    return sorted(n for n in names if "gloo" in n)


def run_ranks(script: str, tmp_path: Path, world: int = 2, timeout: float = 180) -> list[Any]:
    """Run ``script`` as ``world`` gloo ranks; every rank must exit 0. Returns each rank's saved result."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    procs = [subprocess.Popen([sys.executable, script, str(r), str(world), str(tmp_path / "store"), str(tmp_path)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world)]
    logs = [p.communicate(timeout=timeout)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * world, "\n".join(logs)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(world)]


def serve(job: Callable[[int, int, Path], Any]) -> None:
    """The worker side: join the group, save ``job(world, rank, out)`` as ``out/rank{R}.pt``, then close
    the group and fail if any gloo thread outlives it.

    A gloo thread alive at interpreter exit can abort a rank that succeeded (see
    ``dar_common.process_group.close_distributed``); that abort is a race, the live thread is not, so it is checked.
    """
    from dar_common.process_group import close_distributed, init_process_group

    rank, world, store, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
    init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.save(job(world, rank, out), out / f"rank{rank}.pt")
    close_distributed()
    if left := gloo_threads():
        sys.exit(f"rank {rank}: gloo threads alive after close_distributed: {left}")
