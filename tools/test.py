"""Evaluate a fine-tuned transfer checkpoint (mmdet / mmseg / mmpose config) and write metrics.json.

    python tools/test.py CONFIG CKPT [--work-dir DIR] [--out preds.pkl] [--data-root DIR] [--cfg-options k=v ...]

See transfer/mm/cli.py and docs/transfer.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

from transfer.mm.cli import get_test_parser, test_main  # noqa: E402

get_args_parser = get_test_parser


def main(argv: list[str] | None = None) -> int:
    return test_main(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
