"""Corrupt data mid-run, with real truncated JPEGs (valid header, body cut): the start-up check passes,
a loader worker fails to decode days later.

* ``data.on_bad_image='fail'`` (default): the run stops with one ``error:`` line naming the file, the last
  checkpoint is intact, and once the file is fixed ``--resume`` ends exactly as an uninterrupted run.
* ``'substitute'``: the next readable sample trains in its place, the same whatever the worker layout
  and across a resume; each bad file is logged once; more than ``data.max_bad_images`` fails.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.harness import ROOT, Launch, compare_work_dirs, log_lines, run_to_end, write_record
from PIL import Image

from pretrain.data import BadImageError, build_dataset

CONFIG = ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py"
CLASSES, TRAIN_PER_CLASS, VAL_PER_CLASS = 4, 12, 3


def make_jpeg_folder(root: Path) -> list[Path]:
    """``root/{train,val}/c<k>/<i>.jpg``: random colour fields plus noise, 64x64, JPEG q90 (a body of a few
    kB behind a header of a few hundred bytes); returns the train files, in ImageFolder's order."""
    rng = np.random.default_rng(0)
    train = []
    for split, count in (("train", TRAIN_PER_CLASS), ("val", VAL_PER_CLASS)):
        for c in range(CLASSES):
            folder = root / split / f"c{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                small = Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8) // (c + 1)).resize((64, 64))
                pixels = np.asarray(small, dtype=np.int16) + rng.integers(-20, 21, (64, 64, 3))
                Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.jpg", quality=90)
                if split == "train":
                    train.append(folder / f"{i}.jpg")
    return sorted(train)


def truncate(path: Path, keep: float = 0.6) -> bytes:
    """Cut the file's body (the header stays readable); returns the original bytes."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with Image.open(path) as im:  # still identified: only a full decode finds it
        assert im.size == (64, 64)
    return data


def options(root: Path, *extra: str) -> list[str]:
    return [f"data.root={root}", "data.type=imagefolder", "data.train_dir=train", "data.val_dir=val",
            "data.num_workers=2", "data.batch_size=8", "schedule.epochs=3", "schedule.milestones=[2]", *extra]


def _lines(text: str, prefix: str) -> list[str]:
    """The ``prefix`` lines of a run's output; a progress bar (carriage returns, no newline) may precede one."""
    return [line[line.index(prefix):] for line in text.replace("\r", "\n").splitlines() if prefix in line]


def _error_lines(text: str) -> list[str]:
    return _lines(text, "error: ")


def test_truncated_jpegs_pass_the_header_check_and_fail_to_decode(tmp_path):
    files = make_jpeg_folder(tmp_path)
    truncate(files[5])
    data = dict(type="imagefolder", root=str(tmp_path), train_dir="train", val_dir="val", img_size=32)
    ds = build_dataset(data, "train")  # data.verify='header' (default): the file looks fine
    with pytest.raises(BadImageError, match=rf"unreadable image: .*{files[5].name} \(OSError: image file is truncated"):
        ds[5]
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=1)
    with pytest.raises(BadImageError) as info:  # raised in a worker: still one line naming the file
        list(loader)
    assert str(info.value).startswith(f"unreadable image: {files[5]}") and "\n" not in str(info.value)


def test_substitute_is_the_next_readable_sample_with_its_target(tmp_path):
    files = make_jpeg_folder(tmp_path)
    truncate(files[5])
    truncate(files[6])
    data = dict(type="imagefolder", root=str(tmp_path), train_dir="train", val_dir="val", img_size=32,
                on_bad_image="substitute", max_bad_images=2)
    ds = build_dataset(data, "train", seed=1, uint8=True)
    ds.set_epoch(3)
    image, target, index = ds[5]
    with ds.aug_seed(5):  # index 5's augmentation draws, applied to sample 7's image
        expect = ds.transform(ds.base[7][0])
    assert index == 5 and target == ds.targets[7] and torch.equal(image, expect)
    assert sorted(ds.bad.indices()) == [5, 6]
    assert torch.equal(ds[6][0], ds[6][0]) and ds[6][1] == ds.targets[7]
    with pytest.raises(BadImageError, match="more than data.max_bad_images=1"):
        build_dataset({**data, "max_bad_images": 1}, "train", uint8=True)[5]


@pytest.mark.slow
def test_a_file_corrupted_mid_run_stops_it_with_one_line_and_resume_works_once_fixed(tmp_path):
    files = make_jpeg_folder(tmp_path / "data")
    opts = options(tmp_path / "data")
    full, cut = tmp_path / "uninterrupted", tmp_path / "corrupted"
    run_to_end(CONFIG, full, opts, 1, False, tmp_path / "logs_full")
    # the run holds for 3 s before pointing last_checkpoint at epoch_1.pth; the file goes bad meanwhile
    launch = Launch(_cmd(cut, opts), tmp_path / "logs_cut", hold="pointer:epoch_1.pth", hold_s=3)
    _wait_for(launch, "holding")
    original = truncate(files[17])
    code = launch.wait()
    out = launch.out.read_text()
    assert code == 2, out[-3000:]
    assert _error_lines(out) == [_error_lines(out)[0]] and str(files[17]) in _error_lines(out)[0]
    assert "Traceback" not in out
    assert (cut / "last_checkpoint").read_text().strip().endswith("epoch_1.pth")
    state = torch.load(cut / "epoch_1.pth", map_location="cpu", weights_only=False)  # intact
    assert state["progress"]["epochs_done"] == 1
    files[17].write_bytes(original)  # fixed
    run_to_end(CONFIG, cut, opts, 1, True, tmp_path / "logs_resume")
    compared, diffs = compare_work_dirs(full, cut)
    assert not diffs, diffs[:10]
    _record("a JPEG truncated mid-run (data.on_bad_image=fail): one error line, last checkpoint intact, "
            "--resume after the fix", 3, compared)


@pytest.mark.slow
def test_substitute_mode_is_deterministic_logged_once_and_bounded(tmp_path):
    files = make_jpeg_folder(tmp_path / "data")
    truncate(files[9])
    runs = {}
    for workers in (0, 2):  # the replacement does not depend on the worker layout
        work = tmp_path / f"w{workers}"
        launch = Launch(_cmd(work, options(tmp_path / "data", "data.on_bad_image=substitute", "data.max_bad_images=1",
                                           f"data.num_workers={workers}")), tmp_path / f"logs_{workers}")
        assert launch.wait() == 0, launch.tail()
        warnings = _lines(launch.out.read_text(), "warning: unreadable image")
        assert len(warnings) == 1 and str(files[9]) in warnings[0] and "1 of at most data.max_bad_images=1" in warnings[0]
        runs[workers] = work
    compared, diffs = compare_work_dirs(runs[0], runs[2])
    assert not diffs, diffs[:10]
    truncate(files[30])  # a second bad file: past the bound
    launch = Launch(_cmd(tmp_path / "over", options(tmp_path / "data", "data.on_bad_image=substitute",
                                                     "data.max_bad_images=1")), tmp_path / "logs_over")
    assert launch.wait() == 2
    errors = _error_lines(launch.out.read_text())
    assert len(errors) == 1 and "more than data.max_bad_images=1 unreadable images" in errors[0]
    _record("a truncated JPEG with data.on_bad_image=substitute (0 vs 2 workers; a second one past "
            "data.max_bad_images=1)", 3, compared)


def _cmd(work_dir: Path, opts: list[str], resume: bool = False) -> list[str]:
    from helpers.harness import command

    return command(CONFIG, work_dir, opts, resume, 1)


def _wait_for(launch: Launch, point: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not any(p == point for _, _, p, _ in launch.marks_list()):
        assert launch.proc.poll() is None, launch.tail()
        assert time.time() < deadline, f"{point} not reached"
        time.sleep(0.02)


def _record(what: str, runs: int, compared: list[str], ranks: int = 1) -> None:
    write_record("bad_data", {"config": str(CONFIG.relative_to(ROOT)), "what": what, "ranks": ranks, "runs": runs,
                              "compared": compared})


@pytest.mark.slow
def test_a_file_corrupted_mid_run_on_rank_1_stops_both_ranks_with_one_line(tmp_path):
    """The file goes bad where rank 1 (not rank 0) reads it in epoch 2: both ranks stop at the same step
    (the per-step agreement of pretrain.preempt), rank 0 prints the failing rank's line, and after the
    fix a 2-rank --resume finishes."""
    from helpers.harness import command

    from pretrain.selection.samplers import UniformSampler

    files = make_jpeg_folder(tmp_path / "data")
    opts = options(tmp_path / "data", "data.batch_size=4")  # 2 x 4: the single-rank global batch
    sampler = UniformSampler(len(files), seed=0, num_replicas=2, rank=1)
    sampler.set_epoch(2)
    victim = files[list(sampler)[3]]  # rank 1's fourth sample of epoch 2
    cut = tmp_path / "run"
    launch = Launch(command(CONFIG, cut, opts, False, 2), tmp_path / "logs_cut", hold="pointer:epoch_1.pth", hold_s=3)
    _wait_for(launch, "holding")
    original = truncate(victim)
    code = launch.wait()
    out = launch.out.read_text()
    errors = _error_lines(out)
    assert code != 0 and len(errors) == 1 and str(victim) in errors[0], out[-3000:]
    assert len(re.findall(r"exitcode\s*:\s*2\b", out)) >= 1 and not re.search(r'File ".*/pretrain/', out), out[-3000:]
    assert (cut / "last_checkpoint").read_text().strip().endswith("epoch_1.pth")
    victim.write_bytes(original)
    run_to_end(CONFIG, cut, opts, 2, True, tmp_path / "logs_resume")
    assert [x["epoch"] for x in log_lines(cut) if x.get("type") == "epoch"] == [1, 2, 3]
    _record("a JPEG truncated mid-run where rank 1 of 2 reads it: both ranks stop, one error line, "
            "--resume after the fix", 2, ["exit codes", "the error line", "last_checkpoint", "log.jsonl epochs"], ranks=2)
