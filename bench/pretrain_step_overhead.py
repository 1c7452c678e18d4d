"""Step-time overhead of DaR bookkeeping and of online scoring, relative to a uniform step, side by side.

    python bench/pretrain_step_overhead.py [--arch resnet18] [--img 112] [--score 48] [--batch 16]
        [--pool 32] [--steps 5] [--rounds 4] [--num-samples 1281167] [--threads 2]

One process, one model, one batch of random images (compute does not depend on pixel values): the three
step kinds run in alternating rounds so machine-load drift hits all of them alike; the median time per
step of each kind is reported with its ratio to uniform. DaR's bookkeeping is ``record()`` every step
plus ``end_epoch()`` (gather, select the hardest, rebuild the order) once per epoch, the latter timed on a
loss table of ``--num-samples`` entries and spread over the steps of an epoch of that size. Data loading
is not included (online loads b̄ instead of b images per step: that cost depends on the input pipeline).
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import timm
import torch
import torch.nn.functional as F

from pretrain.selection.online import OnlineParams, OnlineSelector
from pretrain.selection.samplers import DaRSampler


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--img", type=int, default=112, help="training resolution r")
    p.add_argument("--score", type=int, default=48, help="scoring resolution r̂ (r̂/r = 96/224 by default)")
    p.add_argument("--batch", type=int, default=16, help="trained batch b")
    p.add_argument("--pool", type=int, default=32, help="scored pool b̄")
    p.add_argument("--steps", type=int, default=5, help="steps per kind per round")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--num-samples", type=int, default=1281167, help="dataset size for DaR's loss table")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    return p


def main(args: argparse.Namespace) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = timm.create_model(args.arch, num_classes=1000)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    pool_x = torch.randn(args.pool, 3, args.img, args.img)
    pool_y = torch.randint(0, 1000, (args.pool,))
    b = args.batch
    sampler = DaRSampler(args.num_samples, dict(warmup=0, interval=1, keep=0.9, epochs=2), seed=0)
    sampler.set_epoch(1)
    order = iter(sampler)
    total = args.rounds * args.steps + 1
    selector = OnlineSelector(OnlineParams(b, args.pool, args.score, 1.0, 0, 0.0), total_steps=total, seed=0)

    def train(x, y) -> torch.Tensor:
        losses = F.cross_entropy(model(x), y, reduction="none")
        opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        opt.step()
        return losses.detach()

    def uniform(step: int) -> None:
        train(pool_x[:b], pool_y[:b])

    def dar(step: int) -> None:
        losses = train(pool_x[:b], pool_y[:b])
        sampler.record(torch.tensor([next(order) for _ in range(b)]), losses)

    def online(step: int) -> None:
        x, y, _ = selector.select(model, pool_x, pool_y, step)
        train(x, y)

    kinds = {"uniform": uniform, "dar": dar, "online": online}
    times: dict[str, list[float]] = {k: [] for k in kinds}
    uniform(0)  # warm-up: allocator, kernels
    step = 0
    for _ in range(args.rounds):
        for name, fn in kinds.items():
            for _ in range(args.steps):
                t = time.perf_counter()
                fn(step)
                times[name].append(time.perf_counter() - t)
                step += 1 if name == "online" else 0
    # end of a DaR epoch on a table of num_samples: gather, select the hardest 90%, new order
    sampler._table.uniform_()  # as if every sample had been trained this epoch
    t = time.perf_counter()
    sampler.end_epoch(1)
    end_epoch_s = time.perf_counter() - t
    steps_per_epoch = math.ceil(args.num_samples / b)
    med = {k: statistics.median(v) for k, v in times.items()}
    dar_total = med["dar"] + end_epoch_s / steps_per_epoch
    result = {
        "uniform_step_s": med["uniform"],
        "dar_step_ratio": med["dar"] / med["uniform"],
        "dar_end_epoch_s": end_epoch_s,
        "dar_ratio_with_end_epoch": dar_total / med["uniform"],
        "online_step_ratio": med["online"] / med["uniform"],
        "online_predicted": 1 + (args.pool / b) * (args.score / args.img) ** 2 / 3,
    }
    print(f"{args.arch} r={args.img} r̂={args.score} b={b} b̄={args.pool}, {torch.get_num_threads()} threads, "
          f"median of {args.rounds}x{args.steps} steps each")
    print(f"uniform step                  {med['uniform'] * 1e3:8.1f} ms   1.000")
    print(f"DaR step (record)             {med['dar'] * 1e3:8.1f} ms   {result['dar_step_ratio']:.3f}")
    print(f"DaR end_epoch (N={args.num_samples})  {end_epoch_s * 1e3:8.1f} ms   "
          f"-> {result['dar_ratio_with_end_epoch']:.4f} incl. end_epoch over {steps_per_epoch} steps")
    print(f"online step (score + train)   {med['online'] * 1e3:8.1f} ms   {result['online_step_ratio']:.3f}"
          f"   (analytic 1 + (b̄/b)(1/3)(r̂/r)^2 = {result['online_predicted']:.3f})")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
