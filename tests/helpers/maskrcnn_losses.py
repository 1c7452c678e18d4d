"""Fine-tune the tiny Mask R-CNN (ResNet-18 FPN) for a few iterations from a fixed seed; write its losses.

    python tests/helpers/maskrcnn_losses.py WORK_DIR [--iters 20]

Run from a folder holding ``data/tiny/coco`` (the tiny config's data root; ``transfer.tiny_data`` writes
it). Writes ``WORK_DIR/losses.json``: which mmcv ops ran (``lite``: the project's torchvision kernels, ``full``:
mmcv's compiled ones, and the mmcv package's folder) and every iteration's losses, unrounded. The backbone
starts from the seed rather than from weights: the comparison is about the ops. Used by
``test_mmcv_lite_parity.py`` to run the same fine-tune on both stacks in separate processes.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import transfer  # noqa: F401  (first: on the lite stack this provides mmcv's ops before mmcv.ops loads)

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "transfer" / "mask-rcnn_r18_fpn_tiny.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work_dir")
    parser.add_argument("--iters", type=int, default=20)
    args = parser.parse_args()

    import mmcv
    import mmcv.ops  # noqa: F401
    from mmengine.config import Config
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    class LossRecorder(Hook):
        def __init__(self):
            self.losses: list[dict[str, float]] = []

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
            self.losses.append({name: float(value) for name, value in outputs.items()})

    cfg = Config.fromfile(str(CONFIG))
    cfg.model.backbone.init_cfg = None
    for step in cfg.train_dataloader.dataset.pipeline:  # 128 px instead of 192: half the CPU time
        if step["type"] == "Resize":
            step["scale"] = (128, 128)
    cfg.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=args.iters, val_interval=10**9)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 10
    cfg.randomness = dict(seed=0)
    cfg.work_dir = args.work_dir
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder)
    runner.train()
    from transfer.mm.mmcv_lite_ops import active

    record = {"ops": "lite" if active() else "full",
              "mmcv": str(Path(mmcv.__file__).parent), "losses": recorder.losses}
    Path(args.work_dir, "losses.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
