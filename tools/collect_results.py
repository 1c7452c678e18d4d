"""Collect pre-training and transfer work dirs into the papers' comparison tables (Markdown and CSV).

    python tools/collect_results.py work_dirs/                      # Markdown tables on stdout
    python tools/collect_results.py work_dirs/ --format csv
    python tools/collect_results.py work_dirs/ --out report/ --plots # + tables/*.md|csv and plots/*.png

Every directory at or below each WORK_DIR with a finished ``log.jsonl`` (pre-training) or a ``metrics.json``
(transfer) is read. One row per pre-training method per backbone, then a Δ row against the uniform baseline.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

from transfer.study.results import collect, discover, to_csv, to_markdown, write_tables  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("work_dirs", nargs="+", metavar="WORK_DIR", help="work dirs or folders holding them")
    p.add_argument("--format", choices=("md", "csv"), default="md", help="what to print (default: md)")
    p.add_argument("--out", help="also write tables/<table>.md|csv (and plots/ with --plots) here")
    p.add_argument("--plots", action="store_true", help="with --out: draw the PNG plots too")
    return p


def main(args: argparse.Namespace) -> int:
    missing = [d for d in args.work_dirs if not Path(d).exists()]
    if missing:
        print(f"error: work dir not found: {missing[0]}", file=sys.stderr)
        return 2
    if args.plots and not args.out:
        print("error: --plots needs --out DIR", file=sys.stderr)
        return 2
    pre, tra = discover(args.work_dirs)
    if not pre and not tra:
        print(f"error: no finished pre-training (log.jsonl summary) or transfer (metrics.json) work dir "
              f"under {', '.join(args.work_dirs)}", file=sys.stderr)
        return 1
    tables = collect(pre, tra)
    render = to_markdown if args.format == "md" else to_csv
    print("\n".join(render(t) for t in tables.values()))
    if args.out:
        write_tables(tables, Path(args.out) / "tables")
        if args.plots:
            from transfer.study.plots import draw_all

            draw_all(pre, tra, Path(args.out) / "plots")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
