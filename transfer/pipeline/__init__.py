"""The main job end to end: pre-train -> publish -> fine-tune -> test -> comparison tables, plots, report.

:mod:`.spec` reads a pipeline config (``configs/pipeline/*.py``), :mod:`.checks` validates it before any
long work, :mod:`.runner` runs the stages (each training/testing stage a subprocess of ``tools/train.py``
/ ``tools/test.py``, resumable through atomic stage markers, see :mod:`.stages`), :mod:`.report` builds
the report folder. Nothing is imported here, so that ``python -m transfer.pipeline.worker`` stays light.
"""
