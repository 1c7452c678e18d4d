"""Plot training curves from pre-training logs, several runs overlaid (mmdet's ``analyze_logs.py plot_curve``
for our ``log.jsonl``).

    python tools/analysis/plot_log.py RUN [RUN ...] [--keys train_loss lr kept_fraction top1 probe]
                                      [--x epoch|samples|flops] [--legend NAME ...] [--title T] [--out FILE]

RUN is a pre-training work dir or its ``log.jsonl``. One panel per key, one line per run. ``probe`` stands
for the probe metrics present (``knn_top1``, ``dense_miou``). ``--x samples`` / ``flops`` puts the
cumulative trained samples / training+selection FLOPs on the x axis: where selection makes epochs cheaper,
that is the axis on which runs compare at equal cost. Without ``--out`` the figure is shown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's packages first, not an installed copy's

from dar_common.workdir import LOG_FILE, atomic_path, read_jsonl  # noqa: E402

PROBE_KEYS = ("knn_top1", "dense_miou")
DEFAULT_KEYS = ("train_loss", "lr", "kept_fraction", "top1", "probe")
X_AXES = {"epoch": "epoch", "samples": "trained samples (cumulative)", "flops": "train + selection FLOPs (cumulative)"}


class LogError(ValueError):
    pass


def log_path(run: str | Path) -> Path:
    path = Path(run)
    path = path / LOG_FILE if path.is_dir() else path
    if not path.is_file():
        raise LogError(f"no {LOG_FILE} at {run}")
    return path


def epoch_records(path: Path) -> list[dict]:
    """The epoch records of one log, one per epoch (a resumed run that rewrote an epoch keeps the last)."""
    try:
        records = read_jsonl(path)
    except ValueError as err:
        raise LogError(f"{path} is not a JSON-lines log ({err})") from err
    by_epoch = {r["epoch"]: r for r in records if r.get("type") == "epoch" and "epoch" in r}
    if not by_epoch:
        raise LogError(f"{path} has no epoch records")
    return [by_epoch[e] for e in sorted(by_epoch)]


def x_values(records: list[dict], axis: str) -> list[float]:
    if axis == "epoch":
        return [r["epoch"] for r in records]
    total, out = 0.0, []
    for r in records:
        total += r["trained_samples"] if axis == "samples" else r["train_flops"] + r.get("selection_flops", 0.0)
        out.append(total)
    return out


def expand_keys(keys: list[str] | None, runs: list[list[dict]]) -> list[str]:
    """``probe`` becomes the probe metrics some run has; any other key must be in some run's records.
    ``None`` means the defaults, of which a run without probes simply has no probe panel."""
    present = {k for records in runs for r in records for k, v in r.items() if isinstance(v, (int, float))}
    out: list[str] = []
    for key in keys or DEFAULT_KEYS:
        if key == "probe":
            probes = [k for k in PROBE_KEYS if k in present]
            if not probes and keys:
                raise LogError(f"no run logs a probe metric ({', '.join(PROBE_KEYS)})")
            out += probes
        elif key in present:
            out.append(key)
        elif keys:
            raise LogError(f"no run logs '{key}'; available: {', '.join(sorted(present - {'epoch'}))}")
    return out


def series(records: list[dict], xs: list[float], key: str) -> tuple[list[float], list[float]]:
    """The (x, value) points where the run logged ``key`` (probes run only at some epochs)."""
    points = [(x, r[key]) for x, r in zip(xs, records, strict=True) if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [p[1] for p in points]


def plot(runs: list[list[dict]], names: list[str], keys: list[str], axis: str, title: str | None):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(keys), 1, figsize=(7, 2.4 * len(keys)), sharex=True, squeeze=False)
    for ax, key in zip(axes[:, 0], keys, strict=True):
        for records, name in zip(runs, names, strict=True):
            xs, ys = series(records, x_values(records, axis), key)
            if ys:
                ax.plot(xs, ys, marker="o" if len(ys) < 30 else None, markersize=3, label=name)
        ax.set_ylabel(key)
        if key == "lr":
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize="small")
    axes[-1, 0].set_xlabel(X_AXES[axis])
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("runs", nargs="+", help="pre-training work dirs or log.jsonl files")
    parser.add_argument("--keys", nargs="+",
                        help=f"what to plot, one panel each (default: {' '.join(DEFAULT_KEYS)}, probe where logged)")
    parser.add_argument("--x", choices=sorted(X_AXES), default="epoch", help="x axis (default: epoch)")
    parser.add_argument("--legend", nargs="+", help="one name per run (default: the work dir's name)")
    parser.add_argument("--title")
    parser.add_argument("--out", type=Path, help="write the figure here (.png, .pdf, .svg); else show it")
    return parser


def main(args: argparse.Namespace) -> int:
    try:
        paths = [log_path(run) for run in args.runs]
        if args.legend and len(args.legend) != len(paths):
            raise LogError(f"--legend has {len(args.legend)} names for {len(paths)} runs")
        if args.out and args.out.suffix.lower() not in (".png", ".pdf", ".svg"):
            raise LogError(f"--out must end in .png, .pdf or .svg, got {args.out}")
        if args.out and not args.out.parent.is_dir():
            raise LogError(f"--out folder does not exist: {args.out.parent}")
        runs = [epoch_records(p) for p in paths]
        keys = expand_keys(args.keys, runs)
    except LogError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    names = args.legend or [p.parent.name for p in paths]
    if args.out is not None:
        import matplotlib

        matplotlib.use("Agg")  # a file needs no display
    fig = plot(runs, names, keys, args.x, args.title)
    if args.out is None:
        import matplotlib.pyplot as plt

        plt.show()
        return 0
    with atomic_path(args.out) as tmp:
        fig.savefig(tmp, format=args.out.suffix[1:].lower(), dpi=120)
    print(f"wrote {args.out}: {', '.join(keys)} of {len(runs)} run(s) against {args.x}")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
