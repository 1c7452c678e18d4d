"""Training throughput of our uniform training against timm's own train.py, and the online pool's loading.

    python bench/vs_timm.py                  # resnet18, 224 px, b=8, fp32, 5 alternating pairs (~8 min here)
    python bench/vs_timm.py --quick          # tiny model and images: checks that it runs (<1 min)
    python bench/vs_timm.py --loader-only    # loaders alone: ours / timm's create_loader, images/s
    python bench/vs_timm.py --device cuda --amp bf16 --channels-last [--compile] --arch resnet50 --batch-size 128
                                             # on a GPU (bench/gpu_check.sh runs this)

Both sides train the same timm model with the same batch, precision, optimizer (SGD, momentum 0.9,
wd 1e-4), augmentation (random-resized crop 8-100 %, flip, bilinear, no colour jitter, no label
smoothing), worker count and CPU threads, device, autocast dtype, memory format and ``torch.compile``
(``--device``, ``--amp``, ``--channels-last``, ``--compile``: our ``runtime.*`` keys, timm's ``--amp
--amp-dtype``, ``--channels-last``, ``--torchcompile``), on the same synthetic ImageFolder of JPEGs (500x375, written
under /tmp). Each run is its own process; the runs alternate (shuffled within each pair) and the ratio
is taken per pair. A step's time is the time between two consecutive optimizer updates (data loading
included), stamped by torch's global optimizer-step post-hook in the child process -- the same point on
both sides (on CUDA after a ``torch.cuda.synchronize()`` in that hook, so queued kernels are counted), and
neither script is changed (timm's runs via ``runpy`` exactly as ``python train.py``).
The main process's CPU time per step is stamped too: it is far less sensitive to other load on a
shared machine (the data workers' CPU is not in it). The first ``--skip`` steps are left out of both.

timm's train.py is not part of the timm wheel or sdist: give its path with ``--timm-train`` (see
bench/README.md for how to get the one we used). On a machine without CUDA its ``validate()`` calls
``torch.cuda.synchronize()`` and fails after the training epoch; the timed training steps are complete
by then, so that failure is expected and tolerated (anything else is an error).

Loading: we time loaders alone (images decoded, augmented and normalised per second, same workers,
interleaved rounds): ours (uint8 collate, ``BatchNormalize`` per batch) against timm's
``create_loader`` as its train.py builds it, our float per-sample pipeline of before, and the online
``Feed``'s pools of b̄ = 2b per trained b, compared with what online training at our measured step rate
needs (b̄/b x trained images/s).
"""
from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # pretrain/, when not installed
from benchlib import fmt_ratio, interleaved, machine, summarize, table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BASE_CONFIG = ROOT / "configs/pretrain/imagenet_r50_uniform_120e.py"
NUM_CLASSES = 10


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Our uniform training vs timm's train.py: images/s.", add_help=add_help)
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--steps", type=int, default=12, help="timed steps per run")
    p.add_argument("--skip", type=int, default=3, help="untimed first steps per run")
    p.add_argument("--workers", type=int, default=1, help="data-loading workers (both sides)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (OMP_NUM_THREADS, both sides)")
    p.add_argument("--reps", type=int, default=5, help="alternating pairs of runs")
    p.add_argument("--pool-factor", type=int, default=2, help="online pool b̄ = factor x b for the loading test")
    p.add_argument("--pools", type=int, default=10, help="pools timed in the loading test")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where both sides train")
    p.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast dtype (both sides)")
    p.add_argument("--channels-last", action="store_true", help="channels_last memory format (both sides)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (both sides; its warm-up "
                   "steps belong in --skip)")
    p.add_argument("--config", default=str(BASE_CONFIG),
                   help="our pre-training config; another than the default keeps its own recipe (only data, batch, "
                   "size, workers, epochs and the switches above are set) and --timm-args should match it")
    p.add_argument("--timm-args", default="", help="more arguments for timm's train.py (one string), e.g. the recipe "
                   "matching --config")
    p.add_argument("--no-loading", action="store_true", help="leave out the loading comparison after the runs")
    p.add_argument("--data-only", action="store_true", help="only make the synthetic ImageFolder these arguments "
                   "need, then exit (bench/gpu_check.sh does this before its timed runs)")
    p.add_argument("--timm-train", default="/tmp/timm_train/train.py", help="timm's train.py")
    p.add_argument("--data-root", default="/tmp/dar_bench_imagefolder", help="synthetic ImageFolder (made if absent)")
    p.add_argument("--out", default="work_dirs/bench/vs_timm.json")
    p.add_argument("--quick", action="store_true", help="tiny model and images: checks that it runs (<1 min)")
    p.add_argument("--loader-only", action="store_true",
                   help="only the loading comparison (ours vs timm's create_loader); no training, no timm train.py")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)  # internal: SIDE OUT, one timed run
    return p


def apply_quick(args: argparse.Namespace) -> None:
    args.arch, args.img_size, args.batch_size, args.steps, args.skip, args.reps = "test_resnet", 64, 8, 4, 1, 1
    args.pools, args.data_root = 3, args.data_root + "_quick"
    if args.out == get_args_parser().get_default("out"):
        args.out = "work_dirs/bench/vs_timm_quick.json"


# -- data -----------------------------------------------------------------------------------------------
def make_imagefolder(root: Path, train_per_class: list[int], size: tuple[int, int]) -> None:
    """``root/{train,validation}/c<k>/<i>.jpg``: smooth random colour fields plus noise, JPEG q90.

    Deterministic; rebuilt only when the spec in ``root/spec.json`` differs.
    """
    spec = {"train": train_per_class, "size": list(size), "val_per_class": 1}
    marker = root / "spec.json"
    if marker.is_file() and json.loads(marker.read_text()) == spec:
        return
    rng = np.random.default_rng(0)
    w, h = size
    for split, counts in (("train", train_per_class), ("validation", [1] * len(train_per_class))):
        for c, count in enumerate(counts):
            d = root / split / f"c{c}"
            d.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                small = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
                pixels = np.asarray(small, dtype=np.int16) + rng.integers(-24, 25, (h, w, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(d / f"{i}.jpg", quality=90)
    marker.write_text(json.dumps(spec))


def split_counts(total: int, classes: int) -> list[int]:
    return [total // classes + (1 if c < total % classes else 0) for c in range(classes)]


# -- the two sides --------------------------------------------------------------------------------------
def lr(args: argparse.Namespace) -> float:
    return 0.1 * args.batch_size / 256


def ours_argv(args: argparse.Namespace, work_dir: str) -> list[str]:
    opts = {
        "model.arch": args.arch, "data.root": args.data_root, "data.train_dir": "train", "data.val_dir": "validation",
        "data.img_size": args.img_size, "data.batch_size": args.batch_size, "data.num_workers": args.workers,
        "schedule.epochs": 1, "runtime.amp": "bf16" if args.amp == "bf16" else "None",
        "runtime.channels_last": args.channels_last, "runtime.compile": args.compile,
    }
    if Path(args.config).resolve() == BASE_CONFIG.resolve():  # the plain recipe timm's defaults below match
        opts.update({"data.hflip": 0.5, "data.scale": "(0.08,1.0)", "data.interpolation": "bilinear",
                     "optim.lr": 0.1, "optim.lr_batch": 256, "optim.momentum": 0.9, "optim.weight_decay": 1e-4,
                     "schedule.milestones": "[]", "schedule.warmup_epochs": 0})
    return [str(args.config), "--work-dir", work_dir, "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]


def timm_argv(args: argparse.Namespace, tmp: str) -> list[str]:
    cfg = Path(tmp) / "defaults.yaml"
    # through train.py's own YAML defaults: it has no --device flag, and --color-jitter cannot be None
    cfg.write_text(f"device: {args.device}\ncolor_jitter: null\n")
    switches = (["--amp", "--amp-dtype", "bfloat16"] if args.amp == "bf16" else []) + \
        (["--channels-last"] if args.channels_last else []) + (["--torchcompile"] if args.compile else [])
    if Path(args.config).resolve() != BASE_CONFIG.resolve():  # the recipe comes from --timm-args
        return [args.timm_train, "-c", str(cfg), "--data-dir", args.data_root, "--model", args.arch,
                "--num-classes", str(NUM_CLASSES), "-b", str(args.batch_size), "--img-size", str(args.img_size),
                "--epochs", "1", "-j", str(args.workers), "--log-interval", "1", "--seed", "0", "--output", tmp,
                *switches, *args.timm_args.split()]
    return [args.timm_train, *switches, *args.timm_args.split(), "-c", str(cfg), "--data-dir", args.data_root, "--model", args.arch,
            "--num-classes", str(NUM_CLASSES), "-b", str(args.batch_size), "--img-size", str(args.img_size),
            "--epochs", "1", "-j", str(args.workers), "--log-interval", "1", "--sched", "step",
            "--decay-epochs", "100", "--warmup-epochs", "0", "--lr", str(lr(args)), "--momentum", "0.9",
            "--weight-decay", "1e-4", "--smoothing", "0", "--train-interpolation", "bilinear",
            "--scale", "0.08", "1.0", "--hflip", "0.5", "--seed", "0", "--output", tmp]


def run_child(args: argparse.Namespace) -> int:
    """In the child process: run one side as a user would, every optimizer update timestamped.

    The stamp comes from torch's global optimizer step post-hook, so both sides are timed at the same
    point (after ``optimizer.step()``) without touching either training script.
    """
    from torch.optim.optimizer import register_optimizer_step_post_hook

    side, out = args.child
    stamps: list[tuple[float, float]] = []
    import torch

    def stamp(*_) -> None:
        if args.device == "cuda":  # the step's kernels are queued: count them where they finish
            torch.cuda.synchronize()
        stamps.append((time.perf_counter(), time.process_time()))

    register_optimizer_step_post_hook(stamp)
    code, error = 0, None
    with tempfile.TemporaryDirectory() as tmp:
        if side == "ours":
            from pretrain.cli import train_main

            code = train_main(ours_argv(args, tmp))
        else:
            sys.argv = timm_argv(args, tmp)
            try:
                runpy.run_path(args.timm_train, run_name="__main__")
            except RuntimeError as exc:  # without CUDA, validate() calls torch.cuda.synchronize()
                error = f"{type(exc).__name__}: {exc}"
    Path(out).write_text(json.dumps({"stamps": stamps, "code": code, "error": error}))
    return code


def child_env(args: argparse.Namespace) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "PYTHONUNBUFFERED": "1"}
    if args.device == "cpu":  # our trainer takes the GPU whenever one is visible
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def passthrough(args: argparse.Namespace) -> list[str]:
    keys = ("arch", "img_size", "batch_size", "steps", "skip", "workers", "threads", "data_root", "timm_train",
            "device", "amp", "config")
    flags = [f"--{k.replace('_', '-')}" for k in ("channels_last", "compile") if getattr(args, k)]
    return [x for k in keys for x in (f"--{k.replace('_', '-')}", str(getattr(args, k)))] + flags + \
        [f"--timm-args={args.timm_args}"]


def run_side(args: argparse.Namespace, side: str) -> dict:
    """One run in a fresh process; per-step wall and main-process CPU seconds after the first ``skip``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stamps.json"
        argv = [sys.executable, __file__, "--child", side, str(out)] + passthrough(args)
        t0 = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=child_env(args), cwd=tmp)
        wall = time.perf_counter() - t0
        got = json.loads(out.read_text()) if out.is_file() else None
    expected = args.skip + args.steps
    cuda_only = got and got["error"] and "NVIDIA driver" in got["error"]  # the known CPU failure, after training
    if got is None or proc.returncode != 0 or len(got["stamps"]) != expected or (got["error"] and not cuda_only):
        seen = len(got["stamps"]) if got else 0
        raise RuntimeError(f"{side}: {seen} of {expected} steps, exit {proc.returncode}, "
                           f"error {got and got['error']}:\n{proc.stderr[-3000:]}")
    stamps = np.asarray(got["stamps"])
    steps = np.diff(stamps, axis=0)[args.skip - 1:]  # step k: from the end of update k-1 to the end of update k
    return {"step_s": steps[:, 0].tolist(), "cpu_s": steps[:, 1].tolist(), "wall_s": wall, "error": got["error"]}


# -- the online pool's loading ---------------------------------------------------------------------------
def _cpu_by_process() -> dict[int, float]:
    """CPU seconds so far of this process (key 0) and of each live child (the loader workers), from /proc."""
    tick, me = os.sysconf("SC_CLK_TCK"), os.getpid()
    out = {0: sum(os.times()[:2])}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:
            continue
        if int(fields[1]) == me:
            out[int(stat.parent.name)] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def _loader_rate(batches, per_batch: int, count: int) -> tuple[float, float]:
    """(images/s from the median gap, CPU ms per image of main process + workers) over ``count``
    batches after the first (loader start-up). CPU time barely depends on what else the machine runs."""
    it, stamps = iter(batches), []
    cpu0 = None
    for _ in range(count + 1):
        if next(it, None) is None:
            break
        stamps.append(time.perf_counter())
        if cpu0 is None:
            cpu0 = _cpu_by_process()
    cpu1 = _cpu_by_process()
    cpu = sum(cpu1[p] - cpu0[p] for p in cpu1 if p in cpu0)
    return per_batch / float(np.median(np.diff(stamps))), 1e3 * cpu / (per_batch * (len(stamps) - 1))


def loading_throughput(args: argparse.Namespace) -> dict:
    """Images/s decoded, augmented and normalised, no training, same folder, augmentation and workers:

    * ``uniform_b``: our Feed, uint8 items collated as uint8 and normalised per batch (``BatchNormalize``,
      on the CPU here as timm's prefetcher is), as the trainer does;
    * ``uniform_b_float``: our Feed with the float32 ``ToTensor`` + ``Normalize`` per sample in the workers
      (the loader before the uint8 change; bitwise the same batches);
    * ``online_pool``: our online Feed, pools of b̄, uint8 + per-pool normalisation;
    * ``timm_loader_b``: timm's ``create_loader`` as its train.py builds it (uint8 collate, normalisation
      in the prefetcher, persistent workers).

    The variants alternate (shuffled) over ``--reps`` rounds; ``ours_over_timm`` is the per-round ratio
    ``uniform_b`` / ``timm_loader_b``."""
    import torch
    from timm.data import create_dataset, create_loader

    from pretrain.data import build_dataset
    from pretrain.methods import build_method
    from pretrain.methods.base import RunInfo

    torch.set_num_threads(args.threads)
    pool = args.pool_factor * args.batch_size
    data = {"type": "imagefolder", "root": args.data_root, "train_dir": "train", "val_dir": "validation",
            "img_size": args.img_size, "batch_size": args.batch_size, "num_workers": args.workers,
            "scale": (0.08, 1.0), "hflip": 0.5, "interpolation": "bilinear"}
    sets = {u8: build_dataset(data, "train", 0, uint8=u8) for u8 in (True, False)}

    def ours(method: dict, uint8: bool):
        train_set = sets[uint8]
        selection = build_method(method, RunInfo(len(train_set), 100, args.batch_size, args.img_size))
        batches = selection.build_feed(train_set, args.workers).begin(1)  # the method's feed, as the trainer builds it
        if not uint8:
            return batches
        return ((train_set.normalize(images), targets, indices) for images, targets, indices in batches)

    def timm_loader():
        ds = create_dataset("", root=args.data_root, split="train", is_training=True)
        return create_loader(ds, input_size=(3, args.img_size, args.img_size), batch_size=args.batch_size,
                             is_training=True, use_prefetcher=True, scale=(0.08, 1.0), hflip=0.5, color_jitter=None,
                             interpolation="bilinear", num_workers=args.workers, device=torch.device("cpu"))

    online = {"type": "online", "pool_size": pool, "score_resolution": 64}
    makers = {"uniform_b": (lambda: ours({"type": "uniform"}, True), args.batch_size),
              "uniform_b_float": (lambda: ours({"type": "uniform"}, False), args.batch_size),
              "online_pool": (lambda: ours(online, True), pool),
              "timm_loader_b": (timm_loader, args.batch_size)}
    rates: dict[str, list[float]] = {k: [] for k in makers}
    cpu: dict[str, list[float]] = {k: [] for k in makers}
    for order in interleaved(list(makers), args.reps, seed=2):
        for name in order:
            make, per_batch = makers[name]
            rate, ms = _loader_rate(make(), per_batch, args.pools)
            rates[name].append(rate)
            cpu[name].append(ms)
    out: dict = {name: {"images_per_s": float(np.median(v)), "cpu_ms_per_image": float(np.median(cpu[name])),
                        "batch": makers[name][1], "rounds": v, "cpu_rounds": cpu[name]}
                 for name, v in rates.items()}

    def per_round(a: dict, x: str, y: str, invert: bool = False) -> dict:
        r = np.asarray(a[x]) / np.asarray(a[y])
        return summarize(1 / r if invert else r)

    out["ours_over_timm"] = per_round(rates, "uniform_b", "timm_loader_b")
    out["uint8_over_float"] = per_round(rates, "uniform_b", "uniform_b_float")
    # images per CPU second, ours / timm (> 1: ours needs less CPU per image)
    out["ours_over_timm_cpu"] = per_round(cpu, "uniform_b", "timm_loader_b", invert=True)
    out["uint8_over_float_cpu"] = per_round(cpu, "uniform_b", "uniform_b_float", invert=True)
    return out


def loading_report(args: argparse.Namespace, loading: dict) -> str:
    return (f"loading ({args.workers} worker(s), {args.img_size} px, {args.reps} interleaved rounds): ours "
            f"{loading['uniform_b']['images_per_s']:.1f} img/s (uint8 + BatchNormalize), before "
            f"{loading['uniform_b_float']['images_per_s']:.1f} (float per sample), timm's create_loader "
            f"{loading['timm_loader_b']['images_per_s']:.1f}; ours / timm {fmt_ratio(loading['ours_over_timm'])}, "
            f"uint8 / float {fmt_ratio(loading['uint8_over_float'])}; images per CPU second (main process + "
            f"workers; {loading['uniform_b']['cpu_ms_per_image']:.2f} vs {loading['timm_loader_b']['cpu_ms_per_image']:.2f}"
            f" ms/img) ours / timm {fmt_ratio(loading['ours_over_timm_cpu'])}, uint8 / float "
            f"{fmt_ratio(loading['uint8_over_float_cpu'])}; online pools of "
            f"{loading['online_pool']['batch']}: {loading['online_pool']['images_per_s']:.1f} img/s")


def loader_only(args: argparse.Namespace) -> int:
    """``--loader-only``: the loading comparison alone (no training, timm's train.py not needed)."""
    n = max((args.pools + 2) * args.pool_factor * args.batch_size, (args.skip + args.steps) * args.batch_size)
    size = (500, 375) if args.img_size >= 160 else (2 * args.img_size, 3 * args.img_size // 2)
    make_imagefolder(Path(args.data_root), split_counts(n, NUM_CLASSES), size)
    res = {"args": vars(args), "machine": machine(), "loading": loading_throughput(args)}
    res["machine_after"] = machine()["load_avg_1_5_15"]
    res["report"] = loading_report(args, res["loading"])
    print(res["report"])
    print(f"results: {write_json(args.out, res)}")
    return 0


# -- main -----------------------------------------------------------------------------------------------
def make_train_data(args: argparse.Namespace) -> None:
    """The ImageFolder of the timed runs: exactly one epoch of whole batches on both sides."""
    n_train = (args.skip + args.steps) * args.batch_size
    size = (500, 375) if args.img_size >= 160 else (2 * args.img_size, 3 * args.img_size // 2)
    make_imagefolder(Path(args.data_root), split_counts(n_train, NUM_CLASSES), size)


def main(args: argparse.Namespace) -> int:
    if args.child:
        return run_child(args)
    if args.quick:
        apply_quick(args)
    if args.loader_only:
        if args.out == get_args_parser().get_default("out"):
            args.out = "work_dirs/bench/vs_timm_loader.json"
        return loader_only(args)
    if args.data_only:
        make_train_data(args)
        print(f"data: {args.data_root}")
        return 0
    if not Path(args.timm_train).is_file():
        print(f"error: timm's train.py not found at {args.timm_train} (the timm wheel and sdist do not ship it; "
              "see bench/README.md)", file=sys.stderr)
        return 2
    if args.skip < 1:
        print("error: --skip must be >= 1 (the first step has no previous update to time from)", file=sys.stderr)
        return 2
    if not Path(args.config).is_file():
        print(f"error: config not found: {args.config}", file=sys.stderr)
        return 2
    args.config = str(Path(args.config).resolve())  # the runs' working directory is a temporary folder
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("error: --device cuda but torch sees no GPU", file=sys.stderr)
            return 2
    make_train_data(args)
    res: dict = {"args": vars(args), "machine": machine(), "runs": []}
    for i, order in enumerate(interleaved(["ours", "timm"], args.reps, seed=1)):
        pair = {}
        for side in order:
            pair[side] = run_side(args, side)
            med = float(np.median(pair[side]["step_s"]))
            print(f"pair {i + 1}/{args.reps} {side}: {args.batch_size / med:.2f} img/s "
                  f"(median step {med:.3f} s, run {pair[side]['wall_s']:.0f} s)", flush=True)
        res["runs"].append(pair)
    ours = [args.batch_size / float(np.median(p["ours"]["step_s"])) for p in res["runs"]]
    timm_ = [args.batch_size / float(np.median(p["timm"]["step_s"])) for p in res["runs"]]
    res["ours_img_s"], res["timm_img_s"] = summarize(ours), summarize(timm_)
    res["ratio"] = summarize(np.asarray(ours) / np.asarray(timm_))
    cpu = {side: [float(np.median(p[side]["cpu_s"])) for p in res["runs"]] for side in ("ours", "timm")}
    res["cpu_s_per_step"] = {side: summarize(v) for side, v in cpu.items()}
    res["cpu_ratio"] = summarize(np.asarray(cpu["timm"]) / np.asarray(cpu["ours"]))  # > 1: ours needs less CPU
    write_json(args.out, res)  # the runs are the expensive part: keep them whatever follows
    precision = f"{args.device}, " + ("bf16 autocast" if args.amp == "bf16" else "fp32") + \
        (", channels_last" if args.channels_last else "") + (", torch.compile" if args.compile else "")
    head = f"{args.arch} at {args.img_size} px, b={args.batch_size}, {precision}, {Path(args.config).name}, " \
        f"{args.steps} timed steps x {args.reps} pairs"
    if args.no_loading:
        res["report"] = "\n".join([head, f"images/s ours {fmt_ratio(res['ours_img_s'], 2)}, timm "
                                   f"{fmt_ratio(res['timm_img_s'], 2)}, ours / timm (per pair) {fmt_ratio(res['ratio'], 3)}"])
        print(res["report"])
        print(f"results: {write_json(args.out, res)}")
        return 0
    res["loading"] = loading_throughput(args)
    need = args.pool_factor * res["ours_img_s"]["median"]
    res["loading"]["online_needs_images_per_s"] = need
    res["machine_after"] = machine()["load_avg_1_5_15"]
    m = res["machine"]
    text = "\n".join([
        f"machine: {m['cpu']}, {m['cpu_count']} cores, load {m['load_avg_1_5_15']} -> {res['machine_after']}, "
        f"{args.threads} thread(s), {args.workers} worker(s), {m['date_utc']}",
        head,
        table(["", "images/s median [q1, q3]"],
              [["ours (tools/train.py, uniform)", fmt_ratio(res["ours_img_s"], 2)],
               ["timm train.py", fmt_ratio(res["timm_img_s"], 2)],
               ["ratio ours / timm (per pair)", fmt_ratio(res["ratio"], 3)]]),
        f"main-process CPU s/step: ours {fmt_ratio(res['cpu_s_per_step']['ours'])}, timm "
        f"{fmt_ratio(res['cpu_s_per_step']['timm'])}; timm / ours {fmt_ratio(res['cpu_ratio'])} "
        "(less sensitive to other load; data workers not included)",
        loading_report(args, res["loading"]),
        f"online training at our step rate needs {need:.1f} img/s (b̄/b = {args.pool_factor})",
    ])
    res["report"] = text
    print(text)
    print(f"results: {write_json(args.out, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
