# The two commands: `make run` (the product on an embedded default) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON3 ?= python3
PORT ?= 8000

# Tests use the real services: PostgreSQL and Redis on loopback (override to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL ?= redis://127.0.0.1:6379/15

.PHONY: install install-dev browser run stop test test-fast lint format bench bench-sweep bench-history bench-load clean

# The runtime (make run); the tests' tools (pytest, schemathesis, playwright, ruff) on top for make test.
install: $(VENV)/.installed node_modules/.installed

install-dev: install $(VENV)/.installed-dev

# The `sparkdeck` command (sparkdeck_cli/) goes in editable, built by the venv's own setuptools (offline).
$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.lock
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock -r requirements-dev.lock
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

var/secret_key:
	mkdir -p var && $(PYTHON3) -c "import secrets; print(secrets.token_urlsafe(50))" > $@ && chmod 600 $@

# Plain http on 127.0.0.1: SPARKDECK_INSECURE_HTTP=1 lets login work without HTTPS (README, Settings).
run: install var/secret_key
	export DJANGO_SECRET_KEY="$$(cat var/secret_key)" SPARKDECK_INSECURE_HTTP=1; \
	$(PY) manage.py migrate --noinput -v 0 && \
	$(PY) manage.py collectstatic --noinput -v 0 && \
	$(PY) manage.py seed_demo && \
	exec $(PY) manage.py run_stack --port $(PORT)

stop:
	DJANGO_SECRET_KEY=stop $(PY) manage.py run_stack --stop

# The browser test (tests/browser) drives Debian's chromium through Playwright's Python package (no
# `playwright install`): installed here when missing. Without apt (or root) this only warns, and the
# browser test then fails saying so.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  || echo "WARNING: could not install Debian's chromium (apt-get install -y chromium, as root); the browser test will fail"

define run-pytest
	DJANGO_SECRET_KEY=collect $(PY) manage.py collectstatic --noinput -v 0
	DATABASE_URL="$(TEST_DATABASE_URL)" CELERY_BROKER_URL="$(TEST_BROKER_URL)" \
	DJANGO_SECRET_KEY=test-only-secret SPARKDECK_VAR_DIR="$(CURDIR)/var/test" SPARKDECK_INSECURE_HTTP=1 \
	$(PY) -m pytest $(PYTEST_ARGS)
endef

test: install-dev browser
	$(run-pytest)

# Everything but the real-cluster and browser tests (seconds instead of minutes; no chromium needed).
test-fast: PYTEST_ARGS = -m "not spark and not e2e and not browser"
test-fast: install-dev
	$(run-pytest)

lint: install-dev
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: install-dev
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

bench: install
	DJANGO_SECRET_KEY=bench SPARKDECK_INSECURE_HTTP=1 SPARKDECK_VAR_DIR="$(CURDIR)/var/bench" $(PY) bench/train_vs_plain.py
	DJANGO_SECRET_KEY=bench SPARKDECK_INSECURE_HTTP=1 SPARKDECK_VAR_DIR="$(CURDIR)/var/bench" $(PY) bench/accuracy.py

# Issue 7's proof: 100k runs / 10M metric points / a 10M-row prediction file in a scratch PostgreSQL
# database (created, then dropped), run table / run page / compare / prediction page timed in-process.
# BENCH_HISTORY_ARGS: --quick (1/10), --keep (keep and reuse the seeded database), --repeat N, ...
# Sweeps: 2 trials at once vs 1, ASHA vs none, tuned vs default (about 5 min; docs/performance.md "Sweeps").
bench-sweep: install
	DJANGO_SECRET_KEY=bench SPARKDECK_INSECURE_HTTP=1 SPARKDECK_VAR_DIR="$(CURDIR)/var/bench" $(PY) bench/sweep.py $(BENCH_SWEEP_ARGS)

BENCH_HISTORY_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bench_history
bench-history: install
	DJANGO_SECRET_KEY=bench SPARKDECK_INSECURE_HTTP=1 $(PY) bench/history.py --db "$(BENCH_HISTORY_DATABASE_URL)" $(BENCH_HISTORY_ARGS)

# Issue 16's load test: the real stack (a scratch PostgreSQL database, created then dropped; Celery on
# Redis; the loopback Spark cluster) with one training run and 20 queued, locust's users on the run
# table, run pages, live.json and datasets; the web server as main ran it and with webapp/gunicorn.conf.py,
# side by side. locust and py-spy live in a venv of their own (bench/requirements.txt), never the product's.
# BENCH_LOAD_ARGS: --users N, --duration S, --phases after, --rounds 2, --profile, --keep, ...
BENCH_VENV ?= var/bench-venv
BENCH_LOAD_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/bench_load
BENCH_LOAD_BROKER_URL ?= redis://127.0.0.1:6379/14
$(BENCH_VENV)/.installed: bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON3) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	touch $@
bench-load: install $(BENCH_VENV)/.installed
	DJANGO_SECRET_KEY=bench $(PY) bench/load.py --db "$(BENCH_LOAD_DATABASE_URL)" --broker "$(BENCH_LOAD_BROKER_URL)" \
	  --locust $(BENCH_VENV)/bin/locust $(BENCH_LOAD_ARGS)

clean:
	rm -rf var/test var/test-artifacts var/bench staticfiles
