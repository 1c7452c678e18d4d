"""The main job end to end: pre-train -> publish -> fine-tune -> test -> comparison tables, plots, report.

:func:`load_spec` reads a pipeline config (``configs/pipeline/*.py``), :func:`validate` checks it before any
long work, :class:`Runner` runs the stages (each training/testing stage a subprocess of ``tools/train.py``
/ ``tools/test.py``, resumable through atomic stage markers), :func:`write_report` builds the report folder.
"""
from .checks import validate
from .report import write_report
from .runner import Runner, StageFailed
from .spec import PipelineError, PipelineSpec, load_spec
from .stages import Layout, Stage, plan

__all__ = ["Layout", "PipelineError", "PipelineSpec", "Runner", "Stage", "StageFailed", "load_spec", "plan",
           "validate", "write_report"]
