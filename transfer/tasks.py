"""The transfer tasks, in one place: det, ins, pose, seg -- which toolbox runs each, what it evaluates,
its table columns and plot panels, and the upstream recipes its configs follow (the first one is the
task's reference model). The results tables, the plots, the report, the doctor, the pipeline spec and
the ``metrics.json`` hook read this; no other module names a task.

Adding a task is one entry in :data:`TASKS` (and, for a new table, one in :data:`TABLES`); adding a recipe
of a known task is one :class:`Recipe` in its entry (see docs/architecture.md, "add a transfer recipe").

Imports: the standard library only.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Column:
    """A metric as the tables and plots show it."""
    header: str  # table column, or plot panel label
    key: str  # metric name in metrics.json without the toolbox prefix ("coco/"), or a run-summary field
    scale: float = 1.0  # COCO metrics are fractions; the papers print percent


@dataclass(frozen=True)
class Recipe:
    """An upstream OpenMMLab recipe that configs of a task follow."""
    prefix: str  # our config names start with it (OpenMMLab naming: <algorithm>_<backbone>_...)
    label: str  # its row label in the tables (the papers': "FPN" is Faster R-CNN with FPN)
    config: str  # the upstream config inside the installed toolbox (<package>/.mim/configs/...)
    description: str


@dataclass(frozen=True)
class Task:
    name: str
    scope: str  # default_scope of its configs
    table: str  # key of the table (in TABLES) its rows go to
    needs: tuple[str, ...]  # evaluator metrics that tell it apart from another task of the same scope
    columns: tuple[Column, ...]  # table columns
    panels: tuple[Column, ...]  # main metrics: one accuracy-vs-cost panel each
    data: str  # the data_roots key its configs read by default (pipeline configs)
    recipes: tuple[Recipe, ...]  # the first is the reference model

    @property
    def reference(self) -> Recipe:
        return self.recipes[0]


@dataclass(frozen=True)
class TableSpec:
    name: str
    title: str  # above the table
    section: str  # the report's heading for it


_BOX = tuple(Column(f"AP^bb{s}", f"bbox_mAP{k}", 100) for s, k in
             (("", ""), ("_50", "_50"), ("_75", "_75"), ("_S", "_s"), ("_M", "_m"), ("_L", "_l")))
_MASK = tuple(Column(c.header.replace("^bb", "^m"), c.key.replace("bbox", "segm"), 100) for c in _BOX)
_POSE = tuple(Column(f"{m}^kp{s}", f"{m}{k}", 100) for m in ("AP", "AR") for s, k in
              (("", ""), ("_50", " .5"), ("_75", " .75"), ("_M", " (M)"), ("_L", " (L)")))
_BOX_AP, _MASK_AP = Column("box AP", "bbox_mAP", 100), Column("mask AP", "segm_mAP", 100)

TASKS: dict[str, Task] = {t.name: t for t in (
    Task("det", "mmdet", "det", (), _BOX, (_BOX_AP,), "coco", (
        Recipe("faster-rcnn", "FPN", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py", "Faster R-CNN R50-FPN 1x COCO"),
        Recipe("retinanet", "RetinaNet", "retinanet/retinanet_r50_fpn_1x_coco.py", "RetinaNet R50-FPN 1x COCO"),
    )),
    Task("ins", "mmdet", "det", ("segm",), _BOX + _MASK, (_BOX_AP, _MASK_AP), "coco", (
        Recipe("mask-rcnn", "Mask R-CNN", "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py", "Mask R-CNN R50-FPN 1x COCO"),
    )),
    Task("pose", "mmpose", "pose", (), _POSE, (Column("keypoint AP", "AP", 100),), "coco", (
        Recipe("td-hm", "SimpleBaseline",
               "body_2d_keypoint/topdown_heatmap/coco/td-hm_res50_8xb64-210e_coco-256x192.py",
               "SimpleBaseline ResNet-50 256x192 COCO keypoints"),
    )),
    Task("seg", "mmseg", "seg", (), (Column("mIoU", "mIoU"),), (Column("mIoU", "mIoU"),), "cityscapes", (
        Recipe("pspnet", "PSPNet", "pspnet/pspnet_r50-d8_4xb2-80k_cityscapes-769x769.py",
               "PSPNet R50-D8 769x769 Cityscapes"),
    )),
)}

TABLES: dict[str, TableSpec] = {t.name: t for t in (
    TableSpec("det", "COCO-style detection and instance segmentation (%)", "Transfer: detection and instance segmentation"),
    TableSpec("pose", "COCO-style keypoints (%)", "Transfer: human pose estimation"),
    TableSpec("seg", "Cityscapes-style scene parsing (%)", "Transfer: semantic segmentation"),
)}

SCOPES = tuple(dict.fromkeys(t.scope for t in TASKS.values()))  # the toolboxes: mmdet, mmpose, mmseg


def table_tasks(table: str) -> tuple[str, ...]:
    """The tasks whose rows go to ``table``, in registry order."""
    return tuple(t.name for t in TASKS.values() if t.table == table)


def table_columns(table: str) -> tuple[Column, ...]:
    """The columns of ``table``: its tasks' columns in order, each once."""
    return tuple(dict.fromkeys(c for name in table_tasks(table) for c in TASKS[name].columns))


def _as_list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def task_of(cfg: Mapping) -> str:
    """The task of a transfer config: its scope, and for a scope with several tasks (mmdet: det, ins) the
    one whose ``needs`` its evaluators meet most fully (``segm`` evaluated: ins)."""
    scope = cfg.get("default_scope")
    evaluators = cfg.get("test_evaluator") or cfg.get("val_evaluator") or {}
    metrics = {m for e in _as_list(evaluators) for m in _as_list(e.get("metric", []))}
    fits = [t for t in TASKS.values() if t.scope == scope and set(t.needs) <= metrics]
    if not fits:
        raise ValueError(f"not a transfer config scope: {scope!r}")
    return max(fits, key=lambda t: len(t.needs)).name


def recipe_label(task: str, config_name: str) -> str | None:
    """The table label of a config of ``task`` from its name (``retinanet_r18_fpn_tiny`` -> RetinaNet),
    or None when the name follows none of the task's recipes."""
    for recipe in TASKS[task].recipes:
        if config_name == recipe.prefix or config_name.startswith(recipe.prefix + "_"):
            return recipe.label
    return None
