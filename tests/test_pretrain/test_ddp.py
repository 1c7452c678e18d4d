"""Two real gloo ranks under torchrun: DaR end to end, one consistent subset on both ranks."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pretrain.selection.dar import select_hardest

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_ranks_train_dar_with_one_subset(tmp_path):
    """Per-rank batch 16 x 2 ranks = the tiny config's 32. The trainer all-gathers a digest of the subset
    after every epoch and stops if the ranks disagree, so finishing means both ranks always held the
    same subset; each drop must also be the single-process selection of the gathered losses, with every
    trained sample recorded exactly once although the shards are padded (1347 is odd)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "tools" / "train.py"), str(ROOT / "configs" / "pretrain" / "tiny_digits_dar.py"),
           "--launcher", "pytorch", "--work-dir", str(tmp_path),
           "--cfg-options", "data.batch_size=16", "schedule.epochs=4", "schedule.milestones=[3]"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [line["trained_samples"] for line in log[:-1]] == [1347, 1347, 809, 486]
    assert log[-1]["relative_cost_samples"] == pytest.approx((2 * 1347 + 809 + 486) / (4 * 1347))
    subset = np.arange(1347)
    for epoch in (2, 3):
        z = np.load(tmp_path / "selection" / f"epoch_{epoch:03d}.npz")
        np.testing.assert_array_equal(np.flatnonzero(~np.isnan(z["losses"])), subset)
        expect = select_hardest(torch.from_numpy(subset), torch.from_numpy(z["losses"][subset]), 0.6)
        np.testing.assert_array_equal(np.flatnonzero(z["kept"]), expect.numpy())
        subset = expect.numpy()
    # the checkpoint holds one state per rank (RNG, selector) and one synced sampler state
    state = torch.load(tmp_path / "epoch_4.pth", map_location="cpu", weights_only=False)
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    assert state["method"]["sampler"]["subset"].numel() == 1347  # refreshed after epoch 4



CHECK_WORKER = """
import sys, torch, torch.distributed as dist
from dar_common.process_group import close_distributed, init_process_group
from pretrain.env import same_on_all_ranks
rank, port = int(sys.argv[1]), sys.argv[2]
init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
same_on_all_ranks(torch.arange(5), "equal tensors")
print("equal ok")
try:
    same_on_all_ranks(torch.arange(5) + rank, "the subset")
    print("no error")
except RuntimeError as exc:
    print(exc)
close_distributed()
"""


def test_subset_check_stops_ranks_that_disagree():
    """The guard the DDP run relies on can fail: two gloo ranks holding different subsets both raise."""
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", CHECK_WORKER, str(r), port], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for r in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        lines = out.strip().splitlines()
        assert lines[0] == "equal ok" and lines[1].startswith("ranks disagree on the subset"), out


THREADS_WORKER = """
import os, sys
from pathlib import Path
from pretrain.cli import train_main
code = train_main(sys.argv[1:])
names = [Path(f"/proc/self/task/{t}/comm").read_text().strip() for t in os.listdir("/proc/self/task")]
print(f"rank {os.environ['RANK']} exit {code} gloo threads {sorted(n for n in names if 'gloo' in n)}")
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through /proc")
def test_process_group_threads_are_joined_before_the_interpreter_exits(tmp_path):
    """gloo's worker threads must be gone when ``train_main`` returns: one left alive at interpreter exit
    may release a tensor after the GIL is gone and abort a successful rank (SIGABRT, exit -6), which CI
    saw on 4 two-rank runs. Without ``close_distributed`` three gloo threads (two run loops, one tcp
    loop) are listed here; the abort itself is a race and is not what this asserts."""
    worker = tmp_path / "worker.py"
    worker.write_text(THREADS_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(worker), str(ROOT / "configs" / "pretrain" / "tiny_digits_dar.py"), "--launcher", "pytorch",
           "--work-dir", str(tmp_path / "run"), "--cfg-options", "data.batch_size=64", "runtime.max_steps=3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("rank "))
    assert lines == ["rank 0 exit 0 gloo threads []", "rank 1 exit 0 gloo threads []"], proc.stdout[-2000:]


PINNED_WORKER = """
import json, sys, torch, torch.distributed as dist
from dar_common.process_group import close_distributed, init_process_group
make = init_process_group if sys.argv[1] == "ours" else dist.init_process_group
make("gloo", init_method="file://" + sys.argv[2], rank=0, world_size=1)
import torch._dynamo  # after the group exists, as a lazily imported module (timm, torchvision) does
dist.all_reduce(torch.ones(2))
close_distributed()
from helpers.gloo_ranks import gloo_threads
print(json.dumps(gloo_threads()))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through /proc")
@pytest.mark.parametrize("create", ["ours", "torch"])
def test_a_group_made_before_dynamo_is_imported_is_still_freed(tmp_path, create):
    """``torch.distributed.nn.functional`` (imported by ``torch._dynamo``) captures the live default group
    in its functions' defaults when it is imported after the group exists; the group then outlives
    ``close_distributed`` and its gloo threads run into interpreter exit. CI saw the resulting abort in a
    KAKURENBO two-rank test whose method imported timm lazily. ``init_process_group`` imports it first;
    the plain torch call is the control that shows the pin."""
    cmd = [sys.executable, "-c", PINNED_WORKER, create, str(tmp_path / "store")]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1",
                               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    left = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (left == []) if create == "ours" else ("pt_gloo_runloop" in left), proc.stdout
