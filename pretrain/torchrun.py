"""``torchrun`` that passes a preemption through: ``python -m pretrain.torchrun [torchrun options] SCRIPT ...``.

torchrun ends with its own exit code 1 whenever a worker fails, whatever the worker's code, so a
preempted multi-rank pre-training (every rank checkpoints and exits 75) looked like a crash to anything
that requeues on 75. This runs torch's own ``torch.distributed.run.main`` unchanged and only maps the
outcome: it prints torchrun's report of the failed workers (without a traceback through the launcher's
own frames: a worker's error stays the only one shown) and exits 75 when the ranks that failed were
preempted (see :func:`launcher_exit_code`), otherwise 1, as torchrun does.
``tools/dist_train.sh`` launches through this.
"""
from __future__ import annotations

import sys
from collections.abc import Iterable

from dar_common.exit_codes import PREEMPTED_EXIT_CODE


def launcher_exit_code(first: int, others: Iterable[int]) -> int | None:
    """The exit code for a torchrun whose workers failed, or None to keep torchrun's own.

    ``first`` is the exit code of the worker that failed first, ``others`` those of the rest that failed.
    Preempted ranks stop together, but torchrun stops the remaining workers as soon as one exits, with a
    signal (a negative code) if they are slower; so the run counts as preempted when the first failure is
    75 and every other is 75 or a signal. A crash on any rank keeps torchrun's code.
    """
    if first != PREEMPTED_EXIT_CODE:
        return None
    if all(code == PREEMPTED_EXIT_CODE or code < 0 for code in others):
        return PREEMPTED_EXIT_CODE
    return None


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(argv)
    except ChildFailedError as err:  # torchrun's report of its workers, without a launcher traceback
        first_rank, first = err.get_first_failure()
        others = [f.exitcode for rank, f in err.failures.items() if rank != first_rank]
        code = launcher_exit_code(first.exitcode, others)
        print(f"{type(err).__module__}.{type(err).__name__}: {err}", file=sys.stderr, flush=True)
        if code is None:
            return 1  # torchrun's own exit code for a failed worker
        print(f"torchrun: the ranks were preempted (checkpoint written); exit {code}, resume with --resume",
              file=sys.stderr, flush=True)
        return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
