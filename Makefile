# duikou — the two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit clean browser test-server bench-latency

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

## Generate the Danba demo returns, run the nightly flow, build the report, print headline KPIs.
demo: $(STAMP)
	$(VENV)/bin/duikou demo

## ruff + mypy + the whole pytest suite (PostgreSQL tests run when DUIKOU_TEST_POSTGRES_URL is set).
test: $(STAMP) lint typecheck browser
	$(PY) -m pytest -q

## Only the tests against a real Prefect server: operations e2e, the work-pool nightly and the issue-13 soak (also part of `make test`).
test-server: $(STAMP)
	$(PY) -m pytest -q -m server

## Upload-to-receipt latency through a real Prefect server, duikou serve and the intake server.
bench-latency: $(STAMP)
	$(PY) bench/latency.py

## Headless Chromium + CJK fonts for tests/test_report_browser.py (Debian packages; needs root when missing).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q chromium fonts-noto-cjk)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

clean:
	rm -rf data .pytest_cache .mypy_cache .ruff_cache
