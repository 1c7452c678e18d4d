"""The GPU check behind ``bench/gpu_check.sh``: each part a subprocess with its own time limit, one JSON.

Parts (real mode, one H100/H200; the time limits of :data:`LIMITS_S` add up to 8 minutes):

1. ``doctor``     -- ``python -m transfer.mm.doctor``: versions, mmcv ops, CUDA, the four reference models;
2. ``ops``        -- ``bench/gpu_ops.py --device cuda``: RoIAlign / NMS / batched NMS / focal loss on CUDA
                     against the CPU (largest differences), and the golden tests on CUDA;
3. ``vs_timm``    -- ``bench/vs_timm.py``: images/s of ``tools/train.py`` against timm's ``train.py``, ResNet-50
                     at 224 px, bf16 autocast, channels_last: eager, with ``torch.compile``, and the ResNet
                     Strikes Back A3 recipe where ``configs/pretrain/imagenet_r50_rsb_a3.py`` exists;
4. ``overhead``   -- ``bench/overhead.py``: DaR, online (r̂ = 64, 96, 128), Selective Backprop and InfoBatch
                     step / uniform step on the GPU, same switches;
5. ``finetune``   -- ``tools/train.py`` on each tiny recipe (Faster R-CNN, Mask R-CNN, RetinaNet, PSPNet,
                     SimpleBaseline; ResNet-50, random init): one training iteration and validation on CUDA.

A measurement whose script lacks the options it needs (e.g. ``--device``) is reported ``skipped`` with
the reason, never run half-way. ``--dry`` / ``--dry-run`` (or ``GPU_CHECK_DRY=1``) lists every measurement
with its command and checks it on the CPU in about a minute: the doctor (``--brief``), the ops comparison
CPU against CPU, and for the other parts the command lines, the scripts' option parsing and the configs with
their overrides -- so the check cannot rot unnoticed. Exit status 1 when a part failed.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(ROOT))  # pretrain/, transfer/ when not installed
from benchlib import machine, write_json  # noqa: E402

# recipe -> (tiny config, tiny data subfolder, its loop's length key); each runs one iteration of batch 2
RECIPES = {
    "faster_rcnn": ("faster-rcnn_r50_fpn_tiny", "coco", "max_epochs"),
    "mask_rcnn": ("mask-rcnn_r50_fpn_tiny", "coco", "max_epochs"),
    "retinanet": ("retinanet_r50_fpn_tiny", "coco", "max_epochs"),
    "pspnet": ("pspnet_r50b-d8_tiny", "cityscapes", "max_iters"),  # iteration-based: validates at val_interval
    "simplebaseline": ("td-hm_res50_tiny", "coco", "max_epochs"),
}
ONE_ITERATION = ["train_dataloader.batch_size=2", "train_dataloader.dataset.indices=2", "default_hooks.logger.interval=1"]


def one_iteration(length_key: str) -> list[str]:
    """The overrides for one iteration of batch 2 and a validation: an epoch of 2 samples, or 1 iteration."""
    loop = ["train_cfg.max_epochs=1"] if length_key == "max_epochs" else ["train_cfg.max_iters=1",
                                                                          "train_cfg.val_interval=1"]
    return loop + ONE_ITERATION
GPU_STEP = ["--arch", "resnet50", "--img-size", "224"]
GPU_FLAGS = {"--device": "cuda", "--amp": "bf16", "--channels-last": None}  # what a GPU comparison needs
A3_CONFIG = ROOT / "configs" / "pretrain" / "imagenet_r50_rsb_a3.py"  # the recipes issue's (18)
# timm's train.py with the A3 recipe as configs/pretrain/imagenet_r50_rsb_a3.py has it ("ResNet strikes back",
# Wightman et al. 2021): LAMB at 8e-3 per 2048 images (linear), cosine with 5 warm-up epochs from 1e-4 to 1e-6,
# wd 0.02, BCE with target threshold 0.2, RandAugment m6 std 0.5, Mixup 0.1 / CutMix 1.0 (switch 0.5, per
# batch), random train interpolation, no label smoothing, no stochastic depth, 160 px
A3_TIMM_ARGS = ("--opt lamb --lr-base 8e-3 --lr-base-size 2048 --lr-base-scale linear --weight-decay 0.02 "
                "--sched cosine --warmup-epochs 5 --warmup-lr 1e-4 --min-lr 1e-6 --bce-loss --bce-target-thresh 0.2 "
                "--smoothing 0 --aa rand-m6-mstd0.5-inc1 --mixup 0.1 --cutmix 1.0 --mixup-switch-prob 0.5 "
                "--mixup-mode batch --train-interpolation random --reprob 0 --crop-pct 0.95")
VS_TIMM = ["--batch-size", "128", "--workers", "12", "--steps", "20", "--skip", "5", "--no-loading"]
# measurement -> (script, arguments besides the GPU switches); what each bench part runs on the GPU
MEASUREMENTS = {
    "vs_timm": {
        "resnet50_224_bf16_channels_last": ("vs_timm", [*GPU_STEP, *VS_TIMM, "--reps", "2"]),
        "resnet50_224_bf16_channels_last_compile": ("vs_timm", [*GPU_STEP, *VS_TIMM, "--reps", "1", "--compile"]),
        "rsb_a3_160_bf16_channels_last": ("vs_timm", ["--arch", "resnet50", "--img-size", "160", *VS_TIMM, "--reps", "1",
                                                      "--config", str(A3_CONFIG), f"--timm-args={A3_TIMM_ARGS}"]),
    },
    "overhead": {
        "dar_online_sb_infobatch_vs_uniform": ("overhead", [*GPU_STEP, "--batch-size", "64", "--reps", "8", "--warmup", "2",
                                                            "--parts", "steps", "--methods", "dar", "online",
                                                            "selective_backprop", "infobatch"]),
    },
}
# seconds each may take on the GPU (a budget: these have not run on a GPU yet); sum 475 s, under 8 minutes.
# vs_timm_data: the 3,200 synthetic JPEGs the vs_timm runs share, made once before they are timed
LIMITS_S = {"doctor": 30, "ops": 25, "goldens": 20, "vs_timm_data": 50, "resnet50_224_bf16_channels_last": 100,
            "resnet50_224_bf16_channels_last_compile": 100, "rsb_a3_160_bf16_channels_last": 35,
            "dar_online_sb_infobatch_vs_uniform": 50, "finetune_each": 13}
DRY_LIMIT_S = 600  # the dry run checks that things run, not how fast (a shared CI machine may crawl)


def run(cmd: list[str], limit_s: float, cwd: Path = ROOT) -> dict:
    """Run one command; its status, time, and the tail of its output when it failed."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=limit_s)
    except subprocess.TimeoutExpired:
        return {"status": "failed", "error": f"over its {limit_s:.0f} s limit", "command": cmd,
                "wall_s": round(time.perf_counter() - start, 1)}
    record = {"status": "ok" if proc.returncode == 0 else "failed", "command": cmd,
              "wall_s": round(time.perf_counter() - start, 1)}
    if proc.returncode != 0:
        record["error"] = (proc.stderr.strip() or proc.stdout.strip())[-1500:]
    record["stdout_tail"] = proc.stdout.strip().splitlines()[-12:]
    return record


def missing_options(script: Path, options: list[str]) -> list[str]:
    """The options ``script --help`` does not list (its parser is the judge of what it supports)."""
    proc = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"{script.name} --help failed: {proc.stderr.strip()[-300:]}")
    return [opt for opt in options if opt not in proc.stdout]


def gpu_flags() -> list[str]:
    return [part for flag, value in GPU_FLAGS.items() for part in ([flag] if value is None else [flag, value])]


def limit(part: str, dry: bool) -> float:
    return DRY_LIMIT_S if dry else LIMITS_S[part]


def part_doctor(dry: bool) -> dict:
    return run([sys.executable, "-m", "transfer.mm.doctor", *(["--brief"] if dry else [])], limit("doctor", dry))


def part_ops(dry: bool, out_dir: Path) -> dict:
    out = out_dir / "ops.json"
    record = run([sys.executable, str(ROOT / "bench" / "gpu_ops.py"), "--device", "cpu" if dry else "cuda",
                  "--out", str(out)], limit("ops", dry))
    if record["status"] == "ok":
        record["result"] = json.loads(out.read_text())
    if not dry:
        goldens = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda",
                       "tests/test_stack/test_mmcv_lite_goldens.py"], LIMITS_S["goldens"])
        record["goldens_on_cuda"] = {k: goldens[k] for k in ("status", "stdout_tail")}
        if goldens["status"] != "ok":
            record["status"] = "failed"
    return record


def options_of(args: list[str]) -> list[str]:
    return [a.split("=", 1)[0] for a in args if a.startswith("--")]


def measure(name: str, script_name: str, cmd_tail: list[str], dry: bool, out_dir: Path, timm_train: Path) -> dict:
    """One vs_timm / overhead measurement: run on the GPU only if the script takes every option it is given."""
    script = ROOT / "bench" / f"{script_name}.py"
    out = out_dir / f"{name}.json"
    extra = ["--timm-train", str(timm_train)] if script_name == "vs_timm" else []
    cmd = [sys.executable, str(script), *cmd_tail, *gpu_flags(), *extra, "--out", str(out)]
    try:
        lacking = missing_options(script, options_of(cmd[2:]))
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        return {"status": "failed", "command": cmd, "error": str(err)}
    if lacking:
        return {"status": "skipped", "command": cmd,
                "reason": f"bench/{script_name}.py has no {', '.join(lacking)} option(s), needed to measure on the GPU"}
    if "--config" in cmd and not Path(cmd[cmd.index("--config") + 1]).is_file():
        return {"status": "skipped", "command": cmd,
                "reason": f"{Path(cmd[cmd.index('--config') + 1]).relative_to(ROOT)} does not exist yet (issue 18)"}
    if script_name == "vs_timm" and not timm_train.is_file():
        if dry:  # CI has no copy of timm's train.py: say so, the command is still checked
            return {"status": "dry", "command": cmd, "note": f"timm's train.py not at {timm_train} here"}
        return {"status": "failed", "command": cmd, "error": f"timm's train.py not found at {timm_train} "
                "(bench/prepare_gpu.py copies it into .gpu/timm_train/)"}
    if dry:
        return {"status": "dry", "command": cmd}
    record = run(cmd, LIMITS_S[name])
    if record["status"] == "ok" and out.is_file():
        record["result"] = json.loads(out.read_text())
    return record


def part_bench(part: str, dry: bool, out_dir: Path, timm_train: Path) -> dict:
    """Every measurement of ``part``; failed when one failed. vs_timm's data is made first, untimed."""
    records = {}
    if part == "vs_timm":  # every vs_timm measurement has the same images: (skip + steps) x batch at 500x375
        _, tail = MEASUREMENTS[part]["resnet50_224_bf16_channels_last"]
        cmd = [sys.executable, str(ROOT / "bench" / "vs_timm.py"), *tail, "--data-only"]
        data = {"status": "dry", "command": cmd} if dry else run(cmd, LIMITS_S["vs_timm_data"])
        if dry and missing_options(ROOT / "bench" / "vs_timm.py", ["--data-only"]):
            data = {"status": "failed", "command": cmd, "error": "bench/vs_timm.py has no --data-only option"}
        if data["status"] == "failed":
            return {"status": "failed", "data": data, "measurements": {}}
    records.update({name: measure(name, script, tail, dry, out_dir, timm_train)
                    for name, (script, tail) in MEASUREMENTS[part].items()})
    for name, record in records.items():
        print(f"[gpu_check]   {part}/{name}: {record['status']}"
              + (f" ({record.get('reason') or record.get('note')})" if record.get("reason") or record.get("note") else "")
              + (f"\n[gpu_check]     {' '.join(record['command'][1:])}" if dry else ""), flush=True)
    statuses = {r["status"] for r in records.values()}
    status = "failed" if "failed" in statuses else ("dry" if dry else "ok")
    return {"status": status, "measurements": records}


def read_scalars(work_dir: Path) -> dict | None:
    """The last training-loss record mmengine's LocalVisBackend wrote (``<time>/vis_data/scalars.json``)."""
    for path in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in reversed(path.read_text().splitlines()):
            record = json.loads(line)
            if "loss" in record:
                return {k: v for k, v in record.items() if k.startswith("loss") or k in ("iter", "lr")}
    return None


def finetune_commands(data: Path, work: Path) -> dict[str, list[str]]:
    return {name: [sys.executable, str(ROOT / "tools" / "train.py"), str(ROOT / "configs" / "transfer" / f"{cfg}.py"),
                   "--backbone", "none", "--data-root", str(data / subset), "--work-dir", str(work / name),
                   "--cfg-options", *one_iteration(length)]
            for name, (cfg, subset, length) in RECIPES.items()}


# a few images per dataset are enough for one iteration and a quick validation
TINY_DATA = ["--num-train", "8", "--num-val", "4", "--size", "256", "--classification", "0", "0"]


def part_finetune(dry: bool, out_dir: Path) -> dict:
    data, work = out_dir / "tiny", out_dir / "finetune"
    commands = finetune_commands(data, work)
    make_data = [sys.executable, str(ROOT / "tools" / "make_tiny_data.py"), str(data), *TINY_DATA]
    if dry:  # the configs load with the overrides, through tools/train.py's own parser and config loading
        import importlib.util

        from transfer.mm.cli import get_train_parser, load_config

        spec = importlib.util.spec_from_file_location("make_tiny_data", make_data[1])
        tool = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(tool)
        tool.get_args_parser().parse_args(make_data[2:])  # the data command still parses
        results = {}
        for name, cmd in commands.items():
            cfg, _ = load_config(get_train_parser().parse_args(cmd[2:]))
            if cfg.train_dataloader.dataset.get("indices") != 2 or cfg.train_cfg.get(RECIPES[name][2]) != 1:
                return {"status": "failed", "error": f"{name}: the one-iteration overrides did not apply"}
            results[name] = {"status": "dry", "command": cmd}
            print(f"[gpu_check]   finetune/{name}: dry\n[gpu_check]     {' '.join(cmd[1:])}", flush=True)
        return {"status": "dry", "recipes": results}
    made = run(make_data, 60)
    if made["status"] != "ok":
        return {"status": "failed", "error": "tools/make_tiny_data.py: " + made.get("error", "")}
    results = {}
    for name, cmd in commands.items():
        record = run(cmd, LIMITS_S["finetune_each"])
        record["losses"] = read_scalars(work / name)
        metrics = work / name / "metrics.json"
        record["metrics"] = json.loads(metrics.read_text()).get("metrics") if metrics.is_file() else None
        results[name] = record
    return {"status": "ok" if all(r["status"] == "ok" for r in results.values()) else "failed", "recipes": results}


def default_timm_train() -> Path:
    prepared = ROOT / ".gpu" / "timm_train" / "train.py"
    return prepared if prepared.is_file() else Path("/tmp/timm_train/train.py")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--dry", "--dry-run", action="store_true", default=os.environ.get("GPU_CHECK_DRY") == "1",
                        help="CPU only, in about a minute: lists every measurement and checks that it still runs")
    parser.add_argument("--timm-train", type=Path, default=default_timm_train(),
                        help="timm's train.py (default: bench/prepare_gpu.py's .gpu/timm_train/train.py if it exists, "
                        "else /tmp/timm_train/train.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "work_dirs" / "bench" / "gpu_check.json")
    parser.add_argument("--parts", nargs="+", default=["doctor", "ops", "vs_timm", "overhead", "finetune"],
                        choices=["doctor", "ops", "vs_timm", "overhead", "finetune"])
    return parser


def main(args: argparse.Namespace) -> int:
    import torch

    if not args.dry and not torch.cuda.is_available():
        print("error: no GPU visible (torch.cuda.is_available() is False); --dry checks the script on the CPU",
              file=sys.stderr)
        return 2
    start = time.perf_counter()
    report = {"dry": args.dry, "device": "cpu" if args.dry else "cuda", "machine": machine(), "parts": {}}
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        tmp = Path(tmp)
        for part in args.parts:
            print(f"[gpu_check] {part} ...", flush=True)
            if part == "doctor":
                record = part_doctor(args.dry)
            elif part == "ops":
                record = part_ops(args.dry, tmp)
            elif part in MEASUREMENTS:
                record = part_bench(part, args.dry, tmp, args.timm_train.resolve())
            else:
                record = part_finetune(args.dry, tmp)
            report["parts"][part] = record
            print(f"[gpu_check] {part}: {record['status']}", flush=True)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    write_json(args.out, report)
    failed = [p for p, r in report["parts"].items() if r["status"] == "failed"]
    print(f"[gpu_check] wrote {args.out} in {report['wall_s']} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
