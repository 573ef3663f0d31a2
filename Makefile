# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: run test bench soak system-deps schemas lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

# What the tests need from Debian: kcat (a Kafka client that is not ours), Prometheus (promtool),
# Alertmanager and PostgreSQL with PostGIS (the archive's production database; the tests start their own server),
# docker-compose (only `docker-compose config`: the suite checks the production stack without an engine),
# stunnel4 (TLS in front of the embedded broker, which has none that works: docs/broker.md), iproute2
# (network namespaces for the network partition test).
system-deps:
	@if ! command -v kcat >/dev/null || ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null \
	  || ! command -v docker-compose >/dev/null || ! command -v stunnel4 >/dev/null || ! command -v openssl >/dev/null || ! command -v ip >/dev/null \
	  || ! ls /usr/lib/postgresql/*/bin/initdb /usr/share/postgresql/*/extension/postgis.control >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq \
	    kcat prometheus prometheus-alertmanager postgresql postgresql-postgis docker-compose stunnel4 openssl iproute2 >/dev/null; \
	fi

BENCH_STAMP := $(VENV)/.bench-$(shell sha1sum pyproject.toml | cut -c1-12)
QUICK ?=
SOAK ?=
STAGES ?=

# The benchmark harness (bench/): its own extra, never part of `make test`. QUICK=1: under 3 minutes;
# SOAK=1: only the memory run at 1,000,000 reports (~15 minutes, docs/performance-soak.md); STAGES=1:
# only the baselines and each stage alone on the full mix (~2 minutes, results file only).
$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test,bench]'
	@rm -f $(VENV)/.bench-* && touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench $(if $(QUICK),--quick,) $(if $(SOAK),--soak,) $(if $(STAGES),--stages,)

# Two replicas of each stage at a steady rate, one SIGKILLed and restarted every minute (bench/soak.py):
# memory, lag and books to bench/results/soak-*.md. Never part of `make test`. SOAK_ARGS="--minutes 10".
SOAK_ARGS ?=
soak: $(BENCH_STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

run: $(STAMP)
	$(VENV)/bin/ceasefire run --demo

test: $(STAMP) system-deps lint
	$(PY) -m pytest $(PYTEST_ARGS)

schemas: $(STAMP)
	$(PY) -m schemas.export

# ruff (with the complexity cap of 14) on the whole tree; mypy --strict on the contracts and the domain.
lint: $(STAMP)
	$(PY) -m ruff check schemas services tests deploy bench
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .state .pytest_cache .hypothesis
