"""What the per-step agreement of pretrain/preempt.py costs: one 3-flag all_reduce before every step.

    python bench/agree_overhead.py [--ranks 2] [--calls 2000] [--steps 30]

Runs itself under torchrun (gloo on CPU, NCCL where there is a GPU). Each rank times, interleaved in
rounds, ``PreemptHook._agree`` (the exact call the trainer makes) and one DDP training step of the tiny
config's model (timm ``test_resnet``, batch 64 per rank, 32 px): the ratio is the fraction of a step the
agreement adds. On a GPU node the step is far larger than the all_reduce, so the ratio there is smaller.
Writes ``work_dirs/bench/agree_overhead.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    import numpy as np
    import timm
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel

    from dar_common.process_group import close_distributed
    from pretrain.env import init_distributed
    from pretrain.preempt import PreemptHook

    torch.set_num_threads(1)
    env = init_distributed("pytorch")

    class Stub:  # what _agree reads from the trainer
        pass

    trainer = Stub()
    trainer.env = env
    model = DistributedDataParallel(timm.create_model("test_resnet", num_classes=10).to(env.device))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(64, 3, 32, 32, device=env.device)
    y = torch.randint(0, 10, (64,), device=env.device)

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    def agree(n: int):
        for _ in range(n):
            PreemptHook._agree(trainer, False, False, False, False)

    step()
    agree(10)
    per_call, per_step = [], []
    for _ in range(args.rounds):
        dist.barrier()
        t0 = time.perf_counter()
        agree(args.calls // args.rounds)
        per_call.append((time.perf_counter() - t0) / (args.calls // args.rounds))
        dist.barrier()
        t0 = time.perf_counter()
        for _ in range(args.steps // args.rounds):
            step()
        per_step.append((time.perf_counter() - t0) / (args.steps // args.rounds))
    if env.main:
        ratio = np.asarray(per_call) / np.asarray(per_step)
        out = {"ranks": env.world, "device": str(env.device), "agree_us": 1e6 * float(np.median(per_call)),
               "step_ms": 1e3 * float(np.median(per_step)), "ratio_median": float(np.median(ratio)),
               "ratio_q1_q3": [float(np.percentile(ratio, 25)), float(np.percentile(ratio, 75))],
               "rounds": args.rounds, "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}
        path = ROOT / "work_dirs" / "bench" / "agree_overhead.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
        print(f"agreement {out['agree_us']:.0f} us per step vs a tiny step of {out['step_ms']:.1f} ms on "
              f"{env.world} {env.device.type} rank(s): {100 * out['ratio_median']:.2f}% of a step; {path}")
    close_distributed()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.ranks), "--master_port",
           str(port), __file__, "--worker", "--calls", str(args.calls), "--steps", str(args.steps),
           "--rounds", str(args.rounds)]
    return subprocess.call(cmd, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)})


if __name__ == "__main__":
    sys.exit(main())
