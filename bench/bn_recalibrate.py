"""What BatchNorm recalibration does to DaR runs on the embedded data: top-1 (and probes) before/after.

    python bench/bn_recalibrate.py              # DaR + uniform, 5 seeds, N = 256 and all 1347 images (~10 min here)
    python bench/bn_recalibrate.py --quick      # 1 seed, 2 epochs: checks that it runs (<1 min idle)

Each run is the real CLI (``tools/train.py configs/pretrain/tiny_digits_<method>.py --cfg-options
seed=S``); finished runs are reused (``--force`` retrains). Its ``backbone.pth`` is then evaluated
before and after :func:`pretrain.bn_recalibrate.recalibrate_bn` (``torch.optim.swa_utils.update_bn``
over N training images drawn with ``--bn-seed``), each N from the same trained weights, side by side in
this process: so every difference is paired (same run, same val images). With ``--dense-root`` the kNN
and dense probes run before and after too (the transfer signal of issue 12). Uniform training is the
control: its last epochs already see every image.
"""
from __future__ import annotations

import argparse
import copy
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine, mean_std, table, write_json  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    p.add_argument("--methods", nargs="+", default=["dar", "uniform"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--samples", nargs="+", type=int, default=[256, 1347], help="recalibration sample sizes N")
    p.add_argument("--bn-seed", type=int, default=0)
    p.add_argument("--dense-root", help="Cityscapes-layout folder for the dense probe (e.g. data/tiny/cityscapes)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="1 seed, 2 epochs, N = 256")
    p.add_argument("--force", action="store_true", help="retrain finished runs")
    p.add_argument("--work-root", type=Path, default=ROOT / "work_dirs" / "bench" / "bn_recalibrate")
    p.add_argument("--out", type=Path, default=ROOT / "work_dirs" / "bench" / "bn_recalibrate.json")
    return p


def train(method: str, seed: int, work_dir: Path, opts: list[str], force: bool) -> Path:
    from dar_common.workdir import read_summary

    if read_summary(work_dir) is not None and (work_dir / "backbone.pth").is_file() and not force:
        return work_dir
    argv = [sys.executable, str(ROOT / "tools" / "train.py"), str(ROOT / "configs" / "pretrain" / f"tiny_digits_{method}.py"),
            "--work-dir", str(work_dir), "--cfg-options", f"seed={seed}", *opts]
    t0 = time.time()
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"{method} seed {seed} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    print(f"trained {method} seed {seed} ({time.time() - t0:.0f} s)", flush=True)
    return work_dir


def measure(work_dir: Path, samples: list[int], bn_seed: int, dense_root: str | None) -> dict:
    """Top-1 (and probes) of the run's backbone before and after recalibrating on each N."""
    from dar_common.workdir import read_summary
    from pretrain.backbone_file import model_from_state, read_config
    from pretrain.bn_recalibrate import evaluate, recalibrate_bn
    from pretrain.data import build_dataset
    from pretrain.probes.build import ProbeConfig, build_prober

    config = read_config(work_dir / "config.py")
    saved = torch.load(work_dir / "backbone.pth", weights_only=False)
    data = config["data"]
    train_set = build_dataset(data, "train", int(config.get("seed", 0)), uint8=True)
    val_set = build_dataset(data, "val", uint8=True)
    model = model_from_state(saved["state_dict"], saved["meta"], config)
    prober = None
    if dense_root:
        prober, _ = build_prober(ProbeConfig.from_dict(dict(budget=None, dense=dict(root=dense_root))), model, data,
                                 train_set=build_dataset(data, "train", uint8=True), val_set=val_set)

    def figures(m) -> dict:
        top1, _ = evaluate(m, val_set, data["batch_size"])
        out = {"top1": top1}
        if prober is not None:
            r = prober(m)
            out.update(knn_top1=r["knn_top1"], dense_miou=r["dense_miou"])
        return out

    result = {"before": figures(model), "summary_top1": read_summary(work_dir)["top1"], "after": {}}
    for n in samples:
        m = copy.deepcopy(model)
        recalibrate_bn(m, train_set, n, bn_seed, data["batch_size"])
        result["after"][str(n)] = figures(m)
    return result


def ci95(diffs: list[float]) -> tuple[float, float, float]:
    """Mean of the paired differences and its two-sided 95 % t interval."""
    from scipy.stats import t

    d = np.asarray(diffs, dtype=np.float64)
    m = float(d.mean())
    if len(d) < 2:
        return m, float("nan"), float("nan")
    half = float(t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d)))
    return m, m - half, m + half


def report(res: dict, samples: list[int], metrics: list[str]) -> str:
    rows = []
    for method, runs in res["runs"].items():
        for metric in metrics:
            before = [r["before"][metric] for r in runs.values()]
            b_mean, b_std = mean_std(before)
            for n in samples:
                after = [r["after"][str(n)][metric] for r in runs.values()]
                a_mean, a_std = mean_std(after)
                m, lo, hi = ci95([a - b for a, b in zip(after, before, strict=True)])
                rows.append([method, metric, n, f"{b_mean:.2f} ± {b_std:.2f}", f"{a_mean:.2f} ± {a_std:.2f}",
                             f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]", len(before)])
    return table(["method", "metric", "N", "before", "after", "after - before [95% CI]", "seeds"], rows)


def main(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    seeds, samples = (args.seeds[:1], [256]) if args.quick else (args.seeds, args.samples)
    opts = [f"runtime.cpu_threads={args.threads}"] + (["schedule.epochs=2", "schedule.milestones=[1]"] if args.quick else [])
    root = args.work_root / ("quick" if args.quick else "full")
    res = {"machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "samples": samples,
           "bn_seed": args.bn_seed, "runs": {}}
    for method in args.methods:
        res["runs"][method] = {}
        for seed in seeds:
            extra = ["method.refresh=[]"] if args.quick and method == "dar" else []  # refresh [4] needs 4 epochs
            work_dir = train(method, seed, root / f"{method}_s{seed}", opts + extra, args.force)
            res["runs"][method][str(seed)] = measure(work_dir, samples, args.bn_seed, args.dense_root)
            r = res["runs"][method][str(seed)]
            print(f"{method} seed {seed}: top-1 {r['before']['top1']:.2f} -> "
                  + ", ".join(f"N={n}: {r['after'][str(n)]['top1']:.2f}" for n in samples), flush=True)
    metrics = ["top1"] + (["knn_top1", "dense_miou"] if args.dense_root else [])
    text = report(res, samples, metrics)
    res["table"] = text
    print(text)
    print(f"wrote {write_json(args.out, res)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
