"""Train from a config: one entry point for pre-training and transfer, dispatched on the config.

    python tools/train.py configs/pretrain/<cfg>.py [--work-dir DIR] [--resume [CKPT]] ...
    python tools/train.py configs/transfer/<cfg>.py [--work-dir DIR] [--backbone CKPT] ...
    python tools/train.py --list-methods     # the pre-training selection methods, one line each

A config whose ``default_scope`` is ``mmdet``, ``mmseg`` or ``mmpose`` is a transfer (fine-tuning)
config and goes to :mod:`transfer.mm.cli`; a config without ``default_scope`` is a pre-training config and
goes to :mod:`pretrain.cli`. Each side parses its own options.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's packages first, not an installed copy's

TRANSFER_SCOPES = ("mmdet", "mmseg", "mmpose")


def config_kind(path: str) -> str:
    """Return 'pretrain' or 'transfer' for a config file, or raise SystemExit with one clear line."""
    from mmengine.config import Config

    if Path(path).is_dir():
        configs = sorted(p.name for p in Path(path).glob("*.py"))
        shown = ", ".join(configs[:4]) + (", ..." if len(configs) > 4 else "")
        raise SystemExit(f"error: {path} is a folder, not a config file: pass one config"
                         + (f" from it ({len(configs)}: {shown})" if configs else " (it holds no .py config)"))
    if not Path(path).is_file():
        raise SystemExit(f"error: config file not found: {path}")
    scope = Config.fromfile(path).get("default_scope")
    if scope is None:
        return "pretrain"
    if scope in TRANSFER_SCOPES:
        return "transfer"
    raise SystemExit(f"error: config scope {scope!r} in {path} is not one of {', '.join(TRANSFER_SCOPES)}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--list-methods"]:
        from pretrain.cli import train_main

        return train_main(argv)
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if config_kind(argv[0]) == "transfer":
        from transfer.mm.cli import train_main
    else:
        from pretrain.cli import train_main
    return train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
