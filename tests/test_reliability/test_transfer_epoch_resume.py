"""Issue 20, epoch-based fine-tuning (mmdet's 1x and mmpose's 210e recipes run mmengine's EpochBasedTrainLoop):
a preemption inside an epoch writes ``iter_<n>.pth`` and ``--resume`` continues inside that epoch bit for
bit (transfer/mm/resume.py's ResumableEpochBasedTrainLoop replays the epoch's trained batches; mmengine's
own loop would restart the epoch).

The slow check is a real SIGTERM to ``tools/train.py`` on the tiny Faster R-CNN (RPN and RoI samplers, random
flip) made epoch-based (2 epochs of 4 batches), sent once ``epoch_1.pth`` exists, so that the stop falls
inside epoch 2; the resumed run's ``epoch_2.pth`` and ``metrics.json`` equal an uninterrupted run's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.transfer_runs import ROOT, TIMEOUT_S, TINY, tool, write_record

from transfer.mm.resume import resumable_epoch_loop


@pytest.mark.parametrize("train_cfg, swapped", [
    (dict(type="EpochBasedTrainLoop", max_epochs=12, val_interval=1), True),  # mmdet's schedule_1x
    (dict(by_epoch=True, max_epochs=210, val_interval=10), True),  # mmpose's configs
    (dict(type="IterBasedTrainLoop", max_iters=60, val_interval=60), False),
    (dict(by_epoch=False, max_iters=80000, val_interval=8000), False),  # mmseg's 80k
])
def test_epoch_based_configs_get_the_resumable_loop(train_cfg, swapped):
    cfg = dict(train_cfg)
    assert resumable_epoch_loop(cfg) is swapped
    if swapped:
        assert cfg == {**{k: v for k, v in train_cfg.items() if k not in ("type", "by_epoch")},
                       "type": "ResumableEpochBasedTrainLoop"}
    else:
        assert cfg == train_cfg


EPOCHS, BATCHES = 2, 4  # 8 training images at batch 2
CONFIG = f"""_base_ = ['{ROOT}/configs/transfer/faster-rcnn_r18_fpn_tiny.py']
train_dataloader = dict(batch_size=2, dataset=dict(indices={2 * BATCHES}))
train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs={EPOCHS}, val_interval={EPOCHS})
default_hooks = dict(checkpoint=dict(by_epoch=True, interval=1))
log_processor = dict(by_epoch=True)
randomness = dict(seed=0)
"""


@pytest.mark.slow
def test_sigterm_inside_an_epoch_resumes_inside_it(tmp_path):
    import timm

    from dar_common.workdir import latest_checkpoint, read_metrics
    from transfer.tinydata import generate

    generate(tmp_path / "data", **TINY)
    torch.manual_seed(0)
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(),
                "meta": {"arch": "resnet18", "method": "uniform"}}, tmp_path / "backbone.pth")
    config = tmp_path / "faster-rcnn_r18_fpn_tiny_epochs.py"
    config.write_text(CONFIG)

    def args(work: Path) -> list:
        return [config, "--backbone", tmp_path / "backbone.pth", "--data-root", tmp_path / "data" / "coco",
                "--work-dir", work]

    ref = tool("train.py", *args(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tools" / "train.py"), *map(str, args(cut))], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore"})
    deadline = time.monotonic() + TIMEOUT_S
    while not (cut / "epoch_1.pth").is_file() or latest_checkpoint(cut) is None \
            or latest_checkpoint(cut).name != "epoch_1.pth":
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=TIMEOUT_S)[0]
    assert proc.returncode == 75, out[-3000:]
    stopped = latest_checkpoint(cut)
    n = int(stopped.stem.split("_")[1])
    assert stopped.name.startswith("iter_") and BATCHES < n <= EPOCHS * BATCHES, out[-3000:]
    assert not (cut / f"epoch_{EPOCHS}.pth").exists()
    meta = torch.load(stopped, map_location="cpu", weights_only=False)["meta"]
    assert (meta["epoch"], meta["iter"]) == (1, n)  # inside epoch 2 (0-based 1), n iterations done
    resumed = tool("train.py", *args(cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    log = resumed.stdout + resumed.stderr
    assert f"resumed epoch: 1, iter: {n}" in log
    assert f"Advance dataloader {n - BATCHES} steps to skip data already trained in epoch 2" in log
    a = torch.load(cut / f"epoch_{EPOCHS}.pth", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "ref" / f"epoch_{EPOCHS}.pth", map_location="cpu", weights_only=False)
    differ = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert differ == [], differ[:5]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])) for i in sa for k in sa[i])
    assert a["param_schedulers"] == b["param_schedulers"]
    assert (a["meta"]["epoch"], a["meta"]["iter"]) == (b["meta"]["epoch"], b["meta"]["iter"]) == (EPOCHS, EPOCHS * BATCHES)
    assert read_metrics(cut)["metrics"] == read_metrics(tmp_path / "ref")["metrics"] != {}
    write_record("transfer_preempt", config="configs/transfer/faster-rcnn_r18_fpn_tiny.py made epoch-based "
                 f"({EPOCHS} epochs of {BATCHES} batches)", ranks=1, signal="SIGTERM after epoch_1.pth",
                 stopped_at=f"{stopped.name} (epoch 2, batch {n - BATCHES} of {BATCHES})", exit_code=proc.returncode,
                 compared=[f"weights ({len(a['state_dict'])} tensors)", f"optimizer ({len(sa)} buffers)", "schedulers",
                           "epoch and iteration", "metrics.json"], identical=True)
