"""Suite-wide settings: headless plotting and quiet, deterministic CPU runs."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHONHASHSEED", "0")


def pytest_addoption(parser):
    parser.addoption("--reach-all", action="store_true",
                     help="fail at once when the selected tests leave a project module or tool unreached "
                          "(make test-fast: the fast selection still reaches every module)")


def pytest_collection_finish(session):
    if not session.config.getoption("--reach-all") or getattr(session.config, "workerinput", None) is not None:
        return  # checked once, by the controlling process
    import pytest
    from helpers.reach import project_modules, reached

    files = {item.path for item in session.items}
    missing = sorted(project_modules() - reached(files))
    if missing:
        raise pytest.UsageError(f"error: the selected tests reach no test of {len(missing)} module(s): "
                                f"{', '.join(missing)}; keep one of their tests out of the slow marker")
