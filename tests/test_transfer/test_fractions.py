"""Data fractions and the other transfer axes of a pipeline entry, on the tiny generated data:

- the subset a fine-tuning reads is the same for every method and seed (scratch included), differs per
  fraction (nested: 25% inside 50%), enters the stage digest, and is what the recipe's dataset loads (COCO
  by image id, Cityscapes by file);
- the schedule option: 'iterations' keeps the steps, 'scaled' shrinks the loop and its scheduler;
- a bad axis value is one ``error:`` line and exit 2 before any stage runs.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from mmengine.config import Config

from transfer.mm.metrics import subset_record
from transfer.study.axes import axis_options
from transfer.study.runner import Runner
from transfer.study.spec import load_spec
from transfer.study.stages import Stage, finetune_command, plan

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "pipeline" / "demo.py"
FRACTIONS = (0.25, 0.5, 1.0)


def pipeline(tmp_path: Path, tiny_root: Path, body: str = "") -> Path:
    path = tmp_path / "pipe.py"
    path.write_text(f"_base_ = ['{DEMO}']\nreport_dir = '{tmp_path / 'report'}'\ntiny_data = None\n"
                    f"data_roots = dict(coco='{tiny_root / 'coco'}', cityscapes='{tiny_root / 'cityscapes'}', "
                    f"shapes='{tiny_root / 'shapes'}')\n{body}\n")
    return path


@pytest.fixture
def spec(tmp_path, tiny_root, monkeypatch):
    monkeypatch.chdir(ROOT)
    body = (f"data_fraction = {list(FRACTIONS)}\ncurve_points = 3\ntasks = [dict(task='det', config='configs/transfer/"
            "faster-rcnn_r18_fpn_tiny.py'), dict(task='seg', config='configs/transfer/pspnet_r18b-d8_tiny.py', "
            "fraction_schedule='scaled')]")
    return load_spec(pipeline(tmp_path, tiny_root, body))


def _ann(cmd) -> str | None:
    opt = next((a for a in cmd.tool_args if a.startswith("train_dataloader.dataset.ann_file=")), None)
    return None if opt is None else opt.split("=", 1)[1]


def test_subsets_same_for_methods_and_seeds_different_per_fraction(spec):
    assert [t.name for t in spec.tasks] == ["det_f25", "det_f50", "det", "seg_f25", "seg_f50", "seg"]
    runner = Runner(spec, {m.name: "resnet18" for m in spec.methods}, show=False)
    stages = [s for s in plan(spec) if s.kind == "finetune"]
    assert {s.method for s in stages} == {"uniform", "dar", "scratch"} and {s.seed for s in stages} == {0, 1}
    kept: dict[str, list] = {}
    for entry in spec.tasks:
        mine = [s for s in stages if s.entry == entry.name]
        files = {_ann(finetune_command(spec, runner.layout, s, None if s.method == "scratch" else Path("b.pth")))
                 for s in mine}
        assert len(files) == 1, files  # every method and seed: one subset
        file = files.pop()
        if entry.data_fraction == 1.0:
            assert file is None  # full data: the recipe's own annotation file
            continue
        for s in mine:
            runner.write_subset(s)  # each stage writes it before it trains: the same content every time
        rec = subset_record({"fraction": entry.data_fraction, "seed": 0, "file": file})
        kept[entry.name] = rec.get("image_ids") or rec.get("files")
    coco = json.loads((Path(spec.data_root("det")) / "annotations" / "instances_train2017.json").read_text())
    all_ids = sorted(i["id"] for i in coco["images"])
    assert len(kept["det_f25"]) == round(0.25 * len(all_ids)) and len(kept["det_f50"]) == round(0.5 * len(all_ids))
    assert set(kept["det_f25"]) < set(kept["det_f50"]) <= set(all_ids)  # different, nested
    sub = json.loads(Path(_ann(finetune_command(spec, runner.layout, stages[0], Path("b.pth")))).read_text())
    assert {a["image_id"] for a in sub["annotations"]} <= set(kept["det_f25"])
    assert len(sub["annotations"]) == sum(a["image_id"] in set(kept["det_f25"]) for a in coco["annotations"])
    assert set(kept["seg_f25"]) < set(kept["seg_f50"])
    img_dir = Path(spec.data_root("seg")) / "leftImg8bit" / "train"
    assert all((img_dir / f"{stem}_leftImg8bit.png").is_file() for stem in kept["seg_f50"])
    # the subset (and so the fraction) enters the stage digest
    digests = {e.name: finetune_command(spec, runner.layout, Stage("finetune", "uniform", 0, e.name),
                                        Path("b.pth")).digest for e in spec.tasks}
    assert len(set(digests.values())) == len(digests)


def test_recipe_datasets_load_exactly_the_subset(spec):
    """The subset file is what the toolbox's dataset reads (mmdet CocoDataset by id, mmseg by file)."""
    from mmengine.registry import init_default_scope

    import transfer  # noqa: F401 - the stack's compatibility fixes
    runner = Runner(spec, {m.name: "resnet18" for m in spec.methods}, show=False)
    for name, scope, registry in (("det_f25", "mmdet", "mmdet.registry"), ("seg_f25", "mmseg", "mmseg.registry")):
        entry = spec.entry(name)
        stage = Stage("finetune", "uniform", 0, name)
        runner.write_subset(stage)
        cfg = Config.fromfile(entry.config)
        cfg.merge_from_dict({**spec.transfer_cfg_options, **axis_options(spec, entry)})
        from transfer.mm.preflight import replace_data_root

        replace_data_root(cfg, spec.data_root(name))
        init_default_scope(scope)
        datasets = __import__(registry, fromlist=["DATASETS"]).DATASETS
        ds = datasets.build(cfg.train_dataloader.dataset)
        rec = subset_record(cfg.data_subset)
        if "image_ids" in rec:
            assert sorted(ds.get_data_info(i)["img_id"] for i in range(len(ds))) == rec["image_ids"]
        else:
            got = sorted(str(Path(ds.get_data_info(i)["img_path"]).relative_to(
                Path(spec.data_root(name)) / "leftImg8bit" / "train"))[: -len("_leftImg8bit.png")]
                for i in range(len(ds)))
            assert got == rec["files"]


def test_schedule_kept_or_scaled(spec):
    det = axis_options(spec, spec.entry("det_f25"))  # 'iterations' (default): the 60 steps stay
    assert not any(k.startswith(("train_cfg.max_iters", "param_scheduler")) for k in det)
    seg = axis_options(spec, spec.entry("seg_f25"))  # 'scaled': 60 iterations x 0.25, PolyLR's end with them
    assert seg["train_cfg.max_iters"] == 15 and seg["param_scheduler.0.end"] == 15
    assert seg["train_cfg.val_interval"] == 5 and det["train_cfg.val_interval"] == 20  # 3 points either way


def _pipeline_main():
    import importlib.util

    mod_spec = importlib.util.spec_from_file_location("pipeline_tool", ROOT / "tools" / "pipeline.py")
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("option, message", [
    ("data_fraction=0", "data_fraction must be fractions in (0, 1] of the training images, got 0"),
    ("data_fraction=1.5", "data_fraction must be fractions in (0, 1] of the training images, got 1.5"),
    ("tasks.4.data_fraction=[0.5,0.5]", "tasks[4].data_fraction must list distinct fractions"),
    ("frozen=yes", "frozen must be True or False, got 'yes'"),
    ("curve_points=0", "curve_points must be a positive integer"),
    ("curve_points=7", "task 'det': curve_points=7 does not divide the schedule's 60 iterations"),
    ("fraction_schedule=epochs", "fraction_schedule must be one of 'iterations', 'scaled', got 'epochs'"),
])
def test_bad_axis_value_is_one_error_line_before_any_stage(option, message, tmp_path, tiny_root, capsys,
                                                             monkeypatch):
    monkeypatch.chdir(ROOT)
    tool = _pipeline_main()
    cfg = pipeline(tmp_path, tiny_root)
    rc = tool.main(tool.get_args_parser().parse_args([str(cfg), "--cfg-options", option]))
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {message}"), err
    assert not (tmp_path / "report").exists()  # nothing ran, nothing was written
