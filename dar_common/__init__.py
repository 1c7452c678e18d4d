"""What pre-training and transfer share, below both: the work-dir contract and the process-group lifecycle.

- :mod:`dar_common.workdir` -- atomic writes, ``last_checkpoint``, the git revision, the ``log.jsonl`` /
  ``metrics.json`` records the results tables read;
- :mod:`dar_common.process_group` -- ``init_process_group`` / ``close_distributed``: every process group of
  the project (pre-training's and mmengine's in fine-tuning) is made and closed there;
- :mod:`dar_common.exit_codes` -- the preemption exit code 75;
- :mod:`dar_common.console` -- ``print_error``, the ``error:`` line in one write (ranks share stderr).

Imports the standard library and torch only; never :mod:`pretrain` or :mod:`transfer` (both import it).
"""
