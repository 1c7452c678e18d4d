"""Create or refresh the project's environment in ``.venv`` (idempotent; used by ``make`` targets).

    python3 tools/setup_env.py [--mmcv lite|full] [--force] [--venv DIR]

``--mmcv`` picks the OpenMMLab stack (default: the one the venv already has, else ``lite``):

- ``lite``: the registry's ``mmcv-lite==2.1.0`` (mmcv's Python code, no compiled ops; a 1 MB wheel). The
  ops the recipes call (RoIAlign, NMS / batched NMS, sigmoid focal loss) come from
  :mod:`transfer.mm.mmcv_lite_ops` on torchvision's prebuilt CPU/CUDA kernels; any other mmcv op raises
  one line saying to use ``--mmcv full``. A fresh setup takes minutes and needs no compiler.
- ``full``: mmcv 2.1.0 with all its compiled ops (step 4 below; 20+ minutes the first time).

Steps (each logged to ``.venv/setup-logs/<step>.log``; a failing step stops with its name and log):

1. a virtual environment in the repo; it sees the base interpreter's packages when that already has a
   working torch/torchvision, so a cluster's own CUDA build is reused instead of downloaded again;
2. torch/torchvision: reused when importable and compatible, else ``torch==2.14.1 torchvision==0.29.1``;
3. the plain dependencies listed in ``pyproject.toml`` plus the ``dev`` extra;
4. ``lite``: mmcv-lite 2.1.0 from the registry. ``full``: mmcv 2.1.0 with compiled ops, built from the registry's source release against the installed torch
   (no build isolation, setuptools < 81, ``-std=c++20`` for torch >= 2.12), CUDA ops when ``nvcc``, a
   CUDA torch and a GPU (or ``FORCE_CUDA=1``) are present. The wheel is cached in
   ``$DAR_TRANSFER_CACHE`` (default ``~/.cache/dar-transfer``) keyed by mmcv/torch/Python/CUDA versions,
   so the 20+ minute compile happens once per machine;
5. xtcocotools from source against the venv's NumPy (the registry wheel is built for NumPy 1);
6. mmdet, mmsegmentation, mmpose without their pins (mmpose's ``chumpy`` does not build any more);
7. this project, editable.

A stamp in the venv records the inputs (this script, pyproject.toml, Python, the stack); when it matches and the
stack imports, the script only checks and exits in a few seconds.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: pip vendors the same parser
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
TORCH_PIN = ("torch==2.14.1", "torchvision==0.29.1")
MIN_TORCH = (2, 1)
MMCV_VERSION = "2.1.0"
TOOLBOXES = ("mmdet", "mmsegmentation", "mmpose")
# Handled by dedicated steps, not by the plain `pip install` of step 3.
SPECIAL = {"torch", "torchvision", "mmcv", "xtcocotools", *TOOLBOXES}
# `transfer` first: on the lite stack it provides mmcv's ops module before `mmcv.ops` is imported.
CHECK_IMPORTS = "import torch, torchvision, timm, mmengine, transfer, mmcv.ops, mmdet, mmseg, mmpose, xtcocotools, pretrain"
STACKS = ("lite", "full")
DEFAULT_STACK = "lite"  # see README "Environment": the recipes need only ops torchvision has, bit-exact
STACK_FILE = ".dar-transfer-stack"  # in the venv: the stack it was set up with


class StepError(RuntimeError):
    pass


def say(msg: str) -> None:
    print(f"[setup {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Env:
    """The venv being set up: where it is, how to run its interpreter, where its logs go."""

    def __init__(self, venv: Path):
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.logs = venv / "setup-logs"

    def run(self, step: str, args: list[str], env: dict | None = None, cwd: Path | None = None,
            progress: re.Pattern | None = None) -> None:
        """Run a command, output to the step's log; raise StepError naming the step and log on failure."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{step}.log"
        with open(log, "w") as fh:
            fh.write("$ " + " ".join(args) + "\n")
            fh.flush()
            proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)
            stop = threading.Event()
            if progress is not None:
                threading.Thread(target=_report_progress, args=(log, progress, stop), daemon=True).start()
            rc = proc.wait()
            stop.set()
        if rc != 0:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise StepError(f"step '{step}' failed (exit {rc}): {tail[0][:200]} -- full log: {log}")

    def query(self, code: str) -> str | None:
        """Output of a snippet in the venv's python, or None when it fails."""
        r = subprocess.run([str(self.python), "-c", code], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    def pip(self, step: str, *args: str, env: dict | None = None) -> None:
        self.run(step, [str(self.python), "-m", "pip", "install", "--disable-pip-version-check", *args], env=env)


def _report_progress(log: Path, pattern: re.Pattern, stop: threading.Event) -> None:
    """Every 30 s, print the newest progress marker (e.g. ninja's ``[12/77]``) and the elapsed time."""
    start = time.time()
    while not stop.wait(30):
        found = pattern.findall(log.read_text(errors="replace"))
        where = f"{found[-1]} compiled" if found else "preparing"
        say(f"  ... still building: {where}, {int(time.time() - start)} s elapsed")


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text.split("+")[0])[:3])


def stamp_inputs(venv: Path, stack: str) -> str:
    h = hashlib.sha256()
    for f in (ROOT / "pyproject.toml", Path(__file__).resolve()):
        h.update(f.read_bytes())
    h.update(sys.version.encode())
    h.update(str(venv).encode())
    h.update(stack.encode())
    return h.hexdigest()


def choose_stack(requested: str | None, venv: Path, installed: dict[str, str | None]) -> str:
    """The stack asked for; else the one the venv was set up with (recorded, or seen in the installed
    mmcv distribution: a venv made before stacks existed keeps its compiled mmcv); else the default."""
    if requested:
        return requested
    recorded = venv / STACK_FILE
    if recorded.is_file() and recorded.read_text().strip() in STACKS:
        return recorded.read_text().strip()
    if installed.get("mmcv"):
        return "full"
    if installed.get("mmcv-lite"):
        return "lite"
    return DEFAULT_STACK


def requirement_name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def project_requirements() -> tuple[list[str], dict[str, str]]:
    """(plain requirements, {name: requirement} of the specially handled ones) from pyproject.toml."""
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plain, special = [], {}
    for req in meta["dependencies"] + meta.get("optional-dependencies", {}).get("dev", []):
        name = requirement_name(req)
        (special.__setitem__(name, req) if name in SPECIAL else plain.append(req))
    return plain, special


def base_has_torch() -> bool:
    """True when the base interpreter already imports a compatible torch + torchvision with working ops."""
    code = ("import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); "
            "print(torch.__version__)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return r.returncode == 0 and version_tuple(r.stdout.strip()) >= MIN_TORCH


def step_venv(env: Env) -> None:
    if env.python.exists():
        return
    shared = base_has_torch()
    say(f"creating virtual environment {env.venv}" + (" (reusing the base interpreter's torch)" if shared else ""))
    args = [sys.executable, "-m", "venv", str(env.venv)] + (["--system-site-packages"] if shared else [])
    subprocess.run(args, check=True)


def step_torch(env: Env) -> None:
    code = ("import torch, torchvision; torchvision.ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5); "
            "print(torch.__version__)")
    found = env.query(code)
    if found and version_tuple(found) >= MIN_TORCH:
        say(f"torch {found} is importable and compatible: reusing it")
        return
    say(f"installing {' '.join(TORCH_PIN)} (several GB unless a local cache has it; ~1-2 min from cache)")
    env.pip("torch", *TORCH_PIN)


TORCH_INFO = ("import json, os, sys, torch; print(json.dumps({'torch': torch.__version__.split('+')[0], "
              "'cuda': torch.version.cuda, 'gpu': torch.cuda.is_available(), "
              "'capabilities': sorted({'%d.%d' % torch.cuda.get_device_capability(i) "
              "for i in range(torch.cuda.device_count())}), "
              "'site': os.path.dirname(os.path.dirname(torch.__file__)), "
              "'py': f'{sys.version_info[0]}{sys.version_info[1]}'}))")


def wheel_headers_with(site: Path, header: str) -> Path | None:
    """The ``include`` folder of the torch wheel's ``nvidia`` packages (e.g. ``nvidia/cu13/include``) that
    holds ``header``, or None."""
    found = sorted(site.glob(f"nvidia/*/include/{header}"))
    return found[0].parent if found else None


def mmcv_build_plan(info: dict, environ: dict[str, str], nvcc: bool) -> tuple[str, dict[str, str]]:
    """Cache key and the build variables for compiling mmcv, from the venv's torch (``info``: see
    :data:`TORCH_INFO`), the caller's environment and whether ``nvcc`` exists.

    CUDA ops need nvcc, a CUDA torch, and a GPU or ``FORCE_CUDA=1``. Their architectures are
    ``TORCH_CUDA_ARCH_LIST`` when set, else the visible GPUs'; they are part of the key, since a wheel for
    ``sm_90`` has no kernels for an ``sm_80`` GPU. torch's extension builder puts only ``$CUDA_HOME/include``
    (plus ``$CUDA_INC_PATH`` and ``$CUDNN_HOME/include``) on the include path; a toolkit holding only nvcc
    and the runtime, as CUDA 13's pip-style installs do, lacks the libraries' headers (``cusparse.h``,
    ``cublas_v2.h``) that torch's own CUDA headers include. The torch wheel's ``nvidia`` packages ship them:
    that folder becomes ``CUDA_INC_PATH`` unless the toolkit has them or the caller set it. ``CUDA_HOME`` is
    set to the toolkit (:func:`toolkit_home`) unless the caller set it."""
    build = {"MMCV_WITH_OPS": "1", "MAX_JOBS": environ.get("MAX_JOBS") or str(os.cpu_count() or 2)}
    with_cuda = bool(nvcc and info.get("cuda") and (info.get("gpu") or environ.get("FORCE_CUDA") == "1"))
    tag = "cpu"
    if with_cuda:
        build["FORCE_CUDA"] = "1"
        archs = environ.get("TORCH_CUDA_ARCH_LIST") or ";".join(info.get("capabilities") or [])
        if archs:
            build["TORCH_CUDA_ARCH_LIST"] = archs
        arch_tag = "-".join("sm" + a.replace(".", "").replace("+PTX", "ptx")
                            for a in re.split(r"[;\s]+", archs.strip()) if a) or "allarch"
        tag = f"cu{info['cuda'].replace('.', '')}_{arch_tag}"
        cuda_home = Path(environ.get("CUDA_HOME") or environ.get("CUDA_PATH") or toolkit_home(environ))
        if not (environ.get("CUDA_HOME") or environ.get("CUDA_PATH")):
            build["CUDA_HOME"] = str(cuda_home)
        headers = wheel_headers_with(Path(info["site"]), "cusparse.h")
        if not (cuda_home / "include" / "cusparse.h").exists() and headers and not environ.get("CUDA_INC_PATH"):
            build["CUDA_INC_PATH"] = str(headers)
    return f"mmcv-{MMCV_VERSION}_torch{info['torch']}_py{info['py']}_{tag}", build


def toolkit_home(environ: dict[str, str], default: str = "/usr/local/cuda") -> str:
    """The CUDA toolkit folder. torch takes ``dirname(dirname(which nvcc))``, which for a wrapper script
    such as ``/usr/local/bin/nvcc`` (``exec /usr/local/cuda-13.0/bin/nvcc``) is ``/usr/local``: no CUDA
    headers or ``libcudart`` there. Use nvcc's folder only if it is a toolkit (has ``include/cuda_runtime.h``),
    else ``default``."""
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc:
        home = Path(nvcc).resolve().parents[1]
        if (home / "include" / "cuda_runtime.h").exists():
            return str(home)
    return default


def has_nvcc(environ: dict[str, str]) -> bool:
    cuda_home = environ.get("CUDA_HOME") or environ.get("CUDA_PATH") or "/usr/local/cuda"
    return bool(shutil.which("nvcc") or (Path(cuda_home) / "bin" / "nvcc").exists())


def cache_dir() -> Path:
    base = os.environ.get("DAR_TRANSFER_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dar-transfer"
    return Path(base)


def installed_mmcv(env: Env) -> dict[str, str | None]:
    """Versions of the two distributions that provide the ``mmcv`` package (None: not installed)."""
    code = ("import json; from importlib import metadata as m\n"
            "def v(n):\n try: return m.version(n)\n except m.PackageNotFoundError: return None\n"
            "print(json.dumps({n: v(n) for n in ('mmcv', 'mmcv-lite')}))")
    return json.loads(env.query(code) or '{"mmcv": null, "mmcv-lite": null}')


def step_mmcv(env: Env, stack: str) -> None:
    """Install the stack's mmcv; the other distribution goes first (both own the ``mmcv`` folder)."""
    wanted, other = ("mmcv-lite", "mmcv") if stack == "lite" else ("mmcv", "mmcv-lite")
    versions = installed_mmcv(env)
    if versions[other] is not None:
        say(f"removing {other} {versions[other]} (switching to the {stack} stack)")
        env.run("mmcv-uninstall", [str(env.python), "-m", "pip", "uninstall", "-y", other])
    elif versions[wanted] == MMCV_VERSION and (
            stack == "lite" or env.query("import mmcv._ext") is not None):
        say(f"{wanted} {MMCV_VERSION} already installed")
        return
    if stack == "lite":
        say(f"installing mmcv-lite {MMCV_VERSION} (no compiled ops; the recipes' ops come from torchvision)")
        env.pip("mmcv-install", "--force-reinstall", "--no-deps", f"mmcv-lite=={MMCV_VERSION}")
        return
    info = json.loads(env.query(TORCH_INFO) or "{}")
    key, build_vars = mmcv_build_plan(info, dict(os.environ), has_nvcc(dict(os.environ)))
    cached = cache_dir() / "wheels" / key
    wheels = sorted(cached.glob("mmcv-*.whl")) if cached.is_dir() else []
    if not wheels:
        _build_mmcv(env, cached, build_vars)
        wheels = sorted(cached.glob("mmcv-*.whl"))
    else:
        say(f"using cached mmcv wheel {wheels[-1]}")
    env.pip("mmcv-install", "--no-deps", "--force-reinstall", str(wheels[-1]))


def _build_mmcv(env: Env, cached: Path, build_vars: dict[str, str]) -> None:
    torch_version = version_tuple(env.query("import torch; print(torch.__version__)") or "0")
    cxx_std = "c++20" if torch_version >= (2, 12) else "c++17"
    with_cuda = build_vars.get("FORCE_CUDA") == "1"
    what = f"CUDA ops for {build_vars.get('TORCH_CUDA_ARCH_LIST', 'every architecture torch knows')}" if with_cuda else "CPU ops"
    say(f"compiling mmcv {MMCV_VERSION} with {what}, -std={cxx_std}, {build_vars['MAX_JOBS']} jobs "
        f"(one-time, 20+ minutes on 2 cores for CPU ops, hours for CUDA; cached afterwards in {cached})")
    if "CUDA_INC_PATH" in build_vars:
        say(f"  CUDA library headers from the torch wheel: {build_vars['CUDA_INC_PATH']}")
    env.pip("mmcv-build-deps", "setuptools<81", "wheel", "ninja", "packaging")
    with tempfile.TemporaryDirectory(prefix="mmcv-build-") as tmp:
        tmp = Path(tmp)
        env.run("mmcv-download", [str(env.python), "-m", "pip", "download", "--no-deps", "--no-binary", "mmcv",
                                  "--no-build-isolation", "-d", str(tmp), f"mmcv=={MMCV_VERSION}"])
        sdist = next(tmp.glob("mmcv-*.tar.gz"))
        with tarfile.open(sdist) as tar:
            try:
                tar.extractall(tmp, filter="data")
            except TypeError:  # Python < 3.10.12 has no extraction filters
                tar.extractall(tmp)
        src = tmp / f"mmcv-{MMCV_VERSION}"
        setup_py = src / "setup.py"
        # torch >= 2.12 headers refuse C++17; mmcv 2.1.0 hard-codes -std=c++14/17 in its setup.py.
        setup_py.write_text(re.sub(r"-std=c\+\+1[47]", f"-std={cxx_std}", setup_py.read_text()))
        build_env = dict(os.environ, **build_vars)
        out = tmp / "wheel"
        env.run("mmcv-build", [str(env.python), "-m", "pip", "wheel", "-v", "--no-build-isolation", "--no-deps",
                               "-w", str(out), str(src)], env=build_env, progress=re.compile(r"\[\d+/\d+\]"))
        wheel = next(out.glob("mmcv-*.whl"))
        cached.mkdir(parents=True, exist_ok=True)
        partial = cached / (wheel.name + ".partial")
        shutil.copy2(wheel, partial)
        os.replace(partial, cached / wheel.name)  # atomic: a killed copy never looks like a cached wheel
    say(f"mmcv wheel cached: {cached / wheel.name}")


def step_xtcocotools(env: Env, requirement: str) -> None:
    if env.query("from xtcocotools.cocoeval import COCOeval") is not None:
        return
    say("building xtcocotools from source (NumPy 2)")
    # Its setup.py imports numpy before declaring any build requirement, so an isolated build env (which
    # has only setuptools) fails; build against the venv's numpy instead, with Cython added.
    env.pip("xtcocotools-build-deps", "cython")
    env.pip("xtcocotools", "--no-build-isolation", "--no-binary", "xtcocotools", requirement)


def step_mmcv_ext_hook(env: Env) -> Path | None:
    """On the lite stack, a ``.pth`` in the venv's site-packages that puts transfer/mm/ext_finder.py's
    ``mmcv._ext`` finder on ``sys.meta_path`` at every start, so the toolboxes' own tools and upstream
    models find the lite ops without importing ``transfer`` first; removed on the full stack. Idempotent,
    run on every setup (also when the rest is up to date). Returns the file written, if any."""
    site = env.query("import sysconfig; print(sysconfig.get_paths()['purelib'])")
    if site is None:
        raise StepError("step 'mmcv-ext-hook' failed: the venv's python does not start")
    finder = ROOT / "transfer" / "mm" / "ext_finder.py"
    namespace: dict = {"__name__": "ext_finder"}
    exec(compile(finder.read_text(), str(finder), "exec"), namespace)  # its pth_line, without importing transfer
    pth = Path(site) / namespace["PTH_NAME"]
    if installed_mmcv(env).get("mmcv") is not None:  # the full stack has the compiled mmcv._ext
        pth.unlink(missing_ok=True)
        return None
    line = namespace["pth_line"](str(finder))
    if not pth.is_file() or pth.read_text() != line:
        pth.write_text(line)
    return pth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv")
    parser.add_argument("--mmcv", choices=STACKS, default=None,
                        help="lite: mmcv-lite + the project's torchvision-backed ops, no compiler (minutes); "
                             "full: mmcv compiled with all its ops (20+ minutes once, then cached). "
                             f"Default: the venv's current stack, else {DEFAULT_STACK}")
    parser.add_argument("--force", action="store_true", help="re-run every step even if the stamp matches")
    args = parser.parse_args(argv)
    if sys.version_info < (3, 10):  # noqa: UP036  (runs under whatever python3 the user has)
        print("error: Python >= 3.10 is required", file=sys.stderr)
        return 1
    env = Env(args.venv.resolve())
    stack = choose_stack(args.mmcv, env.venv, installed_mmcv(env) if env.python.exists() else {})
    stamp = env.venv / ".dar-transfer-stamp"
    inputs = stamp_inputs(env.venv, stack)
    if (not args.force and stamp.exists() and stamp.read_text() == inputs
            and env.query(CHECK_IMPORTS) is not None):
        try:
            step_mmcv_ext_hook(env)
        except StepError as exc:
            print(f"error: setup {exc}", file=sys.stderr)
            return 1
        say(f"environment {env.venv} ({stack} stack) is up to date")
        return 0
    t0 = time.time()
    say(f"setting up {env.venv} with the {stack} OpenMMLab stack")
    try:
        step_venv(env)
        step_torch(env)
        plain, special = project_requirements()
        say(f"installing {len(plain)} plain dependencies from pyproject.toml")
        env.pip("dependencies", *plain)
        step_mmcv(env, stack)
        step_xtcocotools(env, special["xtcocotools"])
        say("installing mmdet, mmsegmentation, mmpose (without their pins)")
        env.pip("toolboxes", "--no-deps", *(special[name] for name in TOOLBOXES))
        env.pip("project", "--no-deps", "-e", str(ROOT))
        step_mmcv_ext_hook(env)
        if env.query(CHECK_IMPORTS) is None:
            raise StepError(f"step 'check' failed: the stack does not import ({CHECK_IMPORTS})")
    except StepError as exc:
        print(f"error: setup {exc}", file=sys.stderr)
        return 1
    (env.venv / STACK_FILE).write_text(stack + "\n")
    stamp.write_text(inputs)
    say(f"environment ({stack} stack) ready in {time.time() - t0:.0f} s: {env.venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
