"""Suite-wide settings: headless plotting and quiet, deterministic CPU runs."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("PYTHONHASHSEED", "0")
# Under pytest-xdist each worker (and every process a test starts, which inherits this) gets its share of
# the cores as intra-op threads: with one worker per core a second thread only competes with the other
# worker, and OpenMP's waiting threads then spin on a busy core (a tiny Faster R-CNN fine-tuning beside
# one busy process: 32-35 s with torch's default 2 threads, 24-25 s with 1). Tests that need another
# count set it themselves; an explicit OMP_NUM_THREADS wins; one process (TEST_JOBS=0) keeps the default.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0"))
if _workers:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))


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
