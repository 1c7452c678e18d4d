"""``tools/train.py CONFIG`` for pre-training configs (those without ``default_scope``).

    python tools/train.py configs/pretrain/tiny_digits_dar.py [--work-dir DIR] [--cfg-options k=v ...]
        [--resume [CKPT]] [--amp] [--launcher {none,pytorch,slurm}] [--dry-run] [--checkpoint-interval N]

Bad input (config values, data, model name, resume checkpoint) is reported as one ``error: ...`` line
on stderr with exit code 2 before any training starts.
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import torch.distributed as dist
from mmengine.config import Config, DictAction

from .checkpoint import CheckpointError, atomic_write_text, find_last, load_for_resume
from .data import DATASET_TYPES, DataError
from .models import ModelError, resolve_arch
from .plan import ConfigError, describe, make_plan

BAD_INPUT = (ConfigError, DataError, ModelError, CheckpointError)
REQUIRED = ("model.arch", "data.type", "data.batch_size", "data.img_size", "schedule.epochs", "method.type", "optim.lr")
# dataset sizes --dry-run assumes when the config does not say (data.num_samples)
KNOWN_SIZES = {"digits": 1347, "cifar10": 50000, "cifar100": 50000}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pre-train a timm backbone (uniform, DaR, online selection, controls).",
                                add_help=add_help)
    p.add_argument("config", help="configs/pretrain/<name>.py")
    p.add_argument("--work-dir", help="output folder (default: work_dirs/<config name>)")
    p.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                   help="override config values, e.g. model.arch=densenet121 method.keep=0.95")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="resume from CKPT, or (no value) from the work dir's last_checkpoint if there is one")
    p.add_argument("--amp", action="store_true", help="mixed precision on GPU (runtime.amp, default bf16)")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none")
    p.add_argument("--dry-run", action="store_true",
                   help="print the planned per-epoch subset fraction and relative cost; no data, no model")
    p.add_argument("--checkpoint-interval", type=int, help="save epoch_<n>.pth every N epochs (default 1)")
    return p


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options`` and the flags applied, checked for required keys."""
    if not Path(args.config).is_file():
        raise ConfigError(f"config file not found: {args.config}")
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options or {})
    runtime = cfg.setdefault("runtime", {})
    if args.amp:
        runtime["amp"] = runtime.get("amp") or "bf16"
    if args.checkpoint_interval is not None:
        if args.checkpoint_interval < 1:
            raise ConfigError(f"--checkpoint-interval must be >= 1, got {args.checkpoint_interval}")
        runtime["checkpoint_interval"] = args.checkpoint_interval
    cfg.setdefault("seed", 0)
    cfg["work_dir"] = args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    for key in REQUIRED:
        section, name = key.split(".")
        if name not in (cfg.get(section) or {}):
            raise ConfigError(f"config {args.config} does not set {key}")
    return cfg


def check(cfg: Config) -> None:
    """Everything that can be checked without data: names, method parameters, schedule, AMP."""
    resolve_arch(cfg.model.arch)
    if cfg.data.type not in DATASET_TYPES:
        raise ConfigError(f"data.type must be one of {', '.join(DATASET_TYPES)}, got {cfg.data.type!r}")
    sched = cfg.get("schedule", {})
    if sched.get("sched", "step") not in ("step", "cosine"):
        raise ConfigError(f"schedule.sched must be 'step' or 'cosine', got {sched.get('sched')!r}")
    milestones = list(sched.get("milestones", ()))
    if any(b <= a for a, b in itertools.pairwise(milestones)) or any(m < 1 for m in milestones):
        raise ConfigError(f"schedule.milestones must be increasing positive epochs, got {milestones}")
    if cfg.runtime.get("amp") not in (None, "bf16", "fp16"):
        raise ConfigError(f"runtime.amp must be None, 'bf16' or 'fp16', got {cfg.runtime.get('amp')!r}")
    for key in ("batch_size", "img_size"):
        value = cfg.data[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"data.{key} must be a positive integer, got {value!r}")
    make_plan(cfg.method.to_dict() if hasattr(cfg.method, "to_dict") else dict(cfg.method), sched["epochs"],
              dry_run_size(cfg), batch_size=cfg.data.batch_size, img_size=cfg.data.img_size)


def dry_run_size(cfg: Config) -> int:
    return int(cfg.data.get("num_samples") or KNOWN_SIZES.get(cfg.data.type, 1_000_000))


def git_rev() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def dry_run(cfg: Config) -> None:
    n = dry_run_size(cfg)
    plan = make_plan(cfg.method.to_dict(), cfg.schedule.epochs, n, batch_size=cfg.data.batch_size,
                     img_size=cfg.data.img_size)
    source = "data.num_samples" if cfg.data.get("num_samples") else (
        f"the size of {cfg.data.type}" if cfg.data.type in KNOWN_SIZES else "an assumed size; set data.num_samples")
    print(f"method {cfg.method.type}, {plan.epochs} epochs, N={n} ({source})")
    print("\n".join(describe(plan)))


def main(args: argparse.Namespace) -> int:
    from .engine import init_distributed, train

    main_rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"
    try:
        cfg = load_config(args)
        check(cfg)
        if args.dry_run:
            dry_run(cfg)
            return 0
        env = init_distributed(args.launcher)
        work_dir = Path(cfg.work_dir)
        config = cfg.to_dict()
        resume = None
        path = find_last(work_dir) if args.resume == "auto" else args.resume
        if path:
            resume = load_for_resume(path, config, env.world)
        elif args.resume == "auto" and env.main:
            print(f"no checkpoint in {work_dir} to resume from; starting from scratch", file=sys.stderr)
        rev = git_rev()
        if env.main:
            work_dir.mkdir(parents=True, exist_ok=True)
            log = work_dir / "log.jsonl"
            if resume is None and log.is_file():  # a fresh run in a used work dir: keep the old log
                log.rename(work_dir / f"log.{time.strftime('%Y%m%d_%H%M%S')}.jsonl")
            cfg.dump(str(work_dir / "config.py"))
            atomic_write_text(work_dir / "git_rev.txt", rev + "\n")
        summary = train(config, env, work_dir, resume=resume, git_rev=rev)
    except BAD_INPUT as exc:
        if main_rank:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if env.main:
        if summary is None:
            print(f"stopped at runtime.max_steps; resume with --resume (work dir {work_dir})")
        else:
            print(f"done: top-1 {summary['top1']:.2f}%, top-5 {summary['top5']:.2f}%, relative cost "
                  f"{100 * summary['relative_cost_samples']:.1f}% (samples) / "
                  f"{100 * summary['relative_cost_flops']:.1f}% (FLOPs); {work_dir}")
    return 0


def train_main(argv: list[str]) -> int:
    """Entry point for ``tools/train.py`` (argv[0] is the config path)."""
    return main(get_args_parser().parse_args(argv))
