"""The task registry: every task's scope, table, columns, panels and reference recipe are consistent,
a config's task follows from its scope and evaluator, and a config name gives its table label."""
from __future__ import annotations

from pathlib import Path

import pytest

from transfer.study.results import method_labels
from transfer.tasks import SCOPES, TABLES, TASKS, recipe_label, table_columns, table_tasks, task_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("cfg, task", [
    ({"default_scope": "mmseg"}, "seg"),
    ({"default_scope": "mmpose"}, "pose"),
    ({"default_scope": "mmdet", "val_evaluator": {"metric": "bbox"}}, "det"),
    ({"default_scope": "mmdet", "test_evaluator": {"metric": ["bbox", "segm"]}}, "ins"),
    ({"default_scope": "mmdet", "test_evaluator": [{"metric": "bbox"}, {"metric": "segm"}]}, "ins"),
])
def test_task_of(cfg, task):
    assert task_of(cfg) == task


def test_task_of_rejects_other_scopes():
    with pytest.raises(ValueError, match="'mmpretrain'"):
        task_of({"default_scope": "mmpretrain"})


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_is_complete(name):
    task = TASKS[name]
    assert task.name == name and task.scope in SCOPES and task.table in TABLES
    assert {p.key for p in task.panels} <= {c.key for c in task.columns}  # a panel plots a tabled metric
    assert task.recipes and len({r.prefix for r in task.recipes}) == len(task.recipes)
    assert name in table_tasks(task.table)


def test_every_shipped_transfer_config_is_named_after_a_recipe_of_its_task():
    from mmengine.config import Config

    for path in sorted((ROOT / "configs" / "transfer").glob("*.py")):
        cfg = Config.fromfile(str(path))
        assert recipe_label(task_of(cfg), path.stem) is not None, path.name


def test_table_columns_are_the_union_of_its_tasks_columns_in_order():
    columns = table_columns("det")
    assert [c.header for c in columns[:2]] == ["AP^bb", "AP^bb_50"]
    assert len(columns) == len(set(columns)) == len(set(TASKS["det"].columns) | set(TASKS["ins"].columns))


def test_method_labels_follow_the_recipes_and_stay_apart():
    assert recipe_label("det", "retinanet_r18_fpn_tiny") == "RetinaNet"
    assert recipe_label("det", "faster-rcnn_r50_fpn_1x_coco") == "FPN"
    assert recipe_label("det", "faster-rcnnx_r50") is None
    both = {("det", "faster-rcnn_r18_fpn_tiny"), ("det", "retinanet_r18_fpn_tiny"), ("ins", "mask-rcnn_r18_fpn_tiny")}
    assert method_labels(both) == {("det", "faster-rcnn_r18_fpn_tiny"): "FPN",
                                   ("det", "retinanet_r18_fpn_tiny"): "RetinaNet",
                                   ("ins", "mask-rcnn_r18_fpn_tiny"): "Mask R-CNN"}
    # a config of unknown name alone in its task takes the task's reference label; two such keep their names
    assert method_labels({("seg", "my_seg")}) == {("seg", "my_seg"): "PSPNet"}
    assert method_labels({("seg", "a"), ("seg", "b")}) == {("seg", "a"): "a", ("seg", "b"): "b"}
    # two configs of one recipe (say R18 and R50 Faster R-CNN) are told apart by their config names
    two = {("det", "faster-rcnn_r18_fpn_tiny"), ("det", "faster-rcnn_r50_fpn_tiny")}
    assert method_labels(two) == {k: k[1] for k in two}
