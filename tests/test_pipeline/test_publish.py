"""Publishing: content-hashed name, meta kept, optimizer/selection state dropped, model index kept current."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
import yaml

from pretrain.publish import PublishError, publish, resolve_input, split_checkpoint

ROOT = Path(__file__).resolve().parents[2]
META = {"arch": "resnet10t", "method": "dar", "method_params": {"keep": 0.9, "interval": 2}, "epochs": 4,
        "dataset": "digits", "relative_cost_samples": 0.86, "relative_cost_flops": 0.87, "top1": 91.5,
        "top5": 99.0, "git_rev": "abc123", "date": "2026-01-01T00:00:00+00:00"}


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return timm.create_model("resnet10t", pretrained=False, num_classes=10)


def full_checkpoint(work: Path, model: torch.nn.Module, meta: dict | None = None) -> Path:
    """A pre-training checkpoint laid out per the common contract, with DDP-prefixed keys."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / "epoch_4.pth"
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch.save({"model": {f"module.{k}": v for k, v in model.state_dict().items()}, "meta": dict(meta or META),
                "optimizer": opt.state_dict(), "sampler": {"losses": torch.rand(10)}, "epoch": 4}, path)
    (work / "last_checkpoint").write_text(str(path))
    return path


def test_publish_names_file_by_content_hash_and_keeps_only_weights_and_meta(tmp_path, model):
    src = full_checkpoint(tmp_path / "work", model)
    out = publish(src, tmp_path / "pub" / "r10_dar")
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.name == f"r10_dar-{digest[:8]}.pth"
    ckpt = torch.load(out, map_location="cpu", weights_only=True)  # plain tensors and builtins only
    assert set(ckpt) == {"state_dict", "meta"}
    assert {k: v for k, v in ckpt["meta"].items() if k in META} == META
    ref = model.state_dict()
    assert set(ckpt["state_dict"]) == set(ref)  # "module." stripped, nothing else renamed
    assert all(torch.equal(ckpt["state_dict"][k], ref[k]) for k in ref)
    # The weights load straight into the timm model they came from.
    fresh = timm.create_model("resnet10t", pretrained=False, num_classes=10)
    fresh.load_state_dict(ckpt["state_dict"])


def test_republishing_is_byte_identical_and_updates_the_index_entry(tmp_path, model):
    work = tmp_path / "work"
    src = full_checkpoint(work, model)
    (work / "config.py").write_text("method = 'dar'\n")
    a = publish(work, tmp_path / "pub" / "r10_dar")  # a work dir resolves to its last checkpoint
    b = publish(src, tmp_path / "pub" / "r10_dar")
    assert a == b
    other = publish(full_checkpoint(tmp_path / "w2", model, {**META, "method": "uniform"}),
                    tmp_path / "pub" / "r10_uniform")
    index = yaml.safe_load((tmp_path / "pub" / "metafile.yml").read_text())
    names = [m["Name"] for m in index["Models"]]
    assert names == ["r10_dar", "r10_uniform"]  # updated in place, then appended
    entry = index["Models"][0]
    assert set(entry) == {"Name", "Config", "Metadata", "Results", "Weights"}
    assert entry["Weights"] == a.name and index["Models"][1]["Weights"] == other.name
    assert entry["Config"] == str(work / "config.py")
    assert entry["Metadata"]["Relative Cost (samples)"] == META["relative_cost_samples"]
    assert entry["Results"][0]["Metrics"] == {"Top 1 Accuracy": META["top1"], "Top 5 Accuracy": META["top5"]}


def test_missing_meta_is_filled_from_the_run_summary(tmp_path, model):
    work = tmp_path / "work"
    work.mkdir()
    torch.save({"state_dict": model.state_dict(), "meta": {}}, work / "backbone.pth")
    summary = {"type": "summary", "method": "uniform", "arch": "resnet10t", "epochs": 3,
               "relative_cost_samples": 1.0, "relative_cost_flops": 1.0, "top1": 80.0, "top5": 97.0, "wall_s": 1}
    (work / "log.jsonl").write_text(json.dumps({"type": "epoch", "epoch": 1}) + "\n" + json.dumps(summary) + "\n")
    assert resolve_input(work) == work / "backbone.pth"  # backbone.pth preferred over checkpoints
    meta = torch.load(publish(work, tmp_path / "p" / "x"), weights_only=True)["meta"]
    assert (meta["method"], meta["arch"], meta["top1"], meta["epochs"]) == ("uniform", "resnet10t", 80.0, 3)


@pytest.mark.parametrize("bad, message", [
    ("missing.pth", "not found"),
    ("notadict", "is not a dict"),
    ("nometa", "meta lacks arch, method"),
    ("optimizer_only", "has no 'model' or 'state_dict'"),
])
def test_bad_input_is_one_clear_error(tmp_path, model, bad, message):
    path = tmp_path / f"{bad}.pth"
    if bad == "notadict":
        torch.save([1, 2], path)
    elif bad == "nometa":
        torch.save(model.state_dict(), path)
    elif bad == "optimizer_only":
        torch.save({"optimizer": {}, "epoch": 1}, path)
    with pytest.raises(PublishError, match=message):
        publish(path, tmp_path / "out" / "x")
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_split_checkpoint_rejects_non_tensor_state():
    with pytest.raises(PublishError, match="non-tensor"):
        split_checkpoint({"state_dict": {"w": torch.zeros(1), "step": 3}})


def test_cli_prints_path_and_fails_with_one_line(tmp_path, model):
    src = full_checkpoint(tmp_path / "work", model)
    tool = str(ROOT / "tools" / "publish_model.py")
    ok = subprocess.run([sys.executable, tool, str(src), str(tmp_path / "p" / "m"), "--name", "my-model",
                         "--weights-url", "https://example.org/models/"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    path = Path(ok.stdout.split()[-1])
    index = yaml.safe_load((tmp_path / "p" / "metafile.yml").read_text())
    assert index["Models"][0]["Name"] == "my-model"
    assert index["Models"][0]["Weights"] == f"https://example.org/models/{path.name}"
    bad = subprocess.run([sys.executable, tool, str(tmp_path / "nope"), str(tmp_path / "p" / "m")],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and bad.stderr.strip().count("\n") == 0 and "not found" in bad.stderr


def test_published_file_round_trips_through_transfers_loader(tmp_path, model):
    from transfer.mm.checkpoint import load_backbone_weights, read_backbone_checkpoint

    out = publish(full_checkpoint(tmp_path / "work", model), tmp_path / "pub" / "r10_dar")
    assert hashlib.sha256(out.read_bytes()).hexdigest().startswith(out.stem.rsplit("-", 1)[1])
    state, meta = read_backbone_checkpoint(out)
    assert {k: v for k, v in meta.items() if k in META} == META
    # A headless copy of the architecture, as transfer builds it: the classifier is dropped by the loader.
    target = timm.create_model("resnet10t", pretrained=False, num_classes=0)
    before = target.conv1[0].weight.clone()
    report = load_backbone_weights(target, out)
    assert report.ok and report.dropped == ["fc.weight", "fc.bias"]
    assert not torch.equal(before, target.conv1[0].weight)
    assert torch.equal(target.conv1[0].weight, model.conv1[0].weight)
