"""An mmengine Runner trains one epoch, checkpoints, and a second Runner resumes from that checkpoint.

Regression test for torch >= 2.6: mmengine 0.10.7 calls ``torch.load`` without ``weights_only`` and its
checkpoints hold non-tensor objects, so without ``transfer.mm.compat`` the resume fails to unpickle.
"""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import transfer.mm.compat


class TinyRegressor(BaseModel):
    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(2)
        self.linear = nn.Linear(2, 1)

    def forward(self, x, y, mode="tensor"):
        out = self.linear(self.norm(x)).squeeze(1)
        return {"loss": ((out - y) ** 2).mean()} if mode == "loss" else out


class LineDataset(Dataset):
    def __len__(self):
        return 16

    def __getitem__(self, i):
        return {"x": torch.tensor([i / 16.0, 1.0]), "y": torch.tensor(float(i % 3))}


def make_runner(work_dir, max_epochs: int, resume: bool) -> Runner:
    return Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=LineDataset(), sampler=dict(type="DefaultSampler", shuffle=True),
                              batch_size=4, collate_fn=dict(type="default_collate")),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        resume=resume,
        randomness=dict(seed=0),
        default_scope="mmengine",
    )


def test_runner_resumes_from_its_own_checkpoint(tmp_path):
    first = make_runner(tmp_path, max_epochs=1, resume=False)
    first.train()
    ckpt = tmp_path / "epoch_1.pth"
    assert ckpt.is_file()
    weights_after_epoch1 = {k: v.clone() for k, v in first.model.state_dict().items()}

    second = make_runner(tmp_path, max_epochs=2, resume=True)
    second.train()
    # It resumed (1 epoch left to run, 4 iterations), starting from epoch 1's weights and momentum.
    assert second.epoch == 2 and second.iter == 8
    momentum = second.optim_wrapper.optimizer.state_dict()["state"]
    assert momentum, "optimizer state was not restored"
    assert not torch.equal(second.model.state_dict()["linear.weight"], weights_after_epoch1["linear.weight"])

    # The loading itself, step by step: mmengine's loader reads the checkpoint through our fix...
    from mmengine.runner.checkpoint import _load_checkpoint

    loaded = _load_checkpoint(str(ckpt), map_location="cpu")
    for key, value in weights_after_epoch1.items():
        torch.testing.assert_close(loaded["state_dict"][key], value)
    assert loaded["meta"]["epoch"] == 1


def test_safe_loading_stays_on_outside_mmengine(tmp_path):
    make_runner(tmp_path, max_epochs=1, resume=False).train()
    assert "mmengine-torch-load-weights-only" in transfer.mm.compat.APPLIED
    # A plain torch.load still refuses the non-tensor objects: the fix is scoped, not global.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(tmp_path / "epoch_1.pth")
