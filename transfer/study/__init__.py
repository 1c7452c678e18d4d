"""The study: pre-train -> publish -> fine-tune -> test -> comparison tables, plots and report.

:mod:`.spec` reads a pipeline config (``configs/pipeline/*.py``), :mod:`.checks` validates it before any
long work, :mod:`.runner` runs the stages (each training/testing stage a subprocess of ``tools/train.py``
/ ``tools/test.py``, resumable through atomic stage markers, see :mod:`.stages`; :mod:`.launch` wraps them
in torchrun or srun, :mod:`.progress` shows them), :mod:`.results` reads work dirs into the papers'
tables, :mod:`.plots` draws the figures and :mod:`.report` writes the report folder.

May import: mmengine's config, :mod:`transfer.tasks`, :mod:`pretrain` (publishing, the method registry,
the work-dir contract); the OpenMMLab glue only in :mod:`.worker` (the process that fine-tunes and tests).
Nothing is imported here, so that ``python -m transfer.study.worker`` stays light.
"""
