"""Exact resume: a run stopped mid-epoch and resumed trains what an uninterrupted run trains."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from pretrain.checkpoint import atomic_save, config_diff, find_last


def _without_wall(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "wall_s"} for line in log]


def _same_weights(a, b) -> bool:
    sa = torch.load(a, map_location="cpu", weights_only=False)["model"]
    sb = torch.load(b, map_location="cpu", weights_only=False)["model"]
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.slow
@pytest.mark.parametrize("method, stop", [("dar", 100), ("online", 100)])
def test_stop_mid_epoch_and_resume_equals_uninterrupted(method, stop, tiny, tmp_path):
    """Step 100 is inside epoch 3 (43 + 43 steps before it): DaR has just shrunk the subset to 60%, the
    loss table is half filled; online is mid-pass in its pool stream."""
    full = tiny.finished(method)
    assert tiny.run(method, tmp_path, f"runtime.max_steps={stop}") == 0
    assert (tmp_path / f"step_{stop}.pth").is_file()
    assert find_last(tmp_path) == tmp_path / f"step_{stop}.pth"
    assert len(tiny.log(tmp_path)) == 2  # epochs 1-2 logged, epoch 3 not finished
    assert tiny.run(method, tmp_path, resume=True) == 0
    assert _without_wall(tiny.log(tmp_path)) == _without_wall(tiny.log(full))
    assert _same_weights(tmp_path / "epoch_6.pth", full / "epoch_6.pth")
    for f in sorted((full / "selection").glob("*.npz")):
        a, b = np.load(f), np.load(tmp_path / "selection" / f.name)
        np.testing.assert_array_equal(a["kept"], b["kept"])
        np.testing.assert_array_equal(a["losses"], b["losses"])  # NaN == NaN for array_equal's purposes


@pytest.mark.slow
def test_resume_from_an_epoch_checkpoint_rewrites_later_log_lines(tiny, tmp_path):
    """Killed after logging epoch 4 but before its checkpoint: resuming from epoch 3 keeps one line per epoch."""
    full = tiny.finished("dar")
    assert tiny.run("dar", tmp_path, "runtime.max_steps=128") == 0  # the last step of epoch 4: 43+43+26+16
    (tmp_path / "last_checkpoint").write_text(str(tmp_path / "epoch_3.pth"))
    assert len(tiny.log(tmp_path)) == 4
    assert tiny.run("dar", tmp_path, resume=True) == 0
    assert _without_wall(tiny.log(tmp_path)) == _without_wall(tiny.log(full))
    assert _same_weights(tmp_path / "epoch_6.pth", full / "epoch_6.pth")


def test_resume_from_another_method_says_what_differs(tiny, tmp_path, capsys):
    assert tiny.run("dar", tmp_path, "runtime.max_steps=2") == 0
    capsys.readouterr()
    assert tiny.run("dar_random", tmp_path, resume=True) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: resume checkpoint")
    assert "method.type: 'dar' vs 'dar_random'" in err[0]
    assert tiny.run("dar", tmp_path, "method.keep=0.7", resume=True) == 2
    assert "method.keep: 0.6 vs 0.7" in capsys.readouterr().err
    # what may change between a checkpoint and its resume: where the data is, how fast it loads
    assert config_diff({"data": {"root": "a", "type": "x"}, "runtime": {"amp": None}},
                       {"data": {"root": "b", "type": "x"}, "runtime": {"amp": "bf16"}}) == []


def test_auto_resume_without_a_checkpoint_starts_fresh(tiny, tmp_path, capsys):
    assert tiny.run("uniform", tmp_path, "runtime.max_steps=1", resume=True) == 0
    assert "starting from scratch" in capsys.readouterr().err
    assert find_last(tmp_path) == tmp_path / "step_1.pth"


def test_checkpoints_are_written_atomically(tmp_path, monkeypatch):
    """A save that dies half-way leaves the previous file intact and no stray temporary behind."""
    target = tmp_path / "epoch_1.pth"
    atomic_save({"x": 1}, target)

    def boom(obj, f, *a, **k):
        (f if hasattr(f, "write") else open(f, "wb")).write(b"half")  # atomic_save serialises to memory first
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        atomic_save({"x": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=False) == {"x": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["epoch_1.pth"]
