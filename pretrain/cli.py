"""``tools/train.py CONFIG`` for pre-training configs (those without ``default_scope``).

    python tools/train.py configs/pretrain/tiny_digits_dar.py [--work-dir DIR] [--cfg-options k=v ...]
        [--resume [CKPT]] [--amp] [--launcher {none,pytorch,slurm}] [--dry-run] [--checkpoint-interval N]
    python tools/train.py --list-methods

Bad input (config values, data, model name, resume checkpoint) is reported as one ``error: ...`` line
on stderr with exit code 2 before any training starts.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from mmengine.config import Config, DictAction

from dar_common.console import print_error
from dar_common.exit_codes import PREEMPTED_EXIT_CODE
from dar_common.process_group import close_distributed
from dar_common.workdir import (
    LOG_FILE,
    WorkDirBusy,
    atomic_write_text,
    git_revision,
    release_work_dir,
    remove_stale_temporaries,
    write_git_revision,
)

from .bn_recalibrate import BNRecalibrateHook
from .checkpoint import CheckpointError, find_last, load_for_resume
from .config import TrainConfig, build_config
from .data import DataError
from .errors import ConfigError
from .hooks import CheckpointHook, EvalHook, Hook, LogHook, MaxStepsHook, ProgressBarHook, SelectionDumpHook
from .models import ModelError
from .plan import describe, make_plan
from .preempt import PREEMPTED, PreemptHook
from .probes.hook import ProbeHook

BAD_INPUT = (ConfigError, DataError, ModelError, CheckpointError, WorkDirBusy)
# dataset sizes --dry-run assumes when the config does not say (data.num_samples)
KNOWN_SIZES = {"digits": 1347, "cifar10": 50000, "cifar100": 50000}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Pre-train a timm backbone with a sample-selection method "
                                            "(--list-methods shows them).", add_help=add_help)
    p.add_argument("config", nargs="?", help="configs/pretrain/<name>.py")
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
    p.add_argument("--list-methods", action="store_true", help="print the selection methods and exit")
    return p


def load_config(args: argparse.Namespace) -> Config:
    """The config with ``--cfg-options`` and the flags applied."""
    if not args.config:
        raise ConfigError("no config given (python tools/train.py CONFIG ...)")
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
    return cfg


def check(cfg: Config) -> TrainConfig:
    """Everything that can be checked without data: the schema, the model name, the method's keys."""
    typed = build_config(cfg, f"config {cfg.filename}" if cfg.filename else "the config")
    make_plan(typed.method, typed.schedule.epochs, dry_run_size(typed), batch_size=typed.data.batch_size,
              img_size=typed.data.img_size, seed=typed.seed)
    return typed


def dry_run_size(cfg: TrainConfig) -> int:
    return int(cfg.data.num_samples or KNOWN_SIZES.get(cfg.data.type, 1_000_000))


def dry_run(cfg: Config | TrainConfig) -> None:
    typed = cfg if isinstance(cfg, TrainConfig) else check(cfg)
    n = dry_run_size(typed)
    plan = make_plan(typed.method, typed.schedule.epochs, n, batch_size=typed.data.batch_size,
                     img_size=typed.data.img_size, seed=typed.seed)
    source = "data.num_samples" if typed.data.num_samples else (
        f"the size of {typed.data.type}" if typed.data.type in KNOWN_SIZES else "an assumed size; set data.num_samples")
    print(f"method {typed.method_type}, {plan.epochs} epochs, N={n} ({source})")
    print("\n".join(describe(plan)))


def list_methods() -> None:
    from .methods import list_methods as registered

    rows = registered()
    width = max(len(name) for name, _ in rows)
    for name, description in rows:
        print(f"{name:<{width}}  {description}")


def prepare_work_dir(cfg: Config, work_dir: Path, resumed: bool, rev: str) -> None:
    """Rank 0: the folder, the resolved config and the git revision; a fresh run keeps an old log aside, a
    resumed one removes the temporary files of writes its predecessor was killed in."""
    work_dir.mkdir(parents=True, exist_ok=True)
    log = work_dir / LOG_FILE
    if not resumed and log.is_file():  # a fresh run in a used work dir: keep the old log
        log.rename(work_dir / f"log.{time.strftime('%Y%m%d_%H%M%S')}.jsonl")
    atomic_write_text(work_dir / "config.py", cfg.pretty_text)
    write_git_revision(work_dir, rev)
    if resumed:  # the run that wrote here is gone: a write it was killed in left its temporary file
        for path in remove_stale_temporaries(work_dir):
            print(f"removed {path.relative_to(work_dir)}, left by a write the previous run was killed in",
                  file=sys.stderr)


def default_hooks(cfg: TrainConfig) -> list[Hook]:
    """The hooks of a run, in calling order (dumps before evaluation, the log line before its checkpoint);
    the probe and BN-recalibration hooks when their sections ask for them, the preemption hook always."""
    bn = [BNRecalibrateHook(cfg.bn_recalibrate)] if cfg.bn_recalibrate else []
    probe = [ProbeHook(cfg.probe)] if cfg.probe else []
    rt = cfg.runtime
    return [MaxStepsHook(rt.max_steps), ProgressBarHook(), SelectionDumpHook(), EvalHook(), *bn,
            LogHook(), *probe, CheckpointHook(), PreemptHook(rt.preempt_signals, rt.checkpoint_minutes)]


def hold_work_dir_on_main(work_dir: Path, env) -> None:
    """One run per work dir (``dar_common.workdir.hold_work_dir``): rank 0 takes the lock, every rank
    stops with its line when another live run holds it (collective)."""
    from dar_common.workdir import hold_work_dir

    from .env import first_error

    message = None
    if env.main:
        try:
            hold_work_dir(work_dir)
        except WorkDirBusy as exc:
            message = str(exc)
    message = first_error(message)
    if message:
        raise WorkDirBusy(message)


def main(args: argparse.Namespace) -> int:
    from .env import init_distributed
    from .trainer import Trainer

    if args.list_methods:
        list_methods()
        return 0
    main_rank = os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"
    env = work_dir = None
    try:
        cfg = load_config(args)
        typed = check(cfg)
        if args.dry_run:
            dry_run(typed)
            return 0
        env = init_distributed(args.launcher)
        work_dir = Path(typed.work_dir)
        hold_work_dir_on_main(work_dir, env)
        resume = None
        path = find_last(work_dir) if args.resume == "auto" else args.resume
        if path:
            resume = load_for_resume(path, typed.raw, env.world)
        elif args.resume == "auto" and env.main:
            print(f"no checkpoint in {work_dir} to resume from; starting from scratch", file=sys.stderr)
        rev = git_revision()
        if env.main:
            prepare_work_dir(cfg, work_dir, resume is not None, rev)
        trainer = Trainer(typed, env, work_dir, git_rev=rev, hooks=default_hooks(typed))
        summary = trainer.train(resume)
        stop_reason = trainer.stop_reason
    except BAD_INPUT as exc:
        if main_rank:
            print_error(str(exc))
        return 2
    except OSError as exc:  # a write that failed (full disk, file-size limit): the previous file is intact
        print_error(str(exc))
        return 1
    except RuntimeError as exc:  # a collective broken by a rank that stopped (its own line says why)
        import torch.distributed as dist

        if main_rank or not isinstance(exc, getattr(dist, "DistError", ())):
            raise
        print_error(f"rank {os.environ.get('RANK', '?')}: another rank stopped during a collective "
                    f"({str(exc).splitlines()[0][:160]}); its error line says why")
        return 1
    finally:
        if env is not None and env.main and work_dir is not None:  # in-process callers (tests) go on
            release_work_dir(work_dir)
        trainer = None  # it holds the DDP model, which holds the process group (see close_distributed)
        close_distributed()
    if summary is None and stop_reason == PREEMPTED:  # every rank: srun / torchrun pass it on
        if env.main:
            print(f"preempted: checkpoint written; resume with --resume (work dir {work_dir})")
        return PREEMPTED_EXIT_CODE
    if env.main:
        if summary is None:
            print(f"stopped at runtime.{stop_reason}; resume with --resume (work dir {work_dir})")
        else:
            print(f"done: top-1 {summary['top1']:.2f}%, top-5 {summary['top5']:.2f}%, relative cost "
                  f"{100 * summary['relative_cost_samples']:.1f}% (samples) / "
                  f"{100 * summary['relative_cost_flops']:.1f}% (FLOPs); {work_dir}")
    return 0


def train_main(argv: list[str]) -> int:
    """Entry point for ``tools/train.py`` (argv[0] is the config path, or ``--list-methods``)."""
    return main(get_args_parser().parse_args(argv))
