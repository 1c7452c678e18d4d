"""``pretrain.torchrun``: torchrun's own launcher, with a preemption's exit code (75) passed through."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pretrain.launch import PREEMPTED_EXIT_CODE
from pretrain.torchrun import launcher_exit_code

ROOT = Path(__file__).resolve().parents[2]
P = PREEMPTED_EXIT_CODE


@pytest.mark.parametrize(("first", "others", "expected"), [
    (P, [], P),            # one rank failed first; torchrun stopped the other before it reported
    (P, [P], P),           # both ranks preempted
    (P, [-15], P),         # the other was still checkpointing when torchrun sent SIGTERM
    (P, [1], None),        # another rank crashed: a crash, not a preemption
    (1, [P], None),        # the first failure was a crash
    (-9, [], None),        # SIGKILL (OOM killer, node loss) is not a preemption
])
def test_only_a_preemption_on_the_ranks_that_failed_maps_to_75(first, others, expected):
    assert launcher_exit_code(first, others) == expected


# A crashing rank exits at once; a preempted one beside a crash waits, as a rank still writing its checkpoint
# does. Otherwise the order of the two exits is a race: torchrun may SIGTERM the crashing rank before it
# exits, and then sees only 75 and a signal, which is a preemption by the rule above (CI saw it once).
WORKER = """
import os, sys, time
codes = [int(c) for c in sys.argv[1].split(",")]
code = codes[int(os.environ["LOCAL_RANK"])]
if code == 75 and any(c not in (0, 75) for c in codes):
    time.sleep(30)  # torchrun stops this rank (SIGTERM) once the crashing one has exited
sys.exit(code)
"""


@pytest.mark.parametrize(("codes", "expected"), [("0,0", 0), ("75,75", P), ("75,3", 1), ("3,75", 1)])
def test_real_torchrun_workers_exit_codes(tmp_path, codes, expected):
    """Two real workers under ``python -m pretrain.torchrun``; torchrun alone exits 1 for every failure."""
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    proc = subprocess.run([sys.executable, "-m", "pretrain.torchrun", "--nproc_per_node", "2",
                           "--rdzv-backend", "c10d", "--rdzv-endpoint", "localhost:0", str(worker), codes],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert proc.returncode == expected, proc.stderr[-3000:]
    if expected == P:
        assert "the ranks were preempted" in proc.stderr and "exitcode  : 75" in proc.stderr
    elif expected == 1:  # torchrun's own report of the failed worker, and no launcher traceback
        assert "ChildFailedError" in proc.stderr and "exitcode  : 3" in proc.stderr
        assert "Traceback" not in proc.stderr and "pretrain/torchrun.py" not in proc.stderr
