"""The layer tables hold: import-linter's contracts (pyproject.toml) are kept, and docs/architecture.md's
layer tables list exactly the contracts' layers, in their order."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_every_import_contract_is_kept():
    proc = lint()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"Contracts: {len(contracts())} kept, 0 broken." in proc.stdout


def test_a_reversed_layer_is_reported_broken(tmp_path):
    """The check can fail: the pretrain layers read bottom-up break on the imports of today's code."""
    layers = contracts()["pretrain layers"]["layers"]
    config = tmp_path / "reversed.toml"
    config.write_text('[tool.importlinter]\nroot_packages = ["pretrain"]\nexclude_type_checking_imports = true\n\n'
                      '[[tool.importlinter.contracts]]\nname = "reversed"\ntype = "layers"\ncontainers = ["pretrain"]\n'
                      f"layers = {list(reversed(layers))!r}\n".replace("'", '"'))
    proc = lint("--config", str(config))
    assert proc.returncode != 0 and "reversed BROKEN" in proc.stdout, proc.stdout[-2000:]


def doc_layers(section: str) -> list[set[str]]:
    """The module names of each row of the layer table under ``section`` in docs/architecture.md, top row
    first (names as the contracts write them: ``cli.py`` -> cli, ``probes/`` -> probes)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    table = part.split("### Layers and what imports what", 1)[1]
    rows = [ln for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| layer") and "---" not in ln]
    out = []
    for row in rows:
        names = re.findall(r"`([^`]+)`", row.split("|")[2])
        out.append({n.removesuffix("/").removesuffix(".py").split("/")[-1] for n in names})
    return out


@pytest.mark.parametrize("section, contract", [("Pre-training", "pretrain layers"), ("Transfer", "transfer layers")])
def test_architecture_doc_tables_are_the_contracts(section, contract):
    want = [{m.strip() for m in layer.split("|")} for layer in contracts()[contract]["layers"]]
    assert doc_layers(section) == want


def test_every_tool_imports_its_own_checkout():
    """tools/**/*.py put their checkout first on sys.path before importing a package of it, so a script runs
    the tree it lives in, not whatever tree an installed copy points at."""
    project = re.compile(r"^\s*(from|import) (dar_common|pretrain|transfer)\b", re.MULTILINE)
    missing = []
    for path in sorted((ROOT / "tools").rglob("*.py")):
        text = path.read_text()
        first = project.search(text)
        if first is None:
            continue
        depth = len(path.relative_to(ROOT).parts) - 1
        boot = text.find(f"sys.path.insert(0, str(Path(__file__).resolve().parents[{depth}]))")
        if boot < 0 or boot > first.start():
            missing.append(str(path.relative_to(ROOT)))
    assert missing == []


def test_a_tool_runs_the_checkout_it_lives_in(tmp_path):
    """A copy of tools/train.py beside a copy of the packages lists that copy's methods."""
    for part in ("tools", "dar_common", "pretrain"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pretrain" / "methods" / "zz_only_here.py").write_text(
        "from .base import SubsetMethod, register_method\n\n\n"
        "@register_method('zz_only_here')\nclass OnlyHere(SubsetMethod):\n    \"\"\"Exists only in the copy.\"\"\"\n")
    proc = subprocess.run([sys.executable, str(tmp_path / "tools" / "train.py"), "--list-methods"], cwd=tmp_path.parent,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "zz_only_here" in proc.stdout


def test_reach_follows_imports_tools_and_the_method_registry():
    """``make test-fast --reach-all``'s check: what a test file reaches, and what it does not."""
    from helpers.reach import project_modules, reached

    tests = Path(__file__).resolve().parent
    by_rs2 = reached([tests / "test_pretrain" / "test_rs2.py"])
    assert {"pretrain.methods.rs2", "pretrain.selection.rs2", "pretrain.methods"} <= by_rs2
    assert "tools/train.py" in by_rs2 and "tools/pipeline.py" not in by_rs2
    by_tool = reached([tests / "test_tools" / "test_collect_results.py"])  # runs the script only
    assert {"tools/collect_results.py", "transfer.study.results"} <= by_tool
    assert {"tools/train.py", "pretrain.cli", "transfer.mm.mmseg"} <= project_modules()
    by_data = reached([tests / "test_pretrain" / "test_data.py"])  # imports pretrain.data alone
    assert "pretrain.data" in by_data and not {m for m in by_data if m.startswith(("transfer", "tools/"))}
