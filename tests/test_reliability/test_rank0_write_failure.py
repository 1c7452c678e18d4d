"""Issue 20: a write that fails on rank 0 of a 2-rank pre-training (a real EFBIG: ``fsize.py`` arms
``RLIMIT_FSIZE`` when the checkpoint is opened for writing; only rank 0 writes it) stops both ranks, each with
one ``error:`` line and no traceback, where rank 1 used to die in its next collective with a gloo traceback
(or be killed by torchrun first, silently). Through ``pretrain.torchrun`` as ``tools/dist_train.sh`` runs it."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from helpers.transfer_runs import ROOT, TIMEOUT_S, write_record

FSIZE = ROOT / "tests" / "helpers" / "fsize.py"
UNIFORM = ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py"


@pytest.mark.slow
def test_rank0_write_failure_is_one_line_on_every_rank(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    work = tmp_path / "run"
    argv = [sys.executable, "-m", "pretrain.torchrun", "--nproc_per_node=2", f"--master_port={port}", str(FSIZE),
            "1000", "epoch_2.pth", str(ROOT / "tools" / "train.py"), str(UNIFORM), "--work-dir", str(work),
            "--launcher", "pytorch", "--cfg-options", "data.img_size=16", "schedule.epochs=2", "schedule.milestones=[1]"]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    errors = sorted(line[line.index("error:"):] for line in out.splitlines() if "error:" in line)
    target = work / "epoch_2.pth"
    assert proc.returncode == 1, out[-3000:]
    assert errors == [f"error: [Errno 27] File too large: '{target}'",
                      f"error: [Errno 27] File too large: '{target}' (written by rank 0; rank 1 stops with it)"], out[-3000:]
    assert "Traceback" not in out
    assert (work / "epoch_1.pth").is_file() and not target.exists()  # the previous checkpoint stays
    assert sorted(p.name for p in work.rglob(".*.tmp*")) == []
    write_record("pretrain_write_failure", writer="epoch checkpoint on rank 0 of 2 (torchrun)", exit_code=1,
                 unchanged=True, files_checked=1, temporaries=[], line=" / ".join(errors))
