"""tools/setup_env.py: which stack a venv gets, and the flags that compile mmcv (CPU, or CUDA on a machine
without a GPU: one architecture, the torch wheel's CUDA library headers on the include path)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("setup_env", ROOT / "tools" / "setup_env.py")
setup_env = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setup_env)

CUDA_TORCH = {"torch": "2.14.1", "cuda": "13.0", "gpu": False, "capabilities": [], "py": "311"}


def fake_site(tmp_path: Path) -> Path:
    """A site-packages folder laid out like the torch wheel's nvidia packages."""
    headers = tmp_path / "site" / "nvidia" / "cu13" / "include"
    headers.mkdir(parents=True)
    (headers / "cusparse.h").write_text("/* cusparse */\n")
    return tmp_path / "site"


def test_cpu_build_keeps_the_existing_cache_key():
    key, build = setup_env.mmcv_build_plan({**CUDA_TORCH, "site": "/nowhere"}, {}, nvcc=False)
    assert key == "mmcv-2.1.0_torch2.14.1_py311_cpu"
    assert build["MMCV_WITH_OPS"] == "1" and "FORCE_CUDA" not in build


def test_cuda_without_a_gpu_needs_force_cuda():
    site = "/nowhere"
    key, build = setup_env.mmcv_build_plan({**CUDA_TORCH, "site": site}, {}, nvcc=True)
    assert key.endswith("_cpu") and "FORCE_CUDA" not in build
    key, build = setup_env.mmcv_build_plan({**CUDA_TORCH, "cuda": None, "site": site},
                                           {"FORCE_CUDA": "1"}, nvcc=True)
    assert key.endswith("_cpu")  # a CPU-only torch cannot build CUDA ops


def test_forced_cuda_build_for_one_architecture_adds_the_wheels_headers(tmp_path):
    site = fake_site(tmp_path)
    toolkit = tmp_path / "cuda"  # nvcc and the runtime only, as CUDA 13's slim installs are
    (toolkit / "include").mkdir(parents=True)
    environ = {"FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0", "CUDA_HOME": str(toolkit), "MAX_JOBS": "1"}
    key, build = setup_env.mmcv_build_plan({**CUDA_TORCH, "site": str(site)}, environ, nvcc=True)
    assert key == "mmcv-2.1.0_torch2.14.1_py311_cu130_sm90"
    assert build == {"MMCV_WITH_OPS": "1", "MAX_JOBS": "1", "FORCE_CUDA": "1", "TORCH_CUDA_ARCH_LIST": "9.0",
                     "CUDA_INC_PATH": str(site / "nvidia" / "cu13" / "include")}
    # A toolkit that has the headers, or a CUDA_INC_PATH the user chose, is left alone.
    (toolkit / "include" / "cusparse.h").write_text("")
    assert "CUDA_INC_PATH" not in setup_env.mmcv_build_plan({**CUDA_TORCH, "site": str(site)}, environ, True)[1]
    (toolkit / "include" / "cusparse.h").unlink()
    mine = {**environ, "CUDA_INC_PATH": "/opt/mine"}
    assert "CUDA_INC_PATH" not in setup_env.mmcv_build_plan({**CUDA_TORCH, "site": str(site)}, mine, True)[1]


def test_architectures_come_from_the_gpus_unless_set(tmp_path):
    info = {**CUDA_TORCH, "gpu": True, "capabilities": ["8.0", "9.0"], "site": str(tmp_path)}
    key, build = setup_env.mmcv_build_plan(info, {}, nvcc=True)
    assert key.endswith("_cu130_sm80-sm90") and build["TORCH_CUDA_ARCH_LIST"] == "8.0;9.0"
    key, build = setup_env.mmcv_build_plan(info, {"TORCH_CUDA_ARCH_LIST": "9.0+PTX"}, nvcc=True)
    assert key.endswith("_cu130_sm90ptx") and build["TORCH_CUDA_ARCH_LIST"] == "9.0+PTX"


def test_torchs_extension_builder_needs_the_header_folder_given():
    """The finding behind CUDA_INC_PATH: torch's include paths for CUDA name $CUDA_HOME/include only, not
    the nvidia/*/include of its own wheel; CUDA_INC_PATH is the variable torch itself reads."""
    from torch.utils import cpp_extension

    site = Path(torch.__file__).resolve().parents[1]
    headers = setup_env.wheel_headers_with(site, "cusparse.h")
    if headers is None:
        pytest.skip(f"this torch ({torch.__version__}) ships no nvidia/*/include/cusparse.h")
    paths = cpp_extension.include_paths("cuda")
    assert str(headers) not in paths
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CUDA_INC_PATH", str(headers))
        assert str(headers) in cpp_extension.include_paths("cuda")


def test_stack_choice_request_then_record_then_installed_then_default(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    none = {"mmcv": None, "mmcv-lite": None}
    assert setup_env.choose_stack(None, venv, none) == setup_env.DEFAULT_STACK
    assert setup_env.choose_stack(None, venv, {**none, "mmcv": "2.1.0"}) == "full"  # a venv from before
    assert setup_env.choose_stack(None, venv, {**none, "mmcv-lite": "2.1.0"}) == "lite"
    (venv / setup_env.STACK_FILE).write_text("lite\n")
    assert setup_env.choose_stack(None, venv, {**none, "mmcv": "2.1.0"}) == "lite"
    assert setup_env.choose_stack("full", venv, none) == "full"
    assert setup_env.stamp_inputs(venv, "lite") != setup_env.stamp_inputs(venv, "full")


def test_this_venv_has_one_mmcv_distribution():
    env = setup_env.Env(Path(sys.prefix))
    versions = setup_env.installed_mmcv(env)
    assert sum(v is not None for v in versions.values()) == 1, versions


def test_an_unknown_stack_is_one_error_line():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "setup_env.py"), "--mmcv", "tiny"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("setup_env.py: error: argument --mmcv")


def test_toolkit_home_sees_through_an_nvcc_wrapper(tmp_path):
    """torch takes dirname(dirname(which nvcc)); a wrapper script (/usr/local/bin/nvcc here) would make that
    /usr/local, without CUDA headers or libcudart. A symlinked nvcc leads to its toolkit."""
    wrapper = tmp_path / "wrap" / "bin" / "nvcc"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text("#!/bin/sh\nexec /opt/cuda/bin/nvcc \"$@\"\n")
    wrapper.chmod(0o755)
    assert setup_env.toolkit_home({"PATH": str(wrapper.parent)}, default="/opt/cuda") == "/opt/cuda"
    toolkit = tmp_path / "cuda-13.0"
    (toolkit / "bin").mkdir(parents=True)
    (toolkit / "include").mkdir()
    (toolkit / "include" / "cuda_runtime.h").write_text("")
    (toolkit / "bin" / "nvcc").write_text("")
    (toolkit / "bin" / "nvcc").chmod(0o755)
    link = tmp_path / "links" / "nvcc"
    link.parent.mkdir()
    link.symlink_to(toolkit / "bin" / "nvcc")
    assert setup_env.toolkit_home({"PATH": str(link.parent)}, default="/opt/cuda") == str(toolkit)
    key, build = setup_env.mmcv_build_plan({**CUDA_TORCH, "site": "/nowhere"},
                                           {"FORCE_CUDA": "1", "PATH": str(link.parent)}, nvcc=True)
    assert build["CUDA_HOME"] == str(toolkit) and key.endswith("_cu130_allarch")
