# The two set-up commands of the README: `make run` and `make test`.
# Both create the venv, install the package and resolve the Kafka jars themselves.
# Downloads are cached outside the repository (pip: ~/.cache/pip, Maven: ~/.m2 and
# ~/.cache/kappaml), so later runs on the same machine are fast.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.kappaml-installed

.PHONY: run test test-all setup browser prometheus lint bench chaos chaos-cluster clean reset

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	@echo "creating $(VENV) and installing kappaml's packages (first run: a few minutes; cached in ~/.cache/pip)"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -e '.[dev]' | grep -E '^(Collecting|Successfully)' || true
	@$(PY) -c 'import kappaml' && touch $(STAMP)

setup: $(STAMP) prometheus
	@[ -n "$$(ls $$HOME/.cache/kappaml 2>/dev/null)" ] || \
	  echo "resolving the Kafka and Spark connector jars with Maven (first run: a few minutes; cached in ~/.m2)"
	@$(PY) -m infra jars >/dev/null
	@$(PY) -m spark_batch jars >/dev/null

# Debian's prometheus and promtool (for `make run ARGS=--prometheus` and the metrics tests), its
# service kept from starting; where it cannot be installed the tests skip, saying why.
prometheus:
	@sh infra/install_prometheus.sh

# The browser tests drive Debian's Chromium; they skip (saying why) where it cannot be installed.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: chromium not installed; browser tests will be skipped"; }

run: setup
	$(PY) -m infra run $(ARGS)

# The tests marked slow (longer variants of tests that make test runs short) are left to test-all.
test: setup browser
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow"

test-all: setup browser
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy kappaml infra

bench: setup
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(ARGS)

# The long fault-injection run (kills, a broker restart, dropped SSE connections) and its accounting.
chaos: setup
	$(PY) -m tests.chaos.run

# Start afresh (broker data, state, logs, replays) but keep the venv and the downloads.
reset:
	-@[ -x $(PY) ] && $(PY) -m infra down
	rm -rf .kappaml

clean:
	-@[ -x $(PY) ] && $(PY) -m infra down
	rm -rf $(VENV) .kappaml .pytest_cache .ruff_cache .mypy_cache *.egg-info

# The fault-injection run on a 3-node Kafka cluster, a processor group and a Spark standalone
# cluster (tests/chaos/cluster.py); a short version runs in `make test`.
chaos-cluster: setup
	$(PY) -m tests.chaos.cluster_run $(ARGS)
