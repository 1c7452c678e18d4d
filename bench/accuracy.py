"""Accuracy at equal cost on the shipped real dataset (scikit-learn digits): DaR against its controls.

    python bench/accuracy.py                 # 10 methods x 5 seeds through tools/train.py (~15-25 min here)
    python bench/accuracy.py --quick         # 2 runs of 2 epochs: checks that it runs (<1 min)

Every run is the real CLI (``tools/train.py configs/pretrain/tiny_digits_<method>.py --cfg-options
seed=S ...``) in its own process; the figures are read from the ``summary`` line of its ``log.jsonl``.
The recipe is the shipped tiny one (test_resnet, 32 px, batch 32, 6 epochs, LR ÷10 after epoch 5).

At ~86 % and ~63 % of uniform training's samples: DaR (loss-ranked dropping), the same schedule with
random dropping, uniform training on a shortened schedule, and one fixed random subset; online
selection at equal steps. The DaR parameters for those costs on 6 epochs of 1347 images were picked
with ``plan_subset_sizes`` and are checked here with the CLI's ``--dry-run`` code path.
Finished runs (a ``summary`` line in their log) are reused; ``--force`` retrains them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, mean_std, table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs/pretrain"
# DaR schedules on 6 epochs of digits (subset per epoch, % of the data):
#   86 %: W=1, I=1, p=0.85, R=[5] -> 100/100/85/72/61/100
#   63 %: W=0, I=1, p=0.70, R=[5] -> 100/70/49/34/24/100
DAR = {
    "86": dict(warmup=1, interval=1, keep=0.85, refresh=[5]),
    "63": dict(warmup=0, interval=1, keep=0.7, refresh=[5]),
}


def dar_opts(prefix: str, params: dict) -> list[str]:
    return [f"{prefix}.{k}={v}" if not isinstance(v, list) else f"{prefix}.{k}=[{','.join(map(str, v))}]"
            for k, v in params.items()]


def methods(quick: bool = False) -> dict[str, tuple[str, list[str]]]:
    """name -> (config file, --cfg-options)."""
    if quick:
        short = ["schedule.epochs=2", "schedule.milestones=[1]"]
        return {"uniform": ("tiny_digits_uniform.py", short),
                "dar": ("tiny_digits_dar.py",
                          short + dar_opts("method", dict(warmup=0, interval=1, keep=0.7, refresh=[])))}
    out: dict[str, tuple[str, list[str]]] = {"uniform": ("tiny_digits_uniform.py", [])}
    for cost, params in DAR.items():
        out[f"dar{cost}"] = ("tiny_digits_dar.py", dar_opts("method", params))
        out[f"random{cost}"] = ("tiny_digits_dar_random.py", dar_opts("method", params))
        out[f"shortened{cost}"] = ("tiny_digits_shortened.py", dar_opts("method.match", params))
        out[f"fixed{cost}"] = ("tiny_digits_fixed_subset.py", dar_opts("method.match", params))
    out["online"] = ("tiny_digits_online.py", [])
    return out


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Top-1 at equal cost on digits: DaR vs controls.", add_help=add_help)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--methods", nargs="+", help="subset of the method names (default: all)")
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (each uses one CPU thread)")
    p.add_argument("--work-root", default="work_dirs/bench/accuracy")
    p.add_argument("--force", action="store_true", help="retrain finished runs")
    p.add_argument("--out", default="work_dirs/bench/accuracy.json")
    p.add_argument("--quick", action="store_true", help="2 runs of 2 epochs: checks that it runs (<1 min)")
    return p


def planned_cost(config: str, opts: list[str]) -> float:
    """The relative cost (samples) that ``tools/train.py CONFIG --dry-run`` prints."""
    from pretrain.cli import dry_run, load_config
    from pretrain.cli import get_args_parser as cli_parser

    cfg = load_config(cli_parser().parse_args([str(CONFIGS / config), "--dry-run", "--cfg-options", *opts]
                                              if opts else [str(CONFIGS / config), "--dry-run"]))
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dry_run(cfg)
    match = re.search(r"relative cost \(samples\): ([\d.]+)%", buf.getvalue())
    if not match:
        raise RuntimeError(f"--dry-run printed no relative cost:\n{buf.getvalue()}")
    return float(match.group(1)) / 100


def summary_of(work_dir: Path) -> dict | None:
    from pretrain.workdir import read_summary

    return read_summary(work_dir)


def train(name: str, config: str, opts: list[str], seed: int, work_root: Path, force: bool) -> dict:
    work_dir = work_root / f"{name}_s{seed}"
    done = summary_of(work_dir)
    if done is not None and not force:
        return {**done, "reused": True}
    argv = [sys.executable, str(ROOT / "tools/train.py"), str(CONFIGS / config), "--work-dir", str(work_dir),
            "--cfg-options", f"seed={seed}", *opts]
    t0 = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    done = summary_of(work_dir)
    if proc.returncode != 0 or done is None:
        raise RuntimeError(f"{name} seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"{name} seed {seed}: top-1 {done['top1']:.2f}%, cost {100 * done['relative_cost_samples']:.1f}% "
          f"({time.time() - t0:.0f} s)", flush=True)
    return {**done, "reused": False}


def paired(a: list[float], b: list[float]) -> str:
    """Mean ± std of the per-seed differences, wins/ties, and a paired t-test's two-sided p-value."""
    from scipy.stats import ttest_rel

    d = np.asarray(a) - np.asarray(b)
    m, s = mean_std(d.tolist())
    p = ttest_rel(a, b).pvalue if len(d) > 1 and np.any(d != d[0]) else float("nan")
    return (f"{m:+.2f} ± {s:.2f} ({int((d > 0).sum())}/{len(d)} seeds better, {int((d == 0).sum())} equal, "
            f"paired t-test p={p:.2f})")


def report(res: dict) -> str:
    rows = []
    for name, r in res["methods"].items():
        m, s = mean_std(r["top1"])
        rows.append([name, f"{100 * r['planned_cost']:.1f}%", f"{100 * np.mean(r['cost_samples']):.1f}%",
                     f"{100 * np.mean(r['cost_flops']):.1f}%", f"{m:.2f} ± {s:.2f}",
                     " ".join(f"{x:.1f}" for x in r["top1"])])
    lines = [table(["method", "planned cost (--dry-run)", "trained samples", "FLOPs", "top-1 % mean ± std",
                    "per seed"], rows)]
    ms = res["methods"]
    for cost in DAR:
        dar = ms.get(f"dar{cost}")
        if dar is None:
            continue
        for ctrl in (f"random{cost}", f"shortened{cost}", f"fixed{cost}", "uniform"):
            if ctrl in ms:
                lines.append(f"dar{cost} - {ctrl}: {paired(dar['top1'], ms[ctrl]['top1'])} top-1 points (paired by seed)")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    table_ = methods(args.quick)
    if args.quick:
        args.seeds = args.seeds[:1]
        if args.out == get_args_parser().get_default("out"):
            args.out, args.work_root = "work_dirs/bench/accuracy_quick.json", "work_dirs/bench/accuracy_quick"
    unknown = sorted(set(args.methods or []) - set(table_))
    if unknown:
        print(f"error: unknown method(s) {', '.join(unknown)}; choose from {', '.join(table_)}", file=sys.stderr)
        return 2
    chosen = {k: v for k, v in table_.items() if not args.methods or k in args.methods}
    res: dict = {"args": vars(args), "machine": machine(), "methods": {}}
    for name, (config, opts) in chosen.items():
        res["methods"][name] = {"config": config, "cfg_options": opts, "planned_cost": planned_cost(config, opts)}
        print(f"{name}: {config} {' '.join(opts)} -> planned cost {100 * res['methods'][name]['planned_cost']:.1f}%")
    jobs = [(name, seed) for name in chosen for seed in args.seeds]
    work_root = Path(args.work_root)
    with ThreadPoolExecutor(args.jobs) as pool:
        futures = {job: pool.submit(train, job[0], *chosen[job[0]], job[1], work_root, args.force) for job in jobs}
        runs = {job: f.result() for job, f in futures.items()}
    for name in chosen:
        got = [runs[(name, s)] for s in args.seeds]
        res["methods"][name].update(top1=[g["top1"] for g in got], cost_samples=[g["relative_cost_samples"] for g in got],
                                    cost_flops=[g["relative_cost_flops"] for g in got], wall_s=[g["wall_s"] for g in got])
    res["report"] = report(res)
    print(res["report"])
    print(f"results: {write_json(args.out, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
