"""Fine-tune, then test, one transfer run in ONE process (``python -m transfer.study.worker JOB.json``).

On a CPU the toolboxes' import is several seconds per process; the pipeline's single-process runs
(launcher 'none') save one per run by testing in the process that trained. It calls the same
``transfer.mm.cli.train_main`` / ``test_main`` that ``tools/train.py`` / ``tools/test.py`` call, with the same
arguments, and tells the runner that training finished by writing ``JOB['train_done']`` (atomically)
and printing :data:`SENTINEL`; the runner marks the two stages from that file and ``metrics.json``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from dar_common.workdir import atomic_write_json, latest_checkpoint

SENTINEL = "[pipeline] fine-tuning finished; testing"


def main(job_path: str) -> int:
    from transfer.mm.cli import test_main, train_main

    job = json.loads(Path(job_path).read_text())
    rc = train_main(job["train"])
    if rc != 0:
        return rc
    ckpt = latest_checkpoint(job["work_dir"])
    if ckpt is None:
        print(f"error: fine-tuning left no last_checkpoint in {job['work_dir']}", file=sys.stderr)
        return 2
    atomic_write_json(job["train_done"], {"checkpoint": str(ckpt)}, indent=None, newline=False)
    print(SENTINEL, flush=True)
    return test_main([job["test_config"], str(ckpt), *job["test_args"]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
