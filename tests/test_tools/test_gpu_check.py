"""bench/gpu_check.sh in its dry mode (the CPU run CI makes so the GPU check cannot rot), run as on the bare
GPU machine: an interpreter without the project's .venv, the OpenMMLab stack installed from
bench/prepare_gpu.py's wheels with ``pip --no-index --no-deps --target``. Also: every measurement's options
are accepted by its script, the wheel-set completeness check, and the refusal to run for real without a GPU.
The real run needs a GPU: none here."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(ROOT / "bench"))  # the bench scripts import benchlib beside them
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return module


def run_check(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT, timeout=1500,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def test_every_measurement_parses_with_the_gpu_switches_and_the_limits_fit_eight_minutes():
    gpu_check = load("gpu_check")
    parsers = {"vs_timm": load("vs_timm").get_args_parser(), "overhead": load("overhead").get_args_parser()}
    names = []
    for measurements in gpu_check.MEASUREMENTS.values():
        for name, (script, tail) in measurements.items():
            args = parsers[script].parse_args([*tail, *gpu_check.gpu_flags(), "--out", "x.json"])
            assert (args.device, args.amp, args.channels_last) == ("cuda", "bf16", True), name
            names.append(name)
    overhead = parsers["overhead"].parse_args(gpu_check.MEASUREMENTS["overhead"]["dar_online_sb_infobatch_vs_uniform"][1])
    assert set(overhead.methods) == {"dar", "online", "selective_backprop", "infobatch"}
    assert any("--compile" in tail for _, tail in gpu_check.MEASUREMENTS["vs_timm"].values())
    limits = gpu_check.LIMITS_S
    assert set(names) <= set(limits)
    finetune = limits["finetune_each"] * len(gpu_check.RECIPES)
    assert sum(v for k, v in limits.items() if k != "finetune_each") + finetune <= 8 * 60


def fake_wheel(folder: Path, name: str, requires: list[str]) -> None:
    """A minimal wheel: just the METADATA the completeness check reads."""
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: 1.0\n{}".format(name, "".join(f"Requires-Dist: {r}\n" for r in requires))
    with zipfile.ZipFile(folder / f"{name}-1.0-py3-none-any.whl", "w") as zf:
        zf.writestr(f"{name}-1.0.dist-info/METADATA", meta)


def test_the_completeness_check_names_an_unmet_requirement_and_evaluates_markers(tmp_path):
    prepare = load("prepare_gpu")
    fake_wheel(tmp_path, "alpha", ["beta_pkg>=1", "numpy", "gamma; python_version < '3.0'", "delta; extra == 'x'",
                                   "opencv-python", "chumpy"])
    assert prepare.missing_requirements(tmp_path, "3.12") == ["alpha needs beta_pkg>=1"]
    fake_wheel(tmp_path, "beta-pkg", [])
    assert prepare.missing_requirements(tmp_path, "3.12") == []


def test_wheels_option_without_wheels_stops_with_one_error_line(tmp_path):
    proc = run_check("--wheels", str(tmp_path), "--dry-run")
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith(f"error: no wheels in {tmp_path}") and proc.stderr.strip().count("\n") == 0


def bare_image(site: Path, hidden: set[str], out: Path) -> Path:
    """A folder of links to this environment's packages except the distributions in ``hidden`` (what the GPU
    machine lacks and the wheels bring) and the project's own install: the packages the bare machine has."""
    out.mkdir()
    hidden_tops = set()
    for dist in metadata.distributions(path=[str(site)]):
        name = dist.metadata["Name"].lower().replace("_", "-")
        if name in hidden or name == "dar-transfer":
            hidden_tops |= {Path(str(f)).parts[0] for f in dist.files or []}
    for entry in site.iterdir():
        if entry.name in hidden_tops or entry.suffix == ".pth" or entry.name.startswith(("__editable__", "__pycache__")):
            continue
        (out / entry.name).symlink_to(entry)
    return out


@pytest.mark.slow
def test_dry_mode_runs_from_a_wheel_target_without_the_venv_and_lists_every_measurement(tmp_path):
    prepare = load("prepare_gpu")
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    dest = tmp_path / "gpu"
    # this interpreter's version stands in for the GPU machine's 3.12 (bench/README.md: what was checked where)
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "prepare_gpu.py"), "--dest", str(dest),
                           "--python-version", version, "--build-python", sys.executable, "--no-timm-train"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "every requirement met" in proc.stdout
    names = {prepare.canon(w.split("==")[0]) for w in [*prepare.WHEELS, prepare.SOURCE_BUILT]}
    wheels = sorted(p.name for p in (dest / "wheels").glob("*.whl"))
    assert {prepare.canon(w.split("-")[0]) for w in wheels} == names
    bare = tmp_path / "bare"  # a fresh interpreter environment: no .venv, no system site-packages
    subprocess.run([sys.executable, "-m", "venv", str(bare)], check=True, timeout=300)
    image = bare_image(Path(sysconfig.get_paths()["purelib"]), names, tmp_path / "image")
    out = tmp_path / "gpu_check.json"
    env = {"PYTHON": str(bare / "bin" / "python"), "PYTHONPATH": str(image), "GPU_SITE": str(tmp_path / "site"),
           "GPU_CHECK_DRY": "1"}
    proc = run_check("--wheels", str(dest / "wheels"), "--out", str(out), env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"{len(wheels)} wheels installed into {tmp_path / 'site'}" in proc.stdout
    report = json.loads(out.read_text())
    assert report["dry"] is True and report["device"] == "cpu"
    parts = report["parts"]
    assert list(parts) == ["doctor", "ops", "vs_timm", "overhead", "finetune"]
    assert parts["doctor"]["status"] == "ok" and "--brief" in parts["doctor"]["command"]
    assert parts["doctor"]["command"][0] == str(bare / "bin" / "python")
    ops = parts["ops"]["result"]  # the CPU against itself: exactly equal
    assert ops["device"] == "cpu"
    assert all(v == 0.0 for case in ops["roi_align"].values() for v in case.values())
    assert ops["nms"]["nms_same_indices"] and ops["nms"]["batched_nms_same_indices"] and ops["nms"]["nms_kept"] > 0
    gpu_check = load("gpu_check")
    for bench in ("vs_timm", "overhead"):  # every measurement listed, none skipped for lack of options
        measurements = parts[bench]["measurements"]
        assert set(measurements) == set(gpu_check.MEASUREMENTS[bench])
        for name, record in measurements.items():
            assert record["status"] in ("dry", "skipped"), (name, record)
            assert "option" not in record.get("reason", ""), (name, record)
            assert {"--device", "cuda", "bf16", "--channels-last"} <= set(record["command"]), name
            assert name in printed_measurements(proc.stdout)
    a3 = parts["vs_timm"]["measurements"]["rsb_a3_160_bf16_channels_last"]
    assert (a3["status"] == "skipped") == (not gpu_check.A3_CONFIG.is_file())
    recipes = parts["finetune"]["recipes"]
    assert set(recipes) == {"faster_rcnn", "mask_rcnn", "retinanet", "pspnet", "simplebaseline"}
    assert all(r["status"] == "dry" and "--backbone" in r["command"] for r in recipes.values())


def printed_measurements(stdout: str) -> set[str]:
    return {line.split("/", 1)[1].split(":")[0] for line in stdout.splitlines()
            if line.startswith("[gpu_check]   ") and "/" in line.split(":")[0]}


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible: the real check would run")
def test_without_a_gpu_the_real_check_stops_with_one_error_line(tmp_path):
    out = tmp_path / "gpu_check.json"
    proc = run_check("--out", str(out), env={"GPU_CHECK_DRY": "0"})
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no GPU visible") and proc.stderr.strip().count("\n") == 0
    assert not out.exists()
