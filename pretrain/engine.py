"""The pre-training loop: timm model + SGD + progress-driven LR, fed by a subset sampler or online selection.

One epoch is one pass over the sampler's current subset (uniform / DaR / controls) or, for online
selection, as many steps as a uniform epoch has, each step loading a pool of b̄ and training on the b
the selector picks. The LR schedule is timm's, stepped every update with the fractional epoch
``epoch - 1 + step / steps_in_this_epoch``: milestones and warm-up land on the right epochs however much
DaR shrinks an epoch. Per-sample training losses (``reduction='none'``) go to the sampler.

Distributed: torchrun / slurm environment, gloo on CPU and NCCL on GPU; the samplers shard and gather.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Subset
from tqdm import tqdm

from . import checkpoint as ckpt
from .cost import TRAIN_FLOPS_PER_FORWARD, forward_flops
from .data import DataError, build_dataset
from .feed import Feed, loader
from .models import build_model
from .plan import Plan, make_plan
from .selection.samplers import derive_seed


@dataclass
class Env:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(launcher: str = "none") -> Env:
    """Join the process group described by the torchrun (or slurm) environment; gloo on CPU, NCCL on GPU."""
    if launcher == "slurm":  # same mapping as mmengine's slurm launcher
        os.environ.setdefault("RANK", os.environ["SLURM_PROCID"])
        os.environ.setdefault("WORLD_SIZE", os.environ["SLURM_NTASKS"])
        os.environ.setdefault("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            import subprocess
            nodes = os.environ["SLURM_NODELIST"]
            os.environ["MASTER_ADDR"] = subprocess.getoutput(f"scontrol show hostname {nodes} | head -n1")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if world > 1 or launcher != "none":
        if cuda:
            torch.cuda.set_device(local_rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        return Env(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return Env(device=device)


def first_error(message: str | None) -> str | None:
    """The first rank's error message on every rank (collective), so all ranks stop together."""
    if not dist.is_initialized():
        return message
    messages: list[str | None] = [None] * dist.get_world_size()
    dist.all_gather_object(messages, message)
    return next((m for m in messages if m), None)


def all_sum(values: list[float], env: Env) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    if dist.is_initialized():
        dist.all_reduce(t)
    return t.tolist()


def build_scheduler(optimizer, schedule: dict, plan: Plan):
    """timm step (÷decay_rate at milestones) or cosine schedule with linear warm-up, in epochs.

    A shortened run scales the milestones with its length. timm's MultiStepLRScheduler applies milestone
    m from t = m - 1 (its ``t + 1`` convention for per-epoch stepping); we step with fractional epochs of
    completed training, so ``m + 1`` makes the decay start exactly after m full epochs.
    """
    scale = plan.epochs / plan.ref_epochs
    common = dict(num_epochs=plan.epochs, warmup_epochs=schedule.get("warmup_epochs", 0),
                  warmup_lr=schedule.get("warmup_lr", 0.0), min_lr=schedule.get("min_lr", 0.0))
    kind = schedule.get("sched", "step")
    if kind == "step":
        milestones = [m * scale + 1 for m in schedule.get("milestones", ())]
        return create_scheduler_v2(optimizer, "multistep", decay_milestones=milestones,
                                   decay_rate=schedule.get("decay_rate", 0.1), **common)[0]
    if kind == "cosine":
        return create_scheduler_v2(optimizer, "cosine", **common)[0]
    raise ValueError(f"schedule.sched must be 'step' or 'cosine', got {kind!r}")


def train_step(net, optimizer, scaler, images, targets, amp: torch.dtype | None, label_smoothing: float = 0.0):
    """One SGD step on the mean of the per-sample losses; returns those losses, detached."""
    with torch.autocast(images.device.type, dtype=amp, enabled=amp is not None):
        logits = net(images)
    losses = F.cross_entropy(logits.float(), targets, reduction="none", label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(losses.mean()).backward()  # a no-op scale unless fp16
    scaler.step(optimizer)
    scaler.update()
    return losses.detach()


def evaluate(model, val_set, env: Env, batch_size: int, workers: int) -> tuple[float, float]:
    """Single-crop top-1 / top-5 (%) over the whole validation set, each rank a disjoint share."""
    model.eval()
    if dist.is_initialized():  # DDP keeps rank 0's BatchNorm statistics; evaluate every shard with them
        for buf in model.buffers():
            dist.broadcast(buf, 0)
    shard = Subset(val_set, range(env.rank, len(val_set), env.world))
    counts = [0.0, 0.0, 0.0]
    with torch.no_grad():
        for images, targets, _ in loader(shard, batch_size, None, workers, 0):
            logits = model(images.to(env.device, non_blocking=True)).float()
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices.cpu()
            hit = top == targets[:, None]
            counts = [counts[0] + hit[:, 0].sum().item(), counts[1] + hit.any(1).sum().item(), counts[2] + len(targets)]
    c1, c5, n = all_sum(counts, env)
    model.train()
    return 100.0 * c1 / n, 100.0 * c5 / n


def _datasets(cfg: dict, env: Env):
    try:
        train_set = build_dataset(cfg["data"], "train", cfg["seed"], env.rank, env.world)
        val_set = build_dataset(cfg["data"], "val", cfg["seed"], env.rank, env.world)
        message = None
    except DataError as exc:
        message = str(exc)
    message = first_error(message)
    if message:
        raise DataError(message)
    return train_set, val_set


def _trim_log(path: Path, epochs_done: int) -> None:
    """On resume, drop log lines of epochs the checkpoint has not seen (they will be trained again)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("type") == "epoch" and json.loads(ln)["epoch"] <= epochs_done]
    ckpt.atomic_write_text(path, "".join(ln + "\n" for ln in keep))


def train(cfg: dict, env: Env, work_dir: str | Path, resume: dict | None = None, git_rev: str = "unknown") -> dict | None:
    """Train per ``cfg`` (a resolved config dict); return the summary, or None when stopped at ``max_steps``."""
    work_dir, rt, data = Path(work_dir), cfg.get("runtime", {}), cfg["data"]
    if env.device.type == "cpu" and rt.get("cpu_threads"):
        torch.set_num_threads(int(rt["cpu_threads"]))
    cuda = env.device.type == "cuda"
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(rt.get("amp")) if cuda else None
    train_set, val_set = _datasets(cfg, env)
    n, b, r = len(train_set), data["batch_size"], data["img_size"]
    plan = make_plan(cfg["method"], cfg["schedule"]["epochs"], n, batch_size=b, img_size=r, world_size=env.world)

    torch.manual_seed(cfg["seed"])  # the same initial weights on every rank and for any world size
    model = build_model(cfg["model"]["arch"], data.get("num_classes") or train_set.num_classes,
                        **cfg["model"].get("kwargs", {})).to(env.device)
    if cuda and rt.get("channels_last", True):
        model = model.to(memory_format=torch.channels_last)
    fwd = forward_flops(model, (1, 3, r, r))
    optim = cfg["optim"]
    optimizer = create_optimizer_v2(model, "sgd", lr=optim["lr"] * b * env.world / optim.get("lr_batch", 256),
                                    momentum=optim.get("momentum", 0.9), weight_decay=optim.get("weight_decay", 1e-4),
                                    filter_bias_and_bn=optim.get("filter_bias_and_bn", False))
    scheduler = build_scheduler(optimizer, cfg["schedule"], plan)
    scaler = torch.amp.GradScaler("cuda", enabled=amp == torch.float16)
    feed = Feed(cfg, train_set, plan, env.world, env.rank)
    score_r = feed.selector.params.score_resolution if feed.selector else 0
    sel_fwd = forward_flops(model, (1, 3, score_r, score_r)) if feed.selector else 0.0
    torch.manual_seed(derive_seed(cfg["seed"], "train", env.rank))

    prog = {"epoch": 1, "step_in_epoch": 0, "global_step": 0, "epochs_done": 0, "wall_s": 0.0,
            "trained": 0, "train_flops": 0.0, "selection_flops": 0.0, "top1": None, "top5": None}
    acc = {"loss_sum": 0.0, "count": 0, "scored": 0, "wall_s": 0.0}  # this epoch so far, this rank
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scaler.load_state_dict(resume["scaler"])
        scheduler.load_state_dict(resume["scheduler"])
        feed.load_state_dict(resume["feed"])
        prog = dict(resume["progress"])
        mine = resume["ranks"][env.rank]
        acc = dict(mine["acc"])
        if feed.selector:
            feed.selector.load_state_dict(mine["selector"])
        ckpt.set_rng_state(mine["rng"])
    if env.main:
        _trim_log(work_dir / "log.jsonl", prog["epochs_done"])
    ddp = DistributedDataParallel(model, device_ids=[env.local_rank] if cuda else None) if env.world > 1 else model
    net = torch.compile(ddp) if rt.get("compile") else ddp
    max_steps = rt.get("max_steps")

    def state(summary: dict) -> dict:  # collective: every rank calls it
        ranks = [None] * env.world
        mine = {"rng": ckpt.rng_state(), "acc": dict(acc), "selector": feed.selector.state_dict() if feed.selector else None}
        if env.world > 1:
            dist.all_gather_object(ranks, mine)
        else:
            ranks = [mine]
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "scheduler": scheduler.state_dict(), "feed": feed.state_dict(), "progress": dict(prog),
                "ranks": ranks, "config": cfg, "world_size": env.world,
                "meta": ckpt.make_meta(cfg, summary, git_rev)}

    def save(name: str, summary: dict) -> None:
        s = state(summary)
        if env.main:
            ckpt.save_checkpoint(s, work_dir, name)

    while prog["epoch"] <= plan.epochs:
        epoch = prog["epoch"]
        model.train()
        if prog["step_in_epoch"] == 0:
            acc = {"loss_sum": 0.0, "count": 0, "scored": 0, "wall_s": 0.0}
        batches = feed.begin(epoch, prog["step_in_epoch"])
        steps = feed.steps_in_epoch()
        trained_epoch = feed.sampler.subset_size if not feed.online else steps * b * env.world
        kept = trained_epoch / n if not feed.online else b / feed.pool  # online: trained / scored pool
        bar = tqdm(total=steps, initial=prog["step_in_epoch"], disable=not env.main, leave=False,
                   desc=f"epoch {epoch}/{plan.epochs}", dynamic_ncols=True,
                   mininterval=0.5 if sys.stderr.isatty() else 30)  # log files get a line per 30 s
        t0, seen = time.time(), 0
        for images, targets, indices in batches:
            scheduler.step(epoch - 1 + prog["step_in_epoch"] / steps)
            images = images.to(env.device, non_blocking=True)
            targets = targets.to(env.device, non_blocking=True)
            if feed.selector is not None:
                images, targets, picked = feed.selector.select(model, images, targets, prog["global_step"])
                indices = indices[picked]
                acc["scored"] += feed.pool if feed.selector.active(prog["global_step"]) else 0
            if cuda and rt.get("channels_last", True):
                images = images.contiguous(memory_format=torch.channels_last)
            losses = train_step(net, optimizer, scaler, images, targets, amp, optim.get("label_smoothing", 0.0))
            feed.record(indices, losses)
            acc["loss_sum"] += losses.sum().item()  # a sync point; cheap next to a step
            acc["count"] += losses.numel()
            prog["step_in_epoch"] += 1
            prog["global_step"] += 1
            seen += losses.numel()
            bar.update()
            bar.set_postfix(loss=f"{acc['loss_sum'] / acc['count']:.3f}", kept=f"{kept:.2f}",
                            samples_s=f"{seen * env.world / (time.time() - t0):.0f}", refresh=False)
            if max_steps and prog["global_step"] >= max_steps and prog["step_in_epoch"] < steps:
                acc["wall_s"] += time.time() - t0
                prog["wall_s"] += time.time() - t0
                save(f"step_{prog['global_step']}.pth", {})
                bar.close()
                return None
        bar.close()
        result = feed.end_epoch(epoch)
        if env.main and result.get("drop"):
            (work_dir / "selection").mkdir(exist_ok=True)
            np.savez(work_dir / "selection" / f"epoch_{epoch:03d}.npz", losses=result["losses"].astype(np.float32),
                     kept=result["kept"])
        loss_sum, count, scored = all_sum([acc["loss_sum"], acc["count"], acc["scored"]], env)
        if feed.online and scored == 0:
            kept = 1.0  # a warm-up / cool-down epoch: nothing scored, every loaded batch trained
        top1 = top5 = None
        if epoch % rt.get("eval_interval", 1) == 0 or epoch == plan.epochs:
            top1, top5 = evaluate(model, val_set, env, b, feed.workers)
        wall = acc["wall_s"] + time.time() - t0
        prog.update(epoch=epoch + 1, step_in_epoch=0, epochs_done=epoch, wall_s=prog["wall_s"] + time.time() - t0,
                    trained=prog["trained"] + trained_epoch,
                    train_flops=prog["train_flops"] + TRAIN_FLOPS_PER_FORWARD * fwd * trained_epoch,
                    selection_flops=prog["selection_flops"] + sel_fwd * scored,
                    top1=top1 if top1 is not None else prog["top1"], top5=top5 if top5 is not None else prog["top5"])
        line = {"type": "epoch", "epoch": epoch, "trained_samples": trained_epoch, "dataset_size": n,
                "kept_fraction": kept, "train_flops": TRAIN_FLOPS_PER_FORWARD * fwd * trained_epoch,
                "selection_flops": sel_fwd * scored, "wall_s": wall, "train_loss": loss_sum / max(count, 1),
                "lr": optimizer.param_groups[0]["lr"], "top1": top1, "top5": top5}
        summary = _summary(cfg, plan, prog, fwd)
        if env.main:
            with open(work_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
        stop = bool(max_steps and prog["global_step"] >= max_steps)
        if epoch % rt.get("checkpoint_interval", 1) == 0 or epoch == plan.epochs or stop:
            save(f"epoch_{epoch}.pth", summary)
        if stop and epoch < plan.epochs:
            return None
    summary = _summary(cfg, plan, prog, fwd)
    if env.main:
        meta = ckpt.make_meta(cfg, summary, git_rev)
        ckpt.save_backbone(model.state_dict(), meta, work_dir)
        with open(work_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"type": "summary", **summary}) + "\n")
    return summary


def _summary(cfg: dict, plan: Plan, prog: dict, fwd: float) -> dict:
    baseline = plan.ref_epochs * plan.num_samples
    return {"method": cfg["method"]["type"], "arch": cfg["model"]["arch"], "epochs": plan.epochs,
            "relative_cost_samples": prog["trained"] / baseline,
            "relative_cost_flops": (prog["train_flops"] + prog["selection_flops"]) / (TRAIN_FLOPS_PER_FORWARD * fwd * baseline),
            "top1": prog["top1"], "top5": prog["top5"], "wall_s": prog["wall_s"]}
