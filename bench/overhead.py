"""What the selection methods add to a training step, measured side by side in one process.

    python bench/overhead.py                 # resnet18 at 224 px, b=8, 30 interleaved rounds (~13 min here)
    python bench/overhead.py --quick         # tiny model and sizes, checks that everything runs (<1 min)
    python bench/overhead.py --device cuda --amp bf16 --channels-last --arch resnet50 --batch-size 64 \
        --methods dar online selective_backprop infobatch --parts steps     # on a GPU (bench/gpu_check.sh)

(a) DaR step / uniform step: the same step with the per-sample loss recording of ``DaRSampler``; with
    ``--methods`` any registered method (``--methods all``: every one), each with its defaults except where
    they would not act at every step of the benchmark (``STEP_METHODS``: Selective Backprop selecting at
    every step, KAKURENBO without warm-up) or need a budget (the equal-budget controls: half the data);
(b) online step / uniform step for each scoring resolution r̂, next to the analytic
    1 + (b̄/b)(1/3)(r̂/r)² (``pretrain.cost.online_relative_cost_analytic``), with the scoring cost
    broken into its parts (downsampling, scoring forward, rank-and-draw, gathering the b images);
(c) the end-of-epoch DaR work at ImageNet scale (N = 1.28M): recording a whole epoch, the method's
    ``end_epoch`` (gathering the loss table, the subset digest check, ``select_hardest``), in one process
    and in two gloo ranks, and writing the ``selection/epoch_XXX.npz`` file -- against an ImageNet epoch time.

The timed step is the trainer's own ``Trainer.run_step`` (scheduler step, the method's ``select``, forward,
loss, backward, optimizer step, the method's ``record``, the loss sum) after ``Trainer.to_device``, on one
real ``Trainer``; each variant is its registered method set up on that trainer. Data loading is outside
the timed region, so the ratios are relative to the compute step (the conservative choice: loading would
only add to the denominator).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dar_common.process_group import close_distributed, init_process_group
from dar_common.workdir import atomic_path
from pretrain.config import build_config
from pretrain.env import Env
from pretrain.methods import METHODS, SelectionMethod, build_method, load_all, method_class
from pretrain.methods.base import RunInfo, StepInfo, StepRecord
from pretrain.methods.online import online_relative_cost_analytic
from pretrain.selection.dar import select_hardest
from pretrain.selection.distributed import scatter_into_table
from pretrain.selection.online import select_by_rank
from pretrain.selection.scoring import downsample as _downsample
from pretrain.selection.scoring import score_losses
from pretrain.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import fmt_ratio, interleaved, machine, repeat_time, summarize, table, timed, write_json  # noqa: E402

IMAGENET_N = 1_281_167
# Assumed ImageNet epoch times the end-of-epoch selection is compared with (the fast one is the stricter):
EPOCH_ASSUMPTIONS = {
    # 8 A100s with AMP + channels_last at ~2,500 img/s each (typical published ResNet-50 training rates)
    "8xA100_resnet50_amp": IMAGENET_N / (8 * 2500),
    # the thesis' uniform ResNet-50 baseline: 77 GPU-hours for 90 epochs on one V100 (Table 4.1)
    "1xV100_resnet50_thesis": 77 * 3600 / 90,
}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Selection overheads relative to a uniform training step.",
                                add_help=add_help)
    p.add_argument("--arch", default="resnet18", help="timm model name (default resnet18)")
    p.add_argument("--img-size", type=int, default=224, help="training resolution r")
    p.add_argument("--batch-size", type=int, default=8, help="trained batch b")
    p.add_argument("--pool-factor", type=int, default=2, help="online pool b̄ = factor x b (thesis default 2)")
    p.add_argument("--resolutions", type=int, nargs="+", default=[64, 96, 128], help="scoring resolutions r̂")
    p.add_argument("--reps", type=int, default=30, help="interleaved rounds (each runs every variant once)")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    p.add_argument("--num-samples", type=int, default=IMAGENET_N, help="N for the end-of-epoch selection (c)")
    p.add_argument("--record-batch", type=int, default=256, help="batch of the recording in (c)")
    p.add_argument("--selection-reps", type=int, default=3, help="repetitions of (c)")
    p.add_argument("--no-dist", action="store_true", help="skip the two-rank gloo measurement of (c)")
    p.add_argument("--parts", nargs="+", default=["steps", "selection"], choices=["steps", "selection"])
    p.add_argument("--methods", nargs="+", default=["dar", "online"], choices=["all", *registered()],
                   help="the variants timed against uniform in (a)/(b)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the steps run")
    p.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast dtype of the training step")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trained model (as runtime.compile)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="work_dirs/bench/overhead.json", help="JSON results")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that the script runs (<1 min)")
    return p


def apply_quick(args: argparse.Namespace) -> None:
    args.arch, args.img_size, args.batch_size, args.resolutions = "test_resnet", 64, 8, [16, 32, 48]
    args.reps, args.warmup, args.num_samples, args.selection_reps = 3, 1, 100_000, 1
    if args.out == get_args_parser().get_default("out"):
        args.out = "work_dirs/bench/overhead_quick.json"


# -- (a), (b): steps ------------------------------------------------------------------------------------
# the methods (a)/(b) can time against uniform, as each selects at every step of the benchmark
STEP_METHODS = {
    "dar": {"type": "dar", "warmup": 0, "interval": 1, "keep": 0.9},
    "online": {"type": "online", "warmup_steps": 0, "cooldown_fraction": 0.0},  # + pool_size, score_resolution
    "selective_backprop": {"type": "selective_backprop", "start": 0.0, "end": 1.0, "keep": 0.5, "interrupt": 0},
    "infobatch": {"type": "infobatch", "prune_ratio": 0.5, "delta": 0.875},
    "kakurenbo": {"type": "kakurenbo", "warmup_epochs": 0},
}


def registered() -> list[str]:
    """Every registered method but uniform (the reference every variant is timed against)."""
    load_all()
    return [name for name in METHODS if name != "uniform"]


def step_method(name: str) -> dict:
    """The benchmark's settings of method ``name``: ``STEP_METHODS``'s, else its defaults (half the data for
    a method that needs a budget)."""
    if name in STEP_METHODS:
        return STEP_METHODS[name]
    keys = {f.name for f in dataclasses.fields(method_class(name).Params)}
    return {"type": name, **({"budget": 0.5} if "budget" in keys else {})}


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a CUDA step is timed where its kernels finish)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def config(args: argparse.Namespace, method: dict) -> dict:
    """A resolved config as the trainer receives it: the shipped digits data at the benchmark resolution."""
    return {
        "model": {"arch": args.arch},
        "data": {"type": "digits", "img_size": args.img_size, "batch_size": args.batch_size, "num_workers": 0,
                 "scale": (0.08, 1.0), "hflip": 0.5},
        "optim": {"lr": 0.1, "lr_batch": 256, "momentum": 0.9, "weight_decay": 1e-4},
        "schedule": {"epochs": 1000, "sched": "step", "milestones": [], "warmup_epochs": 0},
        "method": method, "seed": args.seed,
        "runtime": {"amp": None if args.amp == "none" else args.amp, "channels_last": args.channels_last,
                    "compile": args.compile},
    }


class Stream:
    """Endless batches of one method's feed: epochs begin and end (``end_epoch``) as in the trainer."""

    def __init__(self, method: SelectionMethod, feed):
        self.method, self.feed, self.epoch, self.step, self.it, self.steps = method, feed, 0, 0, None, 0

    def next(self):
        while True:
            if self.it is None:
                self.epoch, self.step = self.epoch + 1, 0
                self.it, self.steps = iter(self.feed.begin(self.epoch)), self.feed.steps_in_epoch()
            batch = next(self.it, None)
            if batch is not None:
                return batch
            self.method.end_epoch(self.epoch)
            self.it = None


class Harness:
    """One real ``Trainer`` (uniform, the digits data at the benchmark size); each variant is a method
    set up on that trainer, stepped through the trainer's own ``to_device`` and ``run_step``."""

    def __init__(self, args: argparse.Namespace):
        self.device = torch.device(args.device)
        self.trainer = Trainer(build_config(config(args, {"type": "uniform"})), Env(device=self.device),
                               work_dir=tempfile.gettempdir(), hooks=[])
        t = self.trainer
        if args.compile:  # what Trainer.train does with runtime.compile
            t.net = torch.compile(t.model)
        self.train_set, self.model = t.train_set, t.model
        online = {**STEP_METHODS["online"], "pool_size": args.pool_factor * args.batch_size}
        variants = {"uniform": {"type": "uniform"}}
        variants.update({m: step_method(m) for m in args.methods if m != "online"})
        if "online" in args.methods:
            variants.update({f"online_r{r}": {**online, "score_resolution": r} for r in args.resolutions})
        self.methods, self.streams = {}, {}
        for name, method in variants.items():
            m = build_method(method, RunInfo(len(self.train_set), t.cfg.schedule.epochs, args.batch_size,
                                             args.img_size, seed=args.seed))
            feed = m.build_feed(self.train_set, 0)
            m.setup(t.services)
            self.methods[name] = m
            if not name.startswith("online_r") or "online" not in self.streams:  # the online variants share one pool stream
                self.streams["online" if name.startswith("online_r") else name] = Stream(m, feed)
        self.model.train()

    def step(self, name: str) -> float:
        """One training step of variant ``name`` on its stream's next batch; returns its seconds (loading excluded)."""
        stream = self.streams["online" if name.startswith("online_r") else name]
        images, targets, indices = stream.next()
        t = self.trainer
        t.method, t.steps = self.methods[name], stream.steps
        t.progress.epoch, t.progress.step_in_epoch = stream.epoch, stream.step
        sync(self.device)
        t0 = time.perf_counter()
        t.run_step(t.to_device(images, targets, indices))
        sync(self.device)
        elapsed = time.perf_counter() - t0
        stream.step += 1
        return elapsed


def measure_steps(args: argparse.Namespace) -> dict:
    h = Harness(args)
    variants = list(h.methods)
    times: dict[str, list[float]] = {k: [] for k in variants}
    rounds = interleaved(list(variants), args.warmup + args.reps, args.seed)
    for i, order in enumerate(rounds):
        for name in order:
            t = h.step(name)
            if i >= args.warmup:
                times[name].append(t)
        print(f"round {i + 1}/{len(rounds)}: " + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in order if times[k]),
              flush=True)
    u = np.asarray(times["uniform"])
    b, pool, r = args.batch_size, args.pool_factor * args.batch_size, args.img_size
    result = {"step_s": {k: summarize(v) for k, v in times.items()}, "online": {},
              "ratios": {k: summarize(np.asarray(v) / u) for k, v in times.items()
                         if k != "uniform" and not k.startswith("online_r")}}
    if "dar" in times:
        result["dar_ratio"] = result["ratios"]["dar"]
    if "online" not in args.methods:
        return result
    for res in args.resolutions:
        analytic = online_relative_cost_analytic(b, pool, res, r)
        result["online"][res] = {"ratio": summarize(np.asarray(times[f"online_r{res}"]) / u), "analytic": analytic}
    result["components"] = profile_components(h, args)
    return result


def _forward(model: torch.nn.Module, x: torch.Tensor, train_mode: bool) -> None:
    """A no-grad forward in eval mode, or in train mode (BatchNorm on batch statistics)."""
    with torch.no_grad():
        model.train(train_mode)
        model(x)
        model.train()


def profile_components(h: Harness, args: argparse.Namespace) -> dict:
    """Per-call seconds of the pieces that make up the overheads, interleaved like the steps."""
    b = args.batch_size
    images, targets, indices = h.streams["online"].next()
    batch = h.trainer.to_device(images, targets, indices)  # model input as the trainer makes it (uint8 -> normalised)
    images, targets = batch.images, batch.targets
    model = h.model
    selectors = {r: h.methods[f"online_r{r}"].selector for r in args.resolutions}
    scratch = copy.deepcopy(model)  # train-mode forwards update BN statistics: keep them off the real model
    gen = torch.Generator().manual_seed(0)
    calls = {"forward_b_r_eval": partial(_forward, model, images[:b], False)}
    for res, sel in selectors.items():
        small = _downsample(images, res)
        picked = select_by_rank(score_losses(model, images, targets, res), b, 1.0, gen)
        calls.update({
            f"r{res}/select_total": partial(sel.select, model, images, targets, 0),
            f"r{res}/downsample": partial(_downsample, images, res),
            f"r{res}/score_losses": partial(score_losses, model, images, targets, res),
            f"r{res}/forward_eval": partial(_forward, model, small, False),
            f"r{res}/forward_batchstats": partial(_forward, scratch, small, True),
            f"r{res}/select_by_rank": partial(select_by_rank, torch.rand(images.shape[0]), b, 1.0, gen),
            f"r{res}/gather_b": partial(lambda i, t, p: (i[p], t[p]), images, targets, picked),
        })
    times: dict[str, list[float]] = {k: [] for k in calls}
    for i, order in enumerate(interleaved(list(calls), args.warmup + args.reps, args.seed + 1)):
        for k in order:
            sync(h.device)
            t = timed(lambda k=k: (calls[k](), sync(h.device)))
            if i >= args.warmup:
                times[k].append(t)
    out: dict = {k: summarize(v) for k, v in times.items()}
    # DaR's per-step bookkeeping, on a sampler of the benchmark dataset and of ImageNet size
    for n in (len(h.train_set), IMAGENET_N):
        out[f"dar_record_N{n}"] = summarize(repeat_time(record_caller(dar_method(n, b, 1, 0), b), min(150, n // b - 2)))
    uni = h.methods["uniform"]
    out["uniform_record"] = summarize(repeat_time(partial(record, uni, torch.arange(b), torch.rand(b)), 150))
    return out


def record(method: SelectionMethod, indices: torch.Tensor, losses: torch.Tensor) -> None:
    """``method.record`` of a batch, as the trainer calls it after a step (no logits needed here)."""
    method.record(StepRecord(indices, losses, losses[:, None], indices, StepInfo(1, 0, 1, 0)))


def record_caller(method: SelectionMethod, b: int):
    """A function that records the sampler's next ``b`` indices with random losses, as the trainer does."""
    order, losses, pos = torch.as_tensor(list(iter(method.sampler))), torch.rand(b), [0]

    def call() -> None:
        record(method, order[pos[0]:pos[0] + b], losses)
        pos[0] += b

    return call


# -- (c): end-of-epoch selection at ImageNet scale ------------------------------------------------------
def dar_method(n: int, batch: int, world: int, rank: int) -> SelectionMethod:
    method = build_method({"type": "dar", "warmup": 0, "interval": 1, "keep": 0.9},
                          RunInfo(n, 2, batch, world_size=world, rank=rank))
    method.build_feed(None, 0)
    method.sampler.set_epoch(1)  # what SamplerFeed.begin does, minus the dataset and the loader
    method.sampler.set_start(0)
    return method


def one_selection(n: int, batch: int, world: int = 1, rank: int = 0, save_dir: str | None = None) -> dict:
    """Record a whole epoch of synthetic losses, then time the method's ``end_epoch`` (and the npz write)."""
    method = dar_method(n, batch, world, rank)
    order = torch.as_tensor(list(iter(method.sampler)))
    losses = torch.rand(order.numel(), generator=torch.Generator().manual_seed(rank))
    t0 = time.perf_counter()
    for i in range(0, order.numel(), batch):
        record(method, order[i:i + batch], losses[i:i + batch])
    record_s = time.perf_counter() - t0
    if dist.is_initialized():
        dist.barrier()
    t0 = time.perf_counter()
    dump = method.end_epoch(1).dump
    end_s = time.perf_counter() - t0
    out = {"record_epoch_s": record_s, "record_calls": -(-order.numel() // batch), "end_epoch_s": end_s,
           "kept": int(dump["kept"].sum())}
    if save_dir is not None:
        t0 = time.perf_counter()
        with atomic_path(Path(save_dir) / "epoch_001.npz") as tmp, open(tmp, "wb") as f:  # as SelectionDumpHook
            np.savez(f, **dump)
        out["savez_s"] = time.perf_counter() - t0
    return out


def _dist_worker(rank: int, world: int, port: int, n: int, batch: int, reps: int, out_file: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    init_process_group("gloo", rank=rank, world_size=world)
    try:
        results = [one_selection(n, batch, world, rank) for _ in range(reps)]
        ends = torch.tensor([r["end_epoch_s"] for r in results], dtype=torch.float64)
        dist.all_reduce(ends, op=dist.ReduceOp.MAX)  # the slower rank decides
        if rank == 0:
            import json
            Path(out_file).write_text(json.dumps({"end_epoch_s": ends.tolist(),
                                                  "record_epoch_s": [r["record_epoch_s"] for r in results]}))
    finally:
        close_distributed()


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_selection(args: argparse.Namespace) -> dict:
    n, batch = args.num_samples, args.record_batch
    t_pure = repeat_time(lambda: select_hardest(torch.arange(n), torch.rand(n), 0.9), args.selection_reps)
    shuffled = torch.randperm(n)  # gathered records arrive in epoch order
    t_scatter = repeat_time(lambda: scatter_into_table(torch.full((n,), float("nan")), shuffled, torch.rand(n)),
                            args.selection_reps)
    with tempfile.TemporaryDirectory() as tmp:
        single = [one_selection(n, batch, save_dir=tmp) for _ in range(args.selection_reps)]
        two = None
        if not args.no_dist:
            out_file = str(Path(tmp) / "dist.json")
            mp.spawn(_dist_worker, args=(2, free_port(), n, batch, args.selection_reps, out_file), nprocs=2)
            import json
            two = json.loads(Path(out_file).read_text())
    end1 = summarize([s["end_epoch_s"] for s in single])
    res = {
        "num_samples": n, "record_batch": batch,
        "select_hardest_s": summarize(t_pure), "scatter_into_table_s": summarize(t_scatter),
        "single": {"end_epoch_s": end1, "record_epoch_s": summarize([s["record_epoch_s"] for s in single]),
                   "record_per_call_s": summarize([s["record_epoch_s"] / s["record_calls"] for s in single]),
                   "savez_s": summarize([s["savez_s"] for s in single])},
        "two_ranks_gloo": None if two is None else {
            "end_epoch_s": summarize(two["end_epoch_s"]), "record_epoch_s": summarize(two["record_epoch_s"])},
        "epoch_assumptions_s": EPOCH_ASSUMPTIONS,
    }
    worst = max(end1["median"], res["two_ranks_gloo"]["end_epoch_s"]["median"] if two else 0.0)
    worst += res["single"]["savez_s"]["median"]
    res["fraction_of_epoch"] = {k: worst / v for k, v in EPOCH_ASSUMPTIONS.items()}
    return res


# -- report ---------------------------------------------------------------------------------------------
def report(res: dict, args: argparse.Namespace) -> str:
    lines = [f"machine: {res['machine']['cpu']}, {res['machine']['cpu_count']} cores, "
             f"load {res['machine']['load_avg_1_5_15']}, torch threads {args.threads}, {res['machine']['date_utc']}"]
    if "steps" in res:
        s = res["steps"]
        pool = args.pool_factor * args.batch_size
        lines.append(f"\n{args.arch} at {args.img_size} px, b={args.batch_size}, b̄={pool}, {args.reps} interleaved rounds; "
                     f"uniform step {s['step_s']['uniform']['median']:.3f} s (median)")
        goals = {"dar": ("1.0000", "<= 1.01"), "selective_backprop": ("", "scores every batch at its scale"),
                 "infobatch": ("", "per-step rescaling + recording")}
        rows = [[f"(a) {k} / uniform", fmt_ratio(v, 4), *goals.get(k, ("", ""))] for k, v in s["ratios"].items()]
        for r, o in s["online"].items():
            over, ana = o["ratio"]["median"] - 1, o["analytic"] - 1
            rows.append([f"(b) online r̂={r} / uniform", fmt_ratio(o["ratio"]), f"{o['analytic']:.3f}",
                         f"measured/analytic overhead {over / ana:.2f}"])
        lines.append(table(["ratio", "median [q1, q3]", "analytic", "goal / note"], rows))
        if "components" in s:  # (b): online was among --methods
            c = s["components"]
            rec = c[f"dar_record_N{IMAGENET_N}"]["median"]
            lines.append(f"DaR record() per step: {1e6 * rec:.0f} µs at N=1.28M "
                         f"({100 * rec / s['step_s']['uniform']['median']:.3f}% of the uniform step); "
                         f"uniform record() {1e6 * c['uniform_record']['median']:.1f} µs")
            u = s["step_s"]["uniform"]["median"]
            rows = []
            for r in args.resolutions:
                g = {k.split("/")[1]: v["median"] for k, v in c.items() if k.startswith(f"r{r}/")}
                meas = s["online"][r]["ratio"]["median"] - 1
                rows.append([r, f"{100 * meas:.1f}", f"{100 * (s['online'][r]['analytic'] - 1):.1f}",
                             f"{100 * g['select_total'] / u:.1f}", f"{100 * g['downsample'] / u:.1f}",
                             f"{100 * g['forward_eval'] / u:.1f}", f"{100 * g['forward_batchstats'] / u:.1f}",
                             f"{100 * g['score_losses'] / u:.1f}", f"{100 * (g['select_by_rank'] + g['gather_b']) / u:.2f}"])
            lines.append("online overhead, % of the uniform step: measured (step ratio), analytic, and the parts of "
                         "OnlineSelector.select timed alone")
            lines.append(table(["r̂", "measured", "analytic", "select()", "downsample", "fwd at r̂, eval BN",
                                "fwd at r̂, batch-stat BN", "score_losses (= downsample + fwd)",
                                "rank+draw+gather"], rows))
            fwd = c["forward_b_r_eval"]["median"] / s["step_s"]["uniform"]["median"]
            lines.append(f"forward (eval, b at r) / training step = {fwd:.3f} (the analytic formula assumes 1/3)")
    if "selection" in res:
        c = res["selection"]
        lines.append(f"\n(c) N={c['num_samples']}: select_hardest {c['select_hardest_s']['median']:.3f} s, "
                     f"scatter_into_table {c['scatter_into_table_s']['median']:.3f} s; "
                     f"end_epoch() {c['single']['end_epoch_s']['median']:.3f} s (1 process)"
                     + (f", {c['two_ranks_gloo']['end_epoch_s']['median']:.3f} s (2 gloo ranks)" if c["two_ranks_gloo"] else "")
                     + f"; npz write {c['single']['savez_s']['median']:.3f} s; recording the epoch "
                     f"{c['single']['record_epoch_s']['median']:.2f} s in {c['record_batch']}-sample calls")
        for k, v in c["fraction_of_epoch"].items():
            lines.append(f"    vs an ImageNet epoch of {EPOCH_ASSUMPTIONS[k]:.0f} s ({k}): {100 * v:.3f}%")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    if args.quick:
        apply_quick(args)
    if "all" in args.methods:
        args.methods = registered()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if any(r > args.img_size for r in args.resolutions):
        print(f"error: scoring resolutions {args.resolutions} must not exceed --img-size {args.img_size}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    res: dict = {"args": vars(args), "machine": machine()}
    if "steps" in args.parts:
        res["steps"] = measure_steps(args)
    if "selection" in args.parts:
        res["selection"] = measure_selection(args)
    res["machine_after"] = machine()["load_avg_1_5_15"]
    text = report(res, args)
    res["report"] = text
    print(text)
    print(f"results: {write_json(args.out, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
