"""Everything the bare GPU machine lacks for ``bench/gpu_check.sh``, in one ignored folder (default ``.gpu``).

    python3 bench/prepare_gpu.py [--dest .gpu] [--python-version 3.12] [--timm-train /tmp/timm_train/train.py]

The GPU machine (bench/README.md, "GPU") has Python 3.12 with torch 2.11, torchvision, timm, NumPy, SciPy,
matplotlib, OpenCV (headless), Pillow, PyYAML, pytest and more, no OpenMMLab, no network. Only the working
tree plus at most 64 MiB of carried files travel there. This script fills ``DEST``:

* ``DEST/wheels``: the manylinux/pure wheels of :data:`WHEELS` for CPython ``--python-version`` (pip
  ``download --only-binary :all:``), pinned to the versions our ``.venv`` is tested with, and a wheel of
  xtcocotools built here from its source release (the registry has no wheel of it for Python >= 3.12, and its
  older wheels are built for NumPy 1) with a local interpreter of that version (``--build-python``; found on
  the PATH or under pyenv), against NumPy 2.0 (so it loads under any NumPy 2.x). Where no such interpreter
  exists, the source release goes to ``DEST/sdist`` and ``gpu_check.sh --wheels`` builds it there;
* ``DEST/timm_train/train.py``: timm's upstream ``train.py`` (not in timm's wheel; see bench/README.md), copied
  from ``--timm-train``.

It then checks that the set is complete: every run-time requirement of every wheel (markers evaluated for that
Python on Linux) is met by a wheel in the set or by a package the GPU machine has (:data:`ON_GPU_MACHINE`),
and that the folder plus the working tree stays under the 64 MiB that travel. ``gpu_check.sh --wheels
DEST/wheels`` installs the set there with ``pip install --no-index --no-deps --target``.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# what the bare machine lacks, at the versions .venv resolves (tools/setup_env.py); chumpy (mmpose's pin) is
# left out as in setup_env.py: it does not build and nothing we run imports it
WHEELS = [
    "mmengine==0.10.7", "mmcv-lite==2.1.0", "mmdet==3.3.0", "mmsegmentation==1.2.2", "mmpose==1.3.2",
    "pycocotools==2.0.11", "shapely==2.2.0", "addict==2.4.0", "yapf==0.43.0", "platformdirs==4.14.9",
    "termcolor==3.3.0", "terminaltables==3.1.10", "prettytable==3.19.0", "wcwidth==0.9.5", "ftfy==6.3.1",
    "json-tricks==3.17.3", "munkres==3.0.0",
    "setuptools==80.10.2",  # pkg_resources, which mmengine and mmpose import; setuptools >= 81 removed it
    "timm==1.0.31",  # the timm our tests and the timm train.py commit below were checked with
]
SOURCE_BUILT = "xtcocotools==1.14.3"
BUILD_NEEDS = ["numpy==2.0.2", "cython==3.1.2", "setuptools==80.10.2", "wheel==0.45.1"]
# packages the GPU machine's image has (bench/README.md, "GPU": the device tool's package list, 2026-11-17)
ON_GPU_MACHINE = {
    "torch", "torchvision", "timm", "numpy", "scipy", "matplotlib", "opencv-python-headless", "pillow", "pyyaml",
    "rich", "tqdm", "six", "regex", "scikit-learn", "packaging", "pytest", "huggingface-hub", "safetensors",
    "filelock", "fsspec", "jinja2", "networkx", "sympy", "typing-extensions", "contourpy", "cycler", "fonttools",
    "kiwisolver", "pyparsing", "python-dateutil", "markdown-it-py", "pygments", "joblib", "threadpoolctl",
    "cython", "setuptools", "wheel", "pip", "psutil", "requests", "iniconfig", "pluggy", "mdurl", "pandas",
}
# requirements whose absence is known and harmless (mmpose's chumpy: see WHEELS); opencv-python's cv2 is
# provided there by opencv-python-headless
NOT_NEEDED = {"chumpy"}
PROVIDED_AS = {"opencv-python": "opencv-python-headless"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64"]
CARRY_LIMIT = 64 * 2**20
# timm's train.py at huggingface/pytorch-image-models@2aabaef039d918d453b58714ab84562609981112
TIMM_TRAIN_SHA256 = "3a3746720652e9f85f953d1e7ba84ded0bc914b510d509713658d7c3126ae496"


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_download(args: argparse.Namespace, dest: Path, requirements: list[str]) -> None:
    """pip's own resolver for the target Python: only binary wheels for that interpreter and Linux x86-64."""
    major, minor = args.python_version.split(".")
    cmd = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps",
           "--only-binary=:all:", "--python-version", args.python_version, "--implementation", "cp",
           "--abi", f"cp{major}{minor}", "--abi", "abi3", "--abi", "none",
           *[x for p in PLATFORMS for x in ("--platform", p)], "--platform", "any", "-d", str(dest), *requirements]
    run(cmd, "pip download")


def run(cmd: list[str], what: str, **kw) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = [line for line in (proc.stderr or proc.stdout).splitlines() if not line.startswith("WARNING")][-3:]
        raise SystemExit(f"error: {what} failed (exit {proc.returncode}): {' | '.join(tail)}")


def find_build_python(version: str, given: str | None) -> str | None:
    """An interpreter of ``version`` on this machine (to build xtcocotools' extension for it), or None."""
    candidates = [given] if given else [shutil.which(f"python{version}"),
                                        *sorted(str(p) for p in Path.home().glob(f".pyenv/versions/{version}.*/bin/python"))]
    for exe in filter(None, candidates):
        proc = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                              capture_output=True, text=True)
        if proc.returncode == 0 and proc.stdout.strip() == version:
            return exe
    if given:
        raise SystemExit(f"error: --build-python {given} is not a working Python {version}")
    return None


def build_xtcocotools(args: argparse.Namespace, wheels: Path, sdist: Path) -> str:
    """A wheel of xtcocotools for the target Python, or its source release when no such Python is here."""
    exe = find_build_python(args.python_version, args.build_python)
    if exe is None:
        sdist.mkdir(parents=True, exist_ok=True)
        run([sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-deps", "--no-binary=:all:",
             "--no-build-isolation", "-d", str(sdist), SOURCE_BUILT], "pip download (xtcocotools source)")
        return f"no Python {args.python_version} here: source release in {sdist}, built by gpu_check.sh --wheels"
    with tempfile.TemporaryDirectory(prefix="xtcoco-build-") as tmp:
        needs, site = Path(tmp) / "needs", Path(tmp) / "site"
        pip_download(args, needs, BUILD_NEEDS)
        run([exe, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index", "--no-deps",
             "--target", str(site), *map(str, needs.glob("*.whl"))], "installing the build needs")
        env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin:/usr/local/bin", "HOME": str(Path.home())}
        run([exe, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps", "--no-build-isolation",
             "--no-binary=:all:", "-w", str(wheels), SOURCE_BUILT], "building xtcocotools", env=env)
    return f"built with {exe} against {BUILD_NEEDS[0]}"


def wheel_requirements(path: Path) -> tuple[str, list[str]]:
    """(name, Requires-Dist lines) from a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(zf.read(meta).decode())
    return canon(msg["Name"]), msg.get_all("Requires-Dist") or []


def missing_requirements(wheels: Path, python_version: str) -> list[str]:
    """Run-time requirements that neither the wheel set nor the GPU machine meets."""
    from pip._vendor.packaging.requirements import Requirement

    env = {"python_version": python_version, "python_full_version": python_version + ".0", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    have = {wheel_requirements(w)[0] for w in wheels.glob("*.whl")} | set(ON_GPU_MACHINE)
    missing = []
    for w in sorted(wheels.glob("*.whl")):
        name, reqs = wheel_requirements(w)
        for line in reqs:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            dep = canon(req.name)
            if dep not in NOT_NEEDED and PROVIDED_AS.get(dep, dep) not in have:
                missing.append(f"{name} needs {line}")
    return missing


def tree_bytes() -> int:
    """Bytes of the working tree that travels (tracked and untracked-not-ignored files)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, check=True).stdout
    return sum((ROOT / p).stat().st_size for p in out.decode().split("\0") if p and (ROOT / p).is_file())


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dest", type=Path, default=ROOT / ".gpu", help="folder to fill (ignored by git)")
    p.add_argument("--python-version", default="3.12", help="the GPU machine's Python (3.12)")
    p.add_argument("--build-python", help="a local interpreter of that version to build xtcocotools with")
    p.add_argument("--timm-train", type=Path, default=Path("/tmp/timm_train/train.py"),
                   help="timm's upstream train.py (bench/README.md says where to get it)")
    p.add_argument("--no-timm-train", action="store_true", help="leave timm's train.py out (vs_timm then fails)")
    return p


def main(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"3\.\d+", args.python_version):
        raise SystemExit(f"error: --python-version {args.python_version!r} is not MAJOR.MINOR, e.g. 3.12")
    if not args.no_timm_train and not args.timm_train.is_file():
        raise SystemExit(f"error: timm's train.py not found at {args.timm_train} (see bench/README.md; "
                         "--no-timm-train leaves it out)")
    wheels, sdist = args.dest / "wheels", args.dest / "sdist"
    for folder in (wheels, sdist):
        shutil.rmtree(folder, ignore_errors=True)
    wheels.mkdir(parents=True)
    print(f"[prepare_gpu] downloading {len(WHEELS)} wheels for CPython {args.python_version} ...", flush=True)
    pip_download(args, wheels, WHEELS)
    print(f"[prepare_gpu] xtcocotools: {build_xtcocotools(args, wheels, sdist)}", flush=True)
    if not args.no_timm_train:
        target = args.dest / "timm_train" / "train.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.timm_train, target)
        digest = hashlib.sha256(target.read_bytes()).hexdigest()
        note = "the commit bench/README.md names" if digest == TIMM_TRAIN_SHA256 else f"sha256 {digest[:12]}..., " \
            "not the file of the commit bench/README.md names"
        print(f"[prepare_gpu] timm's train.py: {target} ({note})")
    missing = missing_requirements(wheels, args.python_version)
    if missing:
        raise SystemExit("error: the wheel set is incomplete: " + "; ".join(missing))
    carried = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    total = carried + tree_bytes()
    print(f"[prepare_gpu] {len(list(wheels.glob('*.whl')))} wheels, every requirement met; {args.dest}: "
          f"{carried / 2**20:.1f} MiB, with the working tree {total / 2**20:.1f} MiB of the {CARRY_LIMIT // 2**20} MiB that travel")
    if total > CARRY_LIMIT:
        raise SystemExit(f"error: {total / 2**20:.1f} MiB would travel, over the {CARRY_LIMIT // 2**20} MiB limit")
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
