# Everything runs from .venv, created on first use: a fresh machine needs only python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench bench-quick bench-compare clean

$(STAMP): pyproject.toml examples/backend-plugin/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -m pip install --quiet -e examples/backend-plugin
	touch $(STAMP)

run: $(STAMP)
	./scripts/run.sh

lint: $(STAMP)
	$(BIN)/ruff check gateway adapters tests bench examples

typecheck: $(STAMP)
	$(BIN)/mypy --strict gateway adapters examples/backend-plugin/scim_jsonfile

unit: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider

# pytest exits 5 when it collected no test: that is a failure here, as in CI.
test: lint typecheck unit

# The benchmark's own tools (chart, the peer server, profiler); wrk comes from the OS (apt-get install wrk).
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --full
	$(BIN)/python -m bench.fairness --out bench/results/fairness.json

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --quick

# The tuned hot paths of commit BASE beside the working tree: CPU per request (MODE=instr: instructions).
bench-compare: $(BENCH_STAMP)
	test -n "$(BASE)" || (echo "usage: make bench-compare BASE=<commit> [MODE=cpu|instr]" && exit 2)
	$(BIN)/python -m bench.compare $(BASE) --mode $(or $(MODE),cpu)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
