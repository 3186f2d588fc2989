# duikou — the two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install lock demo test lint typecheck unit clean browser test-server bench-latency

# Installs are pinned by constraints.txt (the lock: every distribution of `.[dev]` at one version),
# so two machines get the same Prefect, GX and pandas. `make lock` refreshes it.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Re-resolve pyproject.toml (runtime + dev) in a fresh temporary venv, unpinned, and freeze it into constraints.txt.
LOCK_VENV := $(shell mktemp -u /tmp/duikou-lock-XXXXXX)
lock:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e ".[dev]"
	{ echo "# The lock of make install: \`make lock\` wrote it from pyproject.toml (runtime + dev)"; \
	  echo "# with $$($(LOCK_VENV)/bin/python -V) on $$(uname -sm); do not edit by hand."; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf $(LOCK_VENV)

## Generate the Danba demo returns, run the nightly flow, build the report, print headline KPIs.
demo: $(STAMP)
	$(VENV)/bin/duikou demo

## ruff + mypy + the whole pytest suite (PostgreSQL tests run when DUIKOU_TEST_POSTGRES_URL is set), on
## TEST_WORKERS processes, each taking whole test files (module fixtures run once), the longest files first
## (tests/conftest.py LONGEST_FILES; --no-loadscope-reorder keeps that order). Default: one per core plus one —
## much of the suite waits on child processes and servers it started, and a third worker on two cores
## fills that time (13 min against 22 for two, both at load average 6-8, 2026-12-07).
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: $(STAMP) lint typecheck browser
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

## Only the tests against a real Prefect server: operations e2e, the work-pool nightly and the issue-13 soak (also part of `make test`).
test-server: $(STAMP)
	$(PY) -m pytest -q -m server

## Upload-to-receipt latency through a real Prefect server, duikou serve and the intake server.
bench-latency: $(STAMP)
	$(PY) bench/latency.py

## Headless Chromium + CJK fonts for tests/report/test_report_browser.py (Debian packages; needs root when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q chromium fonts-noto-cjk)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
