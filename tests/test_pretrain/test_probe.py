"""Transfer probes: the pure kNN / mIoU / head cores, the budget, a trained backbone against a random one
on the embedded data, and tools/probe.py on a published file in a real subprocess."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pretrain.cost import forward_flops
from pretrain.data import build_dataset
from pretrain.errors import ConfigError
from pretrain.models import build_model
from pretrain.probes import DenseSettings, KnnSettings, cityscapes_folder
from pretrain.probes.budget import ProbeBudgetError, ProbeCosts, plan_probe, probe_epochs
from pretrain.probes.build import ProbeConfig, build_prober
from pretrain.probes.dense import LinearDenseHead, confusion, miou
from pretrain.probes.knn import knn_classify
from pretrain.publish import publish

ROOT = Path(__file__).resolve().parents[2]
DIGITS = dict(type="digits", img_size=32, crop_pct=1.0, batch_size=32)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> Path:
    """The tiny Cityscapes-layout street scenes, written by the project's generator (12 train / 6 val)."""
    from transfer.tinydata.generator import cityscapes_split, load_sources, source_image_paths

    root = tmp_path_factory.mktemp("scenes") / "cityscapes"
    rng = np.random.default_rng(0)
    sources = load_sources(source_image_paths(), rng)
    for split, n in (("train", 12), ("val", 6)):
        cityscapes_split(rng, sources, root, split, n, 256)
    return root


@pytest.fixture(scope="module")
def digits():
    return build_dataset(DIGITS, "train", uint8=True), build_dataset(DIGITS, "val", uint8=True)


def random_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("test_resnet", 10)


def trained_model(work_dir: Path):
    model = build_model("test_resnet", 10)
    model.load_state_dict(torch.load(work_dir / "backbone.pth", weights_only=False)["state_dict"])
    return model


# ------------------------------------------------------------------------------------------ kNN core
def test_weighted_and_majority_votes_differ_as_defined():
    # one class-0 neighbour almost identical to the query, two class-1 neighbours at cosine 0.5
    q = torch.tensor([[1.0, 0.0]])
    bank = F.normalize(torch.tensor([[1.0, 0.05], [0.5, 0.866], [0.5, -0.866]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    sims = (q @ bank.T)[0]
    weighted = [sims[labels == c].div(0.07).exp().sum() for c in (0, 1)]
    assert weighted[0] > weighted[1]  # exp(0.999/T) outweighs 2 exp(0.5/T)
    assert knn_classify(bank, labels, q, 2, k=3, vote="weighted").item() == 0
    assert knn_classify(bank, labels, q, 2, k=3, vote="majority").item() == 1
    # k=1: the nearest neighbour decides either way
    assert knn_classify(bank, labels, q, 2, k=1, vote="majority").item() == 0


def test_majority_ties_go_to_the_larger_summed_similarity():
    q = torch.tensor([[1.0, 0.0]])
    bank = F.normalize(torch.tensor([[1.0, 0.1], [1.0, -0.9], [1.0, 0.3], [1.0, -1.2]]), dim=1)
    labels = torch.tensor([0, 0, 1, 1])
    sums = [(q @ bank[labels == c].T).sum() for c in (0, 1)]
    expected = int(torch.tensor(sums).argmax())
    assert knn_classify(bank, labels, q, 2, k=4, vote="majority").item() == expected


def test_knn_settings_reject_bad_values():
    with pytest.raises(ValueError, match="vote"):
        KnnSettings(vote="soft")
    with pytest.raises(ValueError, match="k must be"):
        KnnSettings(k=0)


# ----------------------------------------------------------------------------------------- dense core
def test_miou_matches_set_counts_and_skips_empty_classes():
    gen = torch.Generator().manual_seed(0)
    label = torch.randint(0, 3, (2, 5, 7), generator=gen)
    label[0, 0] = 255
    pred = torch.randint(0, 4, (2, 5, 7), generator=gen)  # class 3 predicted, never labelled
    value, iou = miou(confusion(pred, label, 5))
    keep = label != 255
    expected = []
    for c in range(5):
        inter = ((pred == c) & (label == c) & keep).sum().item()
        union = (((pred == c) | (label == c)) & keep).sum().item()
        assert (iou[c].isnan().item() if union == 0 else iou[c].item() == pytest.approx(inter / union))
        if union:
            expected.append(inter / union)
    assert iou[4].isnan()  # neither labelled nor predicted: left out of the mean
    assert value == pytest.approx(100 * sum(expected) / len(expected))


def test_head_is_a_1x1_conv_on_standardised_upsampled_concatenated_features():
    gen = torch.Generator().manual_seed(1)
    feats = [torch.randn(3, c, s, 2 * s, generator=gen) * (i + 1) + i for i, (c, s) in enumerate([(4, 8), (6, 4), (5, 2)])]
    head = LinearDenseHead(feats, num_classes=3)
    size = (16, 32)
    up = [F.interpolate((f - getattr(head, f"mean{i}")) / getattr(head, f"std{i}"), size=size, mode="bilinear",
                        align_corners=False) for i, f in enumerate(feats)]
    weight = torch.cat([conv.weight for conv in head.convs], dim=1)
    explicit = F.conv2d(torch.cat(up, dim=1), weight, head.convs[0].bias)
    torch.testing.assert_close(head(feats, size), explicit, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------------------------- budget
def test_probe_plan_fits_its_budget_and_refuses_explicit_counts_over_it():
    costs = ProbeCosts(knn_image=1e6, dense_image=2e7, channels=[8, 16], reductions=[4, 8], num_classes=19)
    knn, dense, planned = plan_probe(["knn", "dense"], 2e9, costs, KnnSettings(), DenseSettings(size=(32, 64)),
                                     train_size=5000, val_size=1000, dense_available=(30, 8))
    assert planned <= 2e9
    assert dense.val_images == 8 and 2 <= dense.train_images <= 30
    assert 2e9 - planned < 1e6  # kNN takes what the dense probe leaves, to within one image
    assert knn.queries == (knn.bank + knn.queries) // 4
    with pytest.raises(ProbeBudgetError, match="over its budget"):
        plan_probe(["knn"], 2e8, costs, KnnSettings(bank=400, queries=100), DenseSettings(size=(32, 64)), 5000, 1000)
    with pytest.raises(ProbeBudgetError, match="kNN probe"):
        plan_probe(["knn"], 1e7, costs, KnnSettings(), DenseSettings(size=(32, 64)), 5000, 1000)
    assert probe_epochs(7, 3) == [3, 6, 7]


def test_probe_config_is_checked():
    with pytest.raises(ConfigError, match="did you mean every"):
        ProbeConfig.from_dict(dict(evry=2))
    with pytest.raises(ConfigError, match="tasks"):
        ProbeConfig.from_dict(dict(tasks=["knn", "linear"]))
    with pytest.raises(ConfigError, match="probe.dense does not take"):
        ProbeConfig.from_dict(dict(dense=dict(stepz=3)))
    with pytest.raises(ConfigError, match="vote"):
        ProbeConfig.from_dict(dict(knn=dict(vote="soft")))
    assert ProbeConfig.from_dict(dict(every=2)).dense_settings(32).size == (64, 128)


# ------------------------------------------------------------------------------ on the embedded data
def test_trained_backbone_probes_better_than_random(tiny, digits, scenes):
    train_set, val_set = digits
    trained, random = trained_model(tiny.finished("uniform")), random_model()
    cfg = ProbeConfig.from_dict(dict(knn=dict(bank=600, queries=200), dense=dict(root=str(scenes), steps=60)))
    prober, _ = build_prober(cfg, trained, DIGITS, train_set=train_set, val_set=val_set)
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    rng = torch.get_rng_state()
    trained.train()
    first, again = prober(trained), prober(trained)
    base = prober(random)
    # the probe leaves the model and the global RNG alone, and repeats exactly
    assert trained.training
    assert all(torch.equal(before[k], v) for k, v in trained.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert (first["knn_top1"], first["dense_miou"]) == (again["knn_top1"], again["dense_miou"])
    assert first["probe_flops"] == again["probe_flops"] > 0
    # the digits backbone's features separate digits far better than random ones
    assert first["knn_top1"] > base["knn_top1"]
    # both dense heads beat predicting the most frequent class everywhere (mIoU over the same classes)
    labels = np.concatenate([lab.ravel() for lab in cityscapes_folder(scenes, "val").labels])
    labels = labels[labels != 255]
    classes = np.unique(labels)
    constant = 100 * np.bincount(labels).max() / labels.size / len(classes)
    assert first["dense"]["classes"] >= len(classes)
    assert min(first["dense_miou"], base["dense_miou"]) > constant


def test_measured_probe_cost_is_within_the_planned_budget(digits, scenes):
    train_set, val_set = digits
    model = random_model()
    cfg = ProbeConfig.from_dict(dict(every=2, budget=0.05, dense=dict(root=str(scenes), steps=30)))
    run_flops = 3 * forward_flops(model, (1, 3, 32, 32)) * len(train_set) * 24  # a 24-epoch run of this model
    prober, plan = build_prober(cfg, model, DIGITS, train_set=train_set, val_set=val_set,
                                run_train_flops=run_flops, epochs=6)
    assert plan["probe_epochs"] == [2, 4, 6]
    assert plan["per_probe_flops"] <= plan["budget_flops"] / 3
    result = prober(model)
    assert result["probe_flops"] <= plan["per_probe_flops"]


# ------------------------------------------------------------------------------------- tools/probe.py
def run_tool(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "probe.py"), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)


@pytest.mark.slow
def test_tool_probes_a_published_file(tiny, digits, scenes, tmp_path):
    published = publish(tiny.finished("uniform"), tmp_path / "pub" / "tiny_uniform")
    out = tmp_path / "probe.json"
    config = str(ROOT / "configs" / "pretrain" / "tiny_digits_uniform.py")
    proc = run_tool(str(published), "--config", config, "--bank", "300", "--queries", "100",
                    "--dense-root", str(scenes), "--dense-train", "6", "--dense-val", "4", "--dense-steps", "20",
                    "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "knn top-1" in proc.stdout and "dense mIoU" in proc.stdout
    record = json.loads(out.read_text())
    assert record["arch"] == "test_resnet" and record["checkpoint"] == str(published)
    assert record["knn"]["bank"] == 300 and record["dense"]["train_images"] == 6
    # the same probe in this process on the same weights gives the same numbers
    model = build_model("test_resnet", 10)
    model.load_state_dict(torch.load(published, weights_only=False)["state_dict"])
    cfg = ProbeConfig.from_dict(dict(batch_size=64, knn=dict(bank=300, queries=100),
                                     dense=dict(root=str(scenes), train_images=6, val_images=4, steps=20)))
    prober, _ = build_prober(cfg, model, DIGITS, train_set=digits[0], val_set=digits[1])
    here = prober(model)
    assert record["knn_top1"] == pytest.approx(here["knn_top1"])
    assert record["dense_miou"] == pytest.approx(here["dense_miou"], abs=1e-6)
    assert list(tmp_path.glob("*.tmp*")) == []


@pytest.mark.slow
def test_tool_bad_input_is_one_error_line(tmp_path, tiny):
    proc = run_tool(str(tmp_path / "missing.pth"))
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    published = publish(tiny.finished("uniform"), tmp_path / "pub" / "u")
    proc = run_tool(str(published), "--tasks", "knn")  # a published file carries no data config
    assert proc.returncode == 2 and "--config" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------- the hook in a run
def probe_options(scenes: Path) -> tuple[str, ...]:
    return ("probe.every=3", f"probe.dense.root={scenes}", "probe.dense.steps=50", "probe.knn.k=10")


@pytest.fixture(scope="module")
def probed(tiny, scenes, tmp_path_factory) -> Path:
    """An uninterrupted tiny uniform run with probes after epochs 3 and 6."""
    work_dir = tmp_path_factory.mktemp("probed")
    assert tiny.run("uniform", work_dir, *probe_options(scenes)) == 0
    return work_dir


@pytest.mark.slow
def test_probe_hook_writes_probe_lines_and_meta_without_touching_training(tiny, probed):
    work_dir = probed
    log = tiny.log(work_dir)
    probes = [r for r in log if r["type"] == "probe"]
    epochs = [r for r in log if r["type"] == "epoch"]
    summary = log[-1]
    assert [p["epoch"] for p in probes] == [3, 6]
    for p in probes:  # each probe line follows its epoch's line
        assert log[log.index(p) - 1] == next(e for e in epochs if e["epoch"] == p["epoch"])
        assert p["knn"]["k"] == 10 and p["knn"]["queries"] >= 50 and p["dense"]["train_images"] >= 8
    # the method's cumulative cost, on the summary's scale; the probe's own cost apart and within budget
    total = sum(e["train_flops"] + e["selection_flops"] for e in epochs)
    upto3 = sum(e["train_flops"] + e["selection_flops"] for e in epochs if e["epoch"] <= 3)
    assert probes[0]["relative_cost_flops"] == pytest.approx(summary["relative_cost_flops"] * upto3 / total)
    assert probes[1]["relative_cost_flops"] == pytest.approx(summary["relative_cost_flops"])
    assert probes[1]["probe_flops_total"] == pytest.approx(sum(p["probe_flops"] for p in probes))
    assert probes[1]["probe_flops_total"] <= probes[1]["probe_budget_flops"] <= 0.05 * total * (1 + 1e-9)
    meta = torch.load(work_dir / "backbone.pth", weights_only=False)["meta"]
    assert meta["probe"] == {k: probes[1][k] for k in ("epoch", "knn_top1", "dense_miou", "knn", "dense")}
    # probing changed nothing the run trains: the same weights and statistics as the run without probes
    reference = torch.load(tiny.finished("uniform") / "backbone.pth", weights_only=False)["state_dict"]
    weights = torch.load(work_dir / "backbone.pth", weights_only=False)["state_dict"]
    assert all(torch.equal(reference[k], v) for k, v in weights.items())
    assert [e["train_loss"] for e in epochs] == [e["train_loss"] for e in tiny.log(tiny.finished("uniform"))
                                                 if e["type"] == "epoch"]


WALL = ("probe_wall_s", "probe_wall_s_total")


@pytest.mark.slow
def test_probe_lines_and_totals_survive_a_resume(tiny, scenes, probed, tmp_path):
    work_dir = tmp_path / "resumed"
    assert tiny.run("uniform", work_dir, *probe_options(scenes), "runtime.max_steps=150") == 0  # stops in epoch 4
    assert [r["epoch"] for r in tiny.log(work_dir) if r["type"] == "probe"] == [3]
    assert tiny.run("uniform", work_dir, *probe_options(scenes), resume=True) == 0
    def strip(r: dict) -> dict:
        return {k: v for k, v in r.items() if k not in WALL}
    resumed = [strip(r) for r in tiny.log(work_dir) if r["type"] == "probe"]
    assert resumed == [strip(r) for r in tiny.log(probed) if r["type"] == "probe"]


def test_probe_config_errors_stop_the_run_before_training(tiny, tmp_path):
    rc = tiny.run("uniform", tmp_path / "bad", "probe.every=0")
    assert rc == 2
    rc = tiny.run("uniform", tmp_path / "bad2", f"probe.dense.root={tmp_path / 'nowhere'}")
    assert rc == 2 and not (tmp_path / "bad2" / "epoch_1.pth").exists()


def test_knn_on_a_user_imagefolder_equals_the_same_images_from_the_run(tmp_path):
    """``knn.root`` (ImageFolder train/ + val/) reads PNGs of digits; the run's own sets hold the same pixels."""
    from torch.utils.data import Subset

    from pretrain.data import Digits
    from pretrain.probes import Prober
    from pretrain.probes.build import eval_view

    counts = {"train": 120, "val": 40}
    for split, n in counts.items():
        digits = Digits(split, 32)
        for i in range(n):
            folder = tmp_path / "folder" / split / str(digits.targets[i])
            folder.mkdir(parents=True, exist_ok=True)
            digits.images[i].save(folder / f"{i:04d}.png")
    model = random_model()
    cfg = ProbeConfig.from_dict(dict(tasks=["knn"], knn=dict(root=str(tmp_path / "folder"))))
    from_folder, _ = build_prober(cfg, model, DIGITS)
    run_train, run_val = build_dataset(DIGITS, "train"), build_dataset(DIGITS, "val")
    from_run = Prober(["knn"], bank_set=Subset(eval_view(run_train, DIGITS), range(counts["train"])),
                      query_set=Subset(run_val, range(counts["val"])), num_classes=10)
    a, b = from_folder(model), from_run(model)
    assert (a["knn"]["bank"], a["knn"]["queries"]) == (counts["train"], counts["val"])
    assert a["knn_top1"] == b["knn_top1"]
    (tmp_path / "folder" / "val" / "9").rename(tmp_path / "folder" / "val" / "nine")
    with pytest.raises(ConfigError, match="different class folders"):
        build_prober(cfg, model, DIGITS)
