"""Transfer side of issue 13: bad inputs and real write failures, each through the tool a user runs, checked by
its exit code, its one ``error:`` line and the files it leaves: a real subprocess of it, except refusals
made before any training that another test already checks at the process level (``tool_in_process``:
the tool's ``main`` in this process, ~10 s of imports less each).

Bad inputs: ``tools/test.py`` given backbone-only weights (a published file, a ``backbone.pth``) instead of
a fine-tuned checkpoint; ``tools/pipeline.py`` given a report folder that cannot be created (``/proc/x``).
Write failures (EFBIG from the kernel, see ``fsize.py``): ``metrics.json`` (tools/test.py), the published
model and ``metafile.yml`` (tools/publish_model.py), the report (``report.md``, a table, a plot) and a stage
marker (tools/pipeline.py). Each must leave the previous good file as it was and no temporary file.
Resume: a fine-tuning run (mmengine) killed with a real SIGKILL after a checkpoint resumes with
``tools/train.py --resume`` (mmengine's own ``resume=True`` / ``find_latest_checkpoint``) and ends bit for
bit where an uninterrupted run ends, randomness on as shipped (issue 20: transfer/mm/resume.py's RNGStateHook
puts the generators back); a truncated or foreign resume checkpoint is one line. The
pipeline killed mid-stage is ``test_pipeline_kill.py`` (slow).
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.fsize import limited
from helpers.transfer_runs import (
    ROOT,
    TIMEOUT_S,
    TINY,
    TINY_RECIPES,
    assert_one_error_line,
    free_port,
    kill_tree,
    pipeline_config,
    recipe_id,
    snapshot,
    temporaries,
    tool,
    tool_failing_at,
    tool_in_process,
    write_record,
)

SEG = ROOT / "configs" / "transfer" / "pspnet_r18b-d8_tiny.py"
FAST = ["--cfg-options", "train_cfg.max_iters=2", "default_hooks.checkpoint.interval=2", "val_cfg=None",
        "val_dataloader=None", "val_evaluator=None", "randomness.seed=0"]


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    from transfer.tinydata import generate

    root = tmp_path_factory.mktemp("tiny") / "data"
    generate(root, **TINY)
    return root


def backbone_file(path: Path, arch: str = "resnet18", **meta) -> Path:
    """A timm model's weights as pre-training's ``backbone.pth`` writes them."""
    import timm

    torch.manual_seed(0)
    state = timm.create_model(arch, pretrained=False).state_dict()
    torch.save({"state_dict": state, "meta": {"arch": arch, "method": "uniform", "epochs": 0, **meta}}, path)
    return path


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, Path]:
    """A ResNet-18 backbone.pth and its published file (tools/publish_model.py)."""
    folder = tmp_path_factory.mktemp("published")
    raw = backbone_file(folder / "backbone.pth")
    proc = tool_in_process("publish_model.py", raw, folder / "pub" / "resnet18_uniform")  # its subprocess: below
    assert proc.returncode == 0, proc.stderr[-3000:]
    (pub,) = (folder / "pub").glob("resnet18_uniform-*.pth")
    return {"backbone.pth": raw, "published": pub}


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, tiny, published) -> Path:
    """A PSPNet fine-tuned for 2 iterations from the published file; its work dir."""
    work = tmp_path_factory.mktemp("finetuned") / "work"
    proc = tool("train.py", SEG, "--backbone", published["published"], "--data-root", tiny / "cityscapes",
                "--work-dir", work, *FAST)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


# ---------------------------------------------------------------------------------------- bad inputs
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["published", "backbone.pth"])
def test_test_py_refuses_backbone_only_weights(kind, published, tiny, tmp_path):
    path = published[kind]
    n_keys = len(torch.load(path, map_location="cpu", weights_only=True)["state_dict"])
    run = tool if kind == "published" else tool_in_process  # the process-level path once (CI time)
    proc = run("test.py", SEG, path, "--data-root", tiny / "cityscapes", "--work-dir", tmp_path / "work")
    what = "a backbone-only published file" if kind == "published" else "a backbone-only weights file"
    line = assert_one_error_line(proc, str(path), what, f"of its {n_keys} keys",
                                 "tools/test.py needs a fine-tuned checkpoint",
                                 f"tools/train.py {SEG} --backbone {path}")
    assert proc.returncode == 2
    assert not (tmp_path / "work" / "metrics.json").exists()  # nothing was evaluated
    write_record("bad_input", tool="tools/test.py", input=f"{kind} file instead of a fine-tuned checkpoint",
                 exit_code=proc.returncode, line=line)


@pytest.mark.slow
def test_test_py_evaluates_a_fine_tuned_checkpoint(finetuned, tiny):
    """The check lets a real fine-tuned checkpoint through, and says it covered every key."""
    ckpt = finetuned / "iter_2.pth"
    n_keys = len(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    proc = tool("test.py", SEG, ckpt, "--data-root", tiny / "cityscapes", "--work-dir", finetuned)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"{n_keys}/{n_keys} model keys matched, 0 missing, 0 shape-mismatched" in proc.stdout + proc.stderr
    assert "mIoU" in (finetuned / "metrics.json").read_text()


def test_pipeline_refuses_an_uncreatable_report_dir(tmp_path):
    tiny = tmp_path / "tiny"  # missing: the pipeline would generate it as its first work
    proc = tool("pipeline.py", ROOT / "configs" / "pipeline" / "demo.py", "--cfg-options", "report_dir=/proc/x",
                f"tiny_data.root={tiny}", f"data_roots.coco={tiny / 'coco'}",
                f"data_roots.cityscapes={tiny / 'cityscapes'}")
    line = assert_one_error_line(proc, "report folder /proc/x is not writable")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert not tiny.exists()  # refused before any work
    write_record("bad_input", tool="tools/pipeline.py", input="report_dir=/proc/x", exit_code=proc.returncode,
                 line=line)


# ------------------------------------------------------------------------------------ write failures
def record_write(writer: str, proc, before: dict, after: dict, litter: list[str]) -> None:
    write_record("write_failure", writer=writer, exit_code=proc.returncode,
                 line=next(x for x in proc.stderr.splitlines() if x.startswith("error:")),
                 files_checked=len(before), unchanged=before == after, temporaries=litter)


@pytest.mark.slow
def test_metrics_json_write_failure_keeps_the_previous_one(finetuned, tiny):
    ckpt = finetuned / "iter_2.pth"
    if not (finetuned / "metrics.json").is_file():  # normally written by the test above
        assert tool("test.py", SEG, ckpt, "--data-root", tiny / "cityscapes", "--work-dir", finetuned).returncode == 0
    before = (finetuned / "metrics.json").read_bytes()
    proc = tool_failing_at(64, "metrics.json", "test.py", SEG, ckpt, "--data-root", tiny / "cityscapes",
                           "--work-dir", finetuned)
    assert_one_error_line(proc, "File too large", str(finetuned / "metrics.json"))
    assert (finetuned / "metrics.json").read_bytes() == before
    assert temporaries(finetuned) == []
    record_write("metrics.json (tools/test.py)", proc, {"m": before}, {"m": (finetuned / "metrics.json").read_bytes()},
                 temporaries(finetuned))


def tiny_backbone(path: Path, note: str = "") -> Path:
    """A small weights file with the meta publishing needs (publishing does not build the model)."""
    torch.save({"state_dict": {"fc.weight": torch.arange(6.0).reshape(2, 3)},
                "meta": {"arch": "resnet18", "method": "uniform", "method_params": {"note": note}}}, path)
    return path


def test_published_model_write_failure_leaves_the_folder_as_it_was(tmp_path):
    pub = tmp_path / "pub"
    assert tool("publish_model.py", tiny_backbone(tmp_path / "a.pth"), pub / "m").returncode == 0
    (first,) = pub.glob("m-*.pth")
    before = snapshot(pub)
    proc = tool("publish_model.py", tiny_backbone(tmp_path / "b.pth", note="other weights"), pub / "m",
                preexec_fn=limited(first.stat().st_size // 2))
    assert_one_error_line(proc, "File too large", str(pub / "m-"))
    assert snapshot(pub) == before and temporaries(pub) == []
    record_write("published model (tools/publish_model.py)", proc, before, snapshot(pub), temporaries(pub))


def test_metafile_write_failure_keeps_the_previous_index(tmp_path):
    pub = tmp_path / "pub"
    # the first entry is large, so that the index outgrows a limit that the second, small file fits in
    assert tool("publish_model.py", tiny_backbone(tmp_path / "a.pth", note="x" * 4000), pub / "a").returncode == 0
    index = pub / "metafile.yml"
    before, limit = index.read_bytes(), index.stat().st_size + 16
    proc = tool("publish_model.py", tiny_backbone(tmp_path / "b.pth"), pub / "b", preexec_fn=limited(limit))
    assert_one_error_line(proc, "File too large", str(index))
    assert index.read_bytes() == before and temporaries(pub) == []
    (second,) = pub.glob("b-*.pth")  # written before the index, complete: its name is its hash
    assert hashlib.sha256(second.read_bytes()).hexdigest()[:8] == second.stem.rsplit("-", 1)[1]
    record_write("metafile.yml (tools/publish_model.py)", proc, {"i": before}, {"i": index.read_bytes()},
                 temporaries(pub))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny) -> dict:
    """A finished pipeline without transfer tasks: pre-training, publishing, tables, plots, report."""
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg = pipeline_config(tmp / "pipeline.py", tmp / "report", tiny, seg=False)
    proc = tool("pipeline.py", cfg)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"config": cfg, "root": tmp / "report"}


def report_files(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(root).items() if k == "report.md" or k.startswith(("tables/", "plots/"))}


@pytest.mark.parametrize("name", ["report.md", "cls.md", "kept_fraction.png"])
def test_report_write_failure_keeps_the_previous_report(name, pipeline):
    root = pipeline["root"]
    before = report_files(root)
    assert any(k.rsplit("/", 1)[-1] == name for k in before)  # the previous report has that file
    proc = tool_failing_at(10, name, "pipeline.py", pipeline["config"])
    assert_one_error_line(proc, "writing the report", "File too large", name)
    after = report_files(root)
    assert after == before and temporaries(root) == []
    record_write(f"report: {name} (tools/pipeline.py)", proc, before, after, temporaries(root))


def test_stage_marker_write_failure_then_rerun(pipeline):
    root = pipeline["root"]
    marker = root / "stages" / "publish__uniform_s0.json"
    tables = {k: v for k, v in report_files(root).items() if k.startswith("tables/")}
    marker.unlink()  # the publish stage runs again, and its marker cannot be written
    proc = tool_failing_at(10, marker.name, "pipeline.py", pipeline["config"])
    assert_one_error_line(proc, "File too large", str(marker), "rerun the same command to resume")
    assert not marker.exists() and temporaries(root) == []
    record_write("stage marker (tools/pipeline.py)", proc, {"absent": b""}, {"absent": b""}, temporaries(root))
    again = tool("pipeline.py", pipeline["config"])  # the rerun finishes the stage and the same tables
    assert again.returncode == 0, again.stderr[-3000:]
    assert marker.is_file()
    assert {k: v for k, v in report_files(root).items() if k.startswith("tables/")} == tables


# -------------------------------------------------------------------------------- kill and resume
# As shipped: dropout on in both PSPNet heads (Dropout2d 0.1), random resize/crop/flip; a checkpoint every
# iteration so that the kill can follow any of them; the validation at the end writes metrics.json.
RESUME_ITERS = 4
RESUME_OPTIONS = ["--cfg-options", f"train_cfg.max_iters={RESUME_ITERS}", f"train_cfg.val_interval={RESUME_ITERS}",
                  "default_hooks.checkpoint.interval=1", "randomness.seed=0"]


def train_args(published, tiny, work: Path) -> list:
    return [SEG, "--backbone", published["published"], "--data-root", tiny / "cityscapes", "--work-dir", work, *RESUME_OPTIONS]


def kill_after(argv: list, work: Path, checkpoint: str, launcher: list | None = None, env: dict | None = None) -> float:
    """Run ``tools/train.py argv`` (or ``launcher + argv``); SIGKILL it and every process under it (torchrun
    starts each rank in a session of its own, so its process group is not enough) once ``last_checkpoint``
    names ``checkpoint``: all are stopped first, then killed, so no rank trains on after the others died."""
    start = time.monotonic()
    proc = subprocess.Popen([*(launcher or [sys.executable, str(ROOT / "tools" / "train.py")]), *map(str, argv)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})})
    try:
        while proc.poll() is None and time.monotonic() - start < TIMEOUT_S:
            pointer = work / "last_checkpoint"
            if pointer.is_file() and Path(pointer.read_text().strip()).name == checkpoint:
                kill_tree(proc.pid)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            kill_tree(proc.pid)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended ({proc.returncode}) before {checkpoint}"
    return time.monotonic() - start


def assert_same_training_state(a: dict, b: dict) -> list[str]:
    """Weights, every optimizer buffer, schedulers and iteration identical; what was compared."""
    assert a["state_dict"].keys() == b["state_dict"].keys()
    different = [k for k in a["state_dict"] if not torch.equal(a["state_dict"][k], b["state_dict"][k])]
    assert different == [], different[:5]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    # every per-parameter buffer of whichever optimizer the recipe uses (AdamW: step, exp_avg, exp_avg_sq)
    assert sa.keys() == sb.keys() and all(sa[i].keys() == sb[i].keys() for i in sa)
    assert all(torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])) for i in sa for k in sa[i])
    assert a["param_schedulers"] == b["param_schedulers"] and a["meta"]["iter"] == b["meta"]["iter"]
    return [f"weights ({len(a['state_dict'])} tensors)", f"optimizer ({len(sa)} buffers)", "schedulers", "iteration"]


# The tiny recipes as shipped, one run each. CI runs PSPNet (dropout, random resize, crop and flip) and
# Faster R-CNN (the RPN's and RoI head's random samplers); Mask R-CNN (Faster R-CNN's samplers plus a mask
# head), RetinaNet (no sampler) and SimpleBaseline (keypoint flips, as PSPNet's) add no other random state
# to what a resume restores: ``extended`` (CI time).
CI_RECIPES = ("pspnet_r18b-d8_tiny.py", "faster-rcnn_r18_fpn_tiny.py")


@pytest.mark.slow
@pytest.mark.parametrize("recipe", [pytest.param(name, id=recipe_id(name), marks=() if name in CI_RECIPES
                                                 else pytest.mark.extended) for name in TINY_RECIPES])
def test_finetuning_killed_then_resumed_matches_an_uninterrupted_run(recipe, published, tiny, tmp_path):
    """Randomness on (dropout, samplers, data augmentation): a SIGKILL after a checkpoint drawn at random,
    then ``--resume``, ends in the uninterrupted run's weights, optimizer state and metrics.json."""
    import random

    from dar_common.workdir import read_metrics

    config = ROOT / "configs" / "transfer" / recipe
    data = tiny / TINY_RECIPES[recipe]

    def train_args(published, tiny, work: Path) -> list:
        return [config, "--backbone", published["published"], "--data-root", data, "--work-dir", work,
                *RESUME_OPTIONS]

    kill_at = random.Random(os.environ.get("DAR_KILL_SEED", "20") + recipe).randint(1, RESUME_ITERS - 1)
    ref = tool("train.py", *train_args(published, tiny, tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    cut = tmp_path / "cut"
    killed_s = kill_after(train_args(published, tiny, cut), cut, f"iter_{kill_at}.pth")
    assert not (cut / f"iter_{RESUME_ITERS}.pth").exists()
    resumed = tool("train.py", *train_args(published, tiny, cut), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f"resumed epoch: 0, iter: {kill_at}" in out and f"Advance dataloader {kill_at} steps" in out
    assert "holds no RNG states" not in out
    record = dict(config=str(config.relative_to(ROOT)), ranks=1, randomness="as shipped",
                  kills=[f"SIGKILL after iter_{kill_at}.pth of {RESUME_ITERS}"], runs=3, killed_after_s=round(killed_s))
    try:
        # the checkpoint both runs wrote before the kill: a difference here is not the resume's
        a_k, b_k = (torch.load(d / f"iter_{kill_at}.pth", map_location="cpu", weights_only=False)
                    for d in (cut, tmp_path / "ref"))
        before = [k for k in a_k["state_dict"] if not torch.equal(a_k["state_dict"][k], b_k["state_dict"][k])]
        assert before == [], f"the two runs differ already before the kill (not a resume problem): {before[:5]}"
        assert len(a_k["rng_states"]["ranks"]) == 1
        a = torch.load(cut / f"iter_{RESUME_ITERS}.pth", map_location="cpu", weights_only=False)
        b = torch.load(tmp_path / "ref" / f"iter_{RESUME_ITERS}.pth", map_location="cpu", weights_only=False)
        compared = assert_same_training_state(a, b)
        ma, mb = read_metrics(cut), read_metrics(tmp_path / "ref")
        assert ma["metrics"] == mb["metrics"] and ma["metrics"], (ma, mb)
    except AssertionError as err:  # a difference is counted too (docs/reliability.md: runs and identical ones)
        write_record("transfer_resume", **record, compared=[], identical=False, differs=str(err)[:500])
        raise
    write_record("transfer_resume", **record, compared=[*compared, "metrics.json"], identical=True)


@pytest.mark.parametrize("kind", ["truncated", "foreign"])
def test_a_bad_resume_checkpoint_is_one_line(kind, published, tiny, tmp_path):
    bad = tmp_path / "iter_2.pth"
    if kind == "truncated":
        torch.save({"state_dict": {"w": torch.zeros(1000)}, "meta": {}}, bad)
        bad.write_bytes(bad.read_bytes()[:1000])
    else:
        torch.save([1, 2, 3], bad)
    proc = tool_in_process("train.py", *train_args(published, tiny, tmp_path / "work"), "--resume", bad)
    line = assert_one_error_line(proc, "cannot resume", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    write_record("bad_input", tool="tools/train.py (transfer)", input=f"--resume with a {kind} checkpoint",
                 exit_code=proc.returncode, line=line)


def dist_train(config: Path, *args, env: dict) -> subprocess.CompletedProcess:
    """``tools/dist_train.sh CONFIG 2 ARGS`` (two gloo ranks under torchrun), output captured."""
    return subprocess.run([str(ROOT / "tools" / "dist_train.sh"), str(config), "2", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT_S,
                          env={**os.environ, "PYTHONWARNINGS": "ignore", **env, "PORT": free_port()})


# Two ranks: no validation (the weights, every optimizer buffer and the schedulers carry the comparison; the
# 1-rank test above compares metrics.json too)
TWO_RANK_OPTIONS = [*RESUME_OPTIONS, "val_cfg=None", "val_dataloader=None", "val_evaluator=None"]


@pytest.mark.slow
@pytest.mark.extended
@pytest.mark.parametrize("recipe", [pytest.param(name, id=recipe_id(name)) for name in TINY_RECIPES])
def test_two_rank_finetuning_killed_then_resumed_matches_an_uninterrupted_run(recipe, published, tiny, tmp_path):
    """The 1-rank test above on 2 gloo ranks (``tools/dist_train.sh``): torchrun and both ranks SIGKILLed at
    once after a checkpoint drawn at random, then ``--resume`` on 2 ranks ends in the uninterrupted 2-rank
    run's state; the checkpoint holds both ranks' generator states. ``extended`` (CI time): CI resumes 2
    ranks after SIGUSR1 (test_transfer_preempt.py, PSPNet: the same --resume with both ranks' generator
    states) and after a SIGKILL on one rank (the PSPNet and Faster R-CNN runs above)."""
    import random

    config = ROOT / "configs" / "transfer" / recipe
    data = tiny / TINY_RECIPES[recipe]
    env = {"PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}

    def train_args(work: Path) -> list:
        return ["--backbone", published["published"], "--data-root", data, "--work-dir", work, *TWO_RANK_OPTIONS]

    kill_at = random.Random(os.environ.get("DAR_KILL_SEED", "20") + recipe + "2").randint(1, RESUME_ITERS - 1)
    ref = dist_train(config, *train_args(tmp_path / "ref"), env=env)
    assert ref.returncode == 0, ref.stderr[-3000:]
    cut = tmp_path / "cut"
    killed_s = kill_after(train_args(cut), cut, f"iter_{kill_at}.pth",
                          launcher=[str(ROOT / "tools" / "dist_train.sh"), str(config), "2"],
                          env={**env, "PORT": free_port()})
    assert not (cut / f"iter_{RESUME_ITERS}.pth").exists()
    resumed = dist_train(config, *train_args(cut), "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    out = resumed.stdout + resumed.stderr
    assert f"resumed epoch: 0, iter: {kill_at}" in out and "holds no RNG states" not in out, out[-3000:]
    record = dict(config=str(config.relative_to(ROOT)), ranks=2, randomness="as shipped",
                  kills=[f"SIGKILL (torchrun and both ranks) after iter_{kill_at}.pth of {RESUME_ITERS}"], runs=3,
                  killed_after_s=round(killed_s))
    try:
        a_k = torch.load(cut / f"iter_{kill_at}.pth", map_location="cpu", weights_only=False)
        assert len(a_k["rng_states"]["ranks"]) == 2
        a = torch.load(cut / f"iter_{RESUME_ITERS}.pth", map_location="cpu", weights_only=False)
        b = torch.load(tmp_path / "ref" / f"iter_{RESUME_ITERS}.pth", map_location="cpu", weights_only=False)
        compared = assert_same_training_state(a, b)
    except AssertionError as err:
        write_record("transfer_resume", **record, compared=[], identical=False, differs=str(err)[:500])
        raise
    write_record("transfer_resume", **record, compared=compared, identical=True)
