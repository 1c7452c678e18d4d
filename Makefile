# The two commands of the README, plus a few conveniences. Every target first makes sure the
# environment in .venv exists and is current (tools/setup_env.py: seconds when it already is).
# STACK=lite|full picks the OpenMMLab stack (default: the one .venv has, else lite), e.g.
#   make test STACK=full    # mmcv compiled with all its ops (20+ minutes the first time, then cached)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STACK  ?=
# pytest-xdist workers: one per core (independent tests side by side; each test's own subprocesses and
# gloo ranks are unchanged). TEST_JOBS=0 runs the suite in one process.
TEST_JOBS ?= auto
XDIST   = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist worksteal)

.PHONY: env demo test test-fast doctor lint clean-env

env:
	@$(PYTHON) tools/setup_env.py $(if $(STACK),--mmcv $(STACK))

## make demo: the main job (pre-train -> publish -> transfer -> comparison report) on the embedded data
demo: env
	@$(PY) -m transfer.mm.doctor --brief
	@$(PY) tools/pipeline.py configs/pipeline/demo.py $(ARGS)

## make test: the whole test suite (CI runs exactly this)
test: env
	@$(PY) -m pytest $(XDIST) $(ARGS)

## make test-fast: the inner loop, ~8 min on 2 cores (a fresh clone, 8 Dec 2026: 844 passed, 26 skipped in 6:18; 6:37 with the environment check): skips the tests marked slow (end-to-end runs, kill
## chains, multi-rank runs, full-size builds) and fails at once if that leaves a module or tool unreached
test-fast: env
	@$(PY) -m pytest $(XDIST) -m "not slow and not extended" --reach-all $(ARGS)

doctor: env
	@$(PY) -m transfer.mm.doctor

lint: env
	@$(VENV)/bin/ruff check .

clean-env:
	rm -rf $(VENV)
