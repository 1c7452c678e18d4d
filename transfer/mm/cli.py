"""Train and test transfer (fine-tuning) configs of mmdet, mmseg and mmpose with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--backbone CKPT] [--data-root DIR] [--amp]
                          [--resume [CKPT]] [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
    python tools/test.py CONFIG CKPT [--work-dir DIR] [--out FILE.pkl] [--data-root DIR] [--cfg-options k=v ...]

``tools/train.py`` dispatches here for configs whose ``default_scope`` is mmdet, mmseg or mmpose. Before
a Runner is built, bad input stops with one ``error:`` line and exit code 2: a config of another scope,
missing dataset files, a backbone checkpoint that is missing, not a state dict, or does not fit.
Both commands leave ``metrics.json`` in the work dir (see :mod:`transfer.mm.metrics`).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mmengine.config import Config, DictAction

from dar_common.console import print_error
from dar_common.workdir import (
    WorkDirBusy,
    hold_work_dir,
    latest_checkpoint,
    release_work_dir,
    write_git_revision,
)
from transfer.tasks import task_of

from .checkpoint import BackboneCheckpointError, check_whole_model, describe_meta, read_backbone_checkpoint
from .metrics import MetricsJsonHook
from .preflight import (
    PreflightError,
    check_backbone,
    check_data,
    check_scope,
    check_values,
    replace_data_root,
    set_backbone_checkpoint,
)
from .resume import PREEMPTED_EXIT_CODE, Preempted, PreemptionHook, RNGStateHook, resumable_epoch_loop

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")
# The configs' variable for the backbone weights (substituted into model.backbone.init_cfg.checkpoint)
BACKBONE_VARIABLE = "backbone_checkpoint"


def config_folder_message(path: str) -> str:
    """The line for a folder given where a config file is expected, naming a few configs in it."""
    configs = sorted(p.name for p in Path(path).glob("*.py"))
    shown = ", ".join(configs[:4]) + (", ..." if len(configs) > 4 else "")
    return (f"{path} is a folder, not a config file: pass one config"
            + (f" from it ({len(configs)}: {shown})" if configs else " (it holds no .py config)"))


def cpu_ddp_wrapper_cfg(cfg) -> dict:
    """``model_wrapper_cfg`` for distributed runs on CPU: mmengine's Runner passes
    ``device_ids=[LOCAL_RANK]`` to DistributedDataParallel, which torch rejects for a CPU module; an explicit
    ``device_ids=None`` in the wrapper config takes precedence over that default."""
    return dict(type="MMDistributedDataParallel", device_ids=None, broadcast_buffers=False,
                find_unused_parameters=cfg.get("find_unused_parameters", False))

def _common_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work-dir", help="where logs, checkpoints and metrics.json go "
                        "(default: work_dirs/<config name>)")
    parser.add_argument("--data-root", help="the dataset folder to read instead of the config's data_root "
                        "(e.g. data/tiny/coco or data/tiny/cityscapes), in every dataset and evaluator path")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config entries, e.g. train_cfg.max_epochs=2")
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher")
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0, help=argparse.SUPPRESS)


def get_train_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("tools/train.py (transfer)", add_help=add_help,
                                     description="Fine-tune a detector, segmentor or pose model.")
    parser.add_argument("config", help="mmdet/mmseg/mmpose config, e.g. configs/transfer/*.py")
    parser.add_argument("--backbone", help="backbone weights to fine-tune from (published model, "
                        "backbone.pth, pre-training checkpoint or timm state dict); 'none' = random init")
    parser.add_argument("--amp", action="store_true", help="mixed-precision training")
    parser.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                        help="resume from CKPT, or from the work dir's latest checkpoint if CKPT is omitted")
    _common_args(parser)
    return parser


def get_test_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser("tools/test.py", add_help=add_help,
                                     description="Evaluate a fine-tuned checkpoint; writes metrics.json.")
    parser.add_argument("config", help="the config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="mmengine checkpoint of the whole model (e.g. epoch_12.pth)")
    parser.add_argument("--out", help="also dump the raw predictions to this .pkl file")
    _common_args(parser)
    return parser


def load_config(args: argparse.Namespace) -> tuple[Config, str]:
    """Config with the command-line edits applied; scope checked. Raises PreflightError."""
    if Path(args.config).is_dir():
        raise PreflightError(config_folder_message(args.config))
    if not Path(args.config).is_file():
        raise PreflightError(f"config file not found: {args.config}")
    cfg = Config.fromfile(args.config)
    scope = check_scope(cfg, args.config)
    options = dict(args.cfg_options)
    # Variables of the config file were substituted when it was read: setting them now changes nothing,
    # so the two a user reaches for act as the options they stand for.
    data_root = options.pop("data_root", None)
    backbone = options.pop(BACKBONE_VARIABLE, None)
    if backbone is not None and getattr(args, "backbone", None) not in (None, str(backbone)):
        raise PreflightError(f"--cfg-options {BACKBONE_VARIABLE}={backbone} and --backbone {args.backbone} "
                             "disagree; pass one")
    cfg.merge_from_dict(options)
    if args.data_root or data_root is not None:
        if args.data_root and data_root is not None and str(data_root) != args.data_root:
            raise PreflightError(f"--cfg-options data_root={data_root} and --data-root {args.data_root} "
                                 "disagree; pass one")
        replace_data_root(cfg, args.data_root or str(data_root))
    if backbone is not None:
        set_backbone_checkpoint(cfg, None if str(backbone).lower() == "none" else str(backbone))
    check_values(cfg, options)
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or str(Path("work_dirs") / Path(args.config).stem)
    cfg.launcher = args.launcher
    if args.launcher != "none":
        import torch

        if not torch.cuda.is_available():  # NCCL (the toolboxes' default) needs GPUs
            cfg.setdefault("env_cfg", {}).setdefault("dist_cfg", {})["backend"] = "gloo"
            if cfg.get("model_wrapper_cfg") is None:
                cfg.model_wrapper_cfg = cpu_ddp_wrapper_cfg(cfg)
    return cfg, scope


def backbone_meta(path: str | None) -> dict | None:
    """The meta of a backbone weights file (None where absent or unreadable)."""
    if path is None or not Path(path).is_file():
        return None
    try:
        return read_backbone_checkpoint(path)[1]
    except BackboneCheckpointError:
        return None


def main_rank() -> bool:
    """Rank 0 of the launch (or a single process), known before any process group exists."""
    return os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) == "0"


NOT_RECORDED = object()  # a fine-tuned checkpoint that does not say what its backbone started from


def _run(cfg: Config, config_path: str, mode: str, out: str | None = None, backbone: object = NOT_RECORDED,
         checkpoint: tuple[str, dict] | None = None) -> int:
    """``backbone``: the weights file the model was fine-tuned from, None for a random initialisation
    (scratch), or NOT_RECORDED: then the config's own backbone checkpoint stands for it."""
    from mmengine.dist import is_main_process
    from mmengine.runner import Runner

    from .backbones import pretrained_checkpoint

    if backbone is NOT_RECORDED:
        backbone = pretrained_checkpoint(cfg.model.backbone.get("init_cfg"))
    meta = backbone_meta(backbone)
    held = main_rank()
    if held:  # one run per work dir: before mmengine writes anything there
        hold_work_dir(cfg.work_dir)
    try:
        runner = Runner.from_cfg(cfg)
        if checkpoint is not None:  # before any evaluation: the checkpoint must cover the whole model
            model = getattr(runner.model, "module", runner.model)
            report = check_whole_model(model.state_dict(), checkpoint[1], checkpoint[0], type(model).__name__,
                                       f"tools/train.py {config_path} --backbone FILE")
            runner.logger.info(f"checkpoint {checkpoint[0]}: {report.summary()}")
        runner.register_hook(MetricsJsonHook(task_of(cfg), config_path, backbone, meta), priority="LOW")
        if mode == "train":  # exact resume (the RNG states in each checkpoint) and preemption (exit 75)
            runner.register_hook(RNGStateHook())
            runner.register_hook(PreemptionHook())
        if is_main_process():
            write_git_revision(runner.work_dir)
        if meta:
            runner.logger.info(f"backbone {backbone}: {describe_meta(meta)}")
        if mode == "train":
            runner.train()
        else:
            if out:
                from mmengine.evaluator import DumpResults

                runner.test_evaluator.metrics.append(DumpResults(out_file_path=out))
            runner.test()
    finally:  # (in-process callers -- the pipeline's worker, tests -- run the next tool on this dir)
        if held:
            release_work_dir(cfg.work_dir)
    return 0


def train(args: argparse.Namespace) -> int:
    cfg, scope = load_config(args)
    if args.backbone:
        set_backbone_checkpoint(cfg, None if args.backbone.lower() == "none" else args.backbone)
    if args.amp:
        from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available

        if not (is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available()):
            raise PreflightError("--amp needs an accelerator: mmengine's AmpOptimWrapper does not run on CPU")
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.loss_scale = "dynamic"
    if args.resume:
        if args.resume != "auto" and not Path(args.resume).is_file():
            raise PreflightError(f"--resume checkpoint not found: {args.resume}")
        cfg.resume, cfg.load_from = True, None if args.resume == "auto" else args.resume
        resume_from = cfg.load_from or latest_checkpoint(cfg.work_dir)  # auto: what mmengine will pick
        if resume_from is not None:  # a truncated or foreign file: one line now, not a traceback later
            try:
                read_model_checkpoint(str(resume_from))
            except PreflightError as err:
                raise PreflightError(f"cannot resume: {err}") from None
    check_data(cfg, ("train_dataloader", "val_dataloader") if cfg.get("val_cfg") is not None
               else ("train_dataloader",))
    if cfg.get("train_cfg") is not None:  # an epoch-based recipe can resume a preemption's mid-epoch checkpoint
        resumable_epoch_loop(cfg.train_cfg)
    if not cfg.get("resume") and not cfg.get("load_from"):
        check_backbone(cfg, scope)  # resuming or loading a whole model overrides the backbone anyway
    return _run(cfg, args.config, "train")


def test(args: argparse.Namespace) -> int:
    cfg, _ = load_config(args)
    if not Path(args.checkpoint).is_file():
        raise PreflightError(f"checkpoint not found: {args.checkpoint}")
    if args.out and not args.out.endswith((".pkl", ".pickle")):
        raise PreflightError(f"--out must be a .pkl file, got {args.out}")
    check_data(cfg, ("test_dataloader",))
    cfg.load_from = args.checkpoint
    ckpt = read_model_checkpoint(args.checkpoint)
    # Report the backbone the checkpoint was fine-tuned from (its embedded config), not the config's.
    return _run(cfg, args.config, "test", out=args.out, backbone=trained_backbone(ckpt),
                checkpoint=(args.checkpoint, ckpt))


def read_model_checkpoint(checkpoint: str) -> dict:
    """The loaded checkpoint file, which must hold a ``state_dict``; raises PreflightError."""
    from mmengine.runner.checkpoint import _load_checkpoint

    try:
        ckpt = _load_checkpoint(checkpoint, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - whatever torch.load raises, the file is unusable
        raise PreflightError(f"{checkpoint} is not a readable checkpoint ({type(err).__name__})") from err
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise PreflightError(f"{checkpoint} is not an mmengine checkpoint (no 'state_dict' entry)")
    return ckpt


def trained_backbone(ckpt: dict) -> object:
    """The backbone checkpoint recorded in a fine-tuned checkpoint's embedded config (mmengine saves the
    config text in ``meta['cfg']``): a path, None when it was trained from a random initialisation
    (``--backbone none``: the test must not report the test config's placeholder path as its origin), or
    NOT_RECORDED."""
    from .backbones import pretrained_checkpoint

    try:
        cfg = Config.fromstring(ckpt["meta"]["cfg"], file_format=".py")
        return pretrained_checkpoint(cfg.model.backbone.get("init_cfg"))
    except Exception:  # noqa: BLE001 - an old or foreign checkpoint simply has no usable record
        return NOT_RECORDED


def _main(run, parser: argparse.ArgumentParser, argv: list[str]) -> int:
    from dar_common.process_group import close_distributed

    args = parser.parse_args(argv)
    try:
        return run(args)
    except Preempted as stop:  # every rank: torchrun (dar_common's wrapper) / srun pass 75 on
        if main_rank():
            print(f"{stop}; resume with --resume (work dir {getattr(args, 'work_dir', None) or 'of the config'})",
                  file=sys.stderr)
        return PREEMPTED_EXIT_CODE
    except (PreflightError, BackboneCheckpointError, WorkDirBusy) as err:
        print_error(str(err))
        return 2
    except OSError as err:  # e.g. a write that failed (full disk, file-size limit): the old file is intact
        print_error(str(err))
        return 1
    finally:  # mmengine leaves the group open: gloo threads alive at exit can abort a finished rank
        close_distributed()


def train_main(argv: list[str]) -> int:
    """Entry point of ``tools/train.py`` for transfer configs; argv[0] is the config path."""
    return _main(train, get_train_parser(), argv)


def test_main(argv: list[str]) -> int:
    """Entry point of ``tools/test.py``."""
    return _main(test, get_test_parser(), argv)
