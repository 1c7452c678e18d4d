"""tools/train.py for pre-training: configs, --dry-run, and one clear error line for every bad input."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pretrain.cli import check, get_args_parser, load_config, train_main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs" / "pretrain"
SHIPPED = sorted(p for p in CONFIGS.glob("*.py"))
TINY = str(CONFIGS / "tiny_digits_uniform.py")


@pytest.mark.parametrize("path", SHIPPED + sorted((CONFIGS / "_base_").glob("*.py")), ids=lambda p: p.name)
def test_every_config_opens_with_a_header_and_is_valid(path):
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line)
    assert len(header) >= 3, f"{path.name}: no header comment"
    if path.parent.name != "_base_":
        text = "\n".join(header).lower()
        assert "launch" in text and "cost" in text, path.name
        check(load_config(get_args_parser().parse_args([str(path)])))


def _dry_run(capsys, *argv: str) -> str:
    assert train_main(list(argv) + ["--dry-run"]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name, cost", [("imagenet_r50_dar86_120e.py", "86.0%"), ("imagenet_r50_dar74_120e.py", "73.9%"),
                                        ("cifar10_dar63_300e.py", "62.7%"), ("imagenet_r50_uniform_120e.py", "100.0%"),
                                        ("imagenet_r50_shortened74.py", "74.2%"), ("imagenet_r50_fixed74_120e.py", "73.9%")])
def test_dry_run_prints_the_papers_costs(name, cost, capsys):
    out = _dry_run(capsys, str(CONFIGS / name))
    assert f"relative cost (samples): {cost}" in out


def test_dry_run_shows_per_epoch_fractions_and_online_flops(capsys):
    out = _dry_run(capsys, str(CONFIGS / "imagenet_r50_dar74_120e.py"))
    assert re.search(r"epochs\s+1-12: 100.00% of the data", out)
    assert re.search(r"epochs\s+19-30:  65.61% of the data", out)
    out = _dry_run(capsys, str(CONFIGS / "imagenet_r50_online_120e.py"))
    flops = float(re.search(r"relative cost \(FLOPs\):\s+([\d.]+)%", out).group(1))
    assert 110 < flops < 112  # 1 + (64/32)(1/3)(96/224)^2 on 90% of the steps


@pytest.mark.parametrize("arch", ["densenet121", "mobilenetv1", "resnet152"])
def test_other_backbones_by_one_override(arch, capsys):
    out = _dry_run(capsys, str(CONFIGS / "imagenet_r50_dar86_120e.py"), "--cfg-options", f"model.arch={arch}")
    assert "86.0%" in out


def _images(folder: Path, n: int = 3) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def _folder_options(root: Path) -> list[str]:
    return ["data.type=imagefolder", f"data.root={root}"]


def _bad_folders(tmp: Path) -> dict[str, tuple[Path, str]]:
    """name -> (data root, expected message fragment)."""
    empty = tmp / "empty"
    (empty / "train").mkdir(parents=True)
    no_images = tmp / "no_images"
    (no_images / "train" / "a").mkdir(parents=True)
    (no_images / "train" / "a" / "notes.txt").write_text("not an image")
    one_empty = tmp / "one_empty"
    _images(one_empty / "train" / "a")
    (one_empty / "train" / "b").mkdir()
    corrupt = tmp / "corrupt"
    _images(corrupt / "train" / "a")
    _images(corrupt / "val" / "a")
    (corrupt / "train" / "a" / "broken.jpg").write_bytes(b"\xff\xd8 this is no jpeg")
    return {"missing root": (tmp / "nowhere", "data root not found"),
            "no class folders": (empty, "no class folders with images"),
            "no images": (no_images, "no images under"),
            "empty class folder": (one_empty, "class folder"),
            "unreadable image": (corrupt, "unreadable image: " + str(corrupt / "train" / "a" / "broken.jpg"))}


BAD_OPTIONS = {  # name -> (tiny config, --cfg-options, expected message fragment)
    "p above 1": ("dar", ["method.keep=1.5"], "keep fraction p must be in (0, 1]"),
    "p zero": ("dar", ["method.keep=0.0"], "keep fraction p must be in (0, 1]"),
    "R not increasing": ("dar", ["method.refresh=[4,2]"], "strictly increasing"),
    "R beyond E": ("dar", ["method.refresh=[3,9]"], "refresh epochs must lie in [1, epochs=6]"),
    "pool below batch": ("online", ["method.pool_size=16"], "pool_size b̄=16 must be >= batch_size b=32"),
    "score res above train res": ("online", ["method.score_resolution=64"], "larger than the training resolution 32"),
    "unknown model": ("uniform", ["model.arch=resnet9000"], "unknown timm model name 'resnet9000'"),
    "unknown method": ("uniform", ["method.type=magic"], "method.type must be one of"),
    "budget and match": ("fixed_subset", ["method.budget=0.5"], "exactly one of"),
    "stray DaR key": ("online", ["method.keep=0.5"], "does not take keep"),
}


def _expect_one_error(capsys, argv: list[str], fragment: str, work_dir: Path) -> None:
    assert train_main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert fragment in err[0], err[0]
    assert not (work_dir / "log.jsonl").exists() and not list(work_dir.glob("*.pth"))  # nothing trained


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_bad_config_values_give_one_error_line(name, tmp_path, capsys):
    method, options, fragment = BAD_OPTIONS[name]
    config = str(CONFIGS / f"tiny_digits_{method}.py")
    _expect_one_error(capsys, [config, "--work-dir", str(tmp_path), "--cfg-options", *options], fragment, tmp_path)


def test_bad_data_gives_one_error_line_naming_it(tmp_path, capsys):
    for name, (root, fragment) in _bad_folders(tmp_path / "data").items():
        work_dir = tmp_path / name.replace(" ", "_")
        argv = [TINY, "--work-dir", str(work_dir), "--cfg-options", *_folder_options(root)]
        _expect_one_error(capsys, argv, fragment, work_dir)


def test_missing_config_and_bad_flags(tmp_path, capsys):
    _expect_one_error(capsys, [str(tmp_path / "nope.py")], "config file not found", tmp_path)
    _expect_one_error(capsys, [TINY, "--work-dir", str(tmp_path), "--checkpoint-interval", "0"],
                      "--checkpoint-interval must be >= 1", tmp_path)
    _expect_one_error(capsys, [TINY, "--work-dir", str(tmp_path), "--resume", str(tmp_path / "x.pth")],
                      "resume checkpoint not found", tmp_path)


def test_tools_train_exits_nonzero_with_one_line(tmp_path):
    """Through the real entry point in a fresh process: exit code 2, one line on stderr."""
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), TINY, "--work-dir", str(tmp_path),
                           "--cfg-options", "model.arch=resnet9000"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: unknown timm model name 'resnet9000' (did you mean "
                                                + proc.stderr.split("did you mean ")[1].strip()]


def test_an_image_folder_trains(tmp_path):
    """The ImageNet-style path end to end (two classes of random images, one step per epoch)."""
    root = tmp_path / "data"
    for split in ("train", "val"):
        for cls in ("a", "b"):
            _images(root / split / cls, 4)
    work_dir = tmp_path / "run"
    assert train_main([TINY, "--work-dir", str(work_dir), "--cfg-options", *_folder_options(root),
                       "schedule.epochs=2", "data.batch_size=8", "data.verify=full"]) == 0
    assert (work_dir / "backbone.pth").is_file()
