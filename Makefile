# Two commands: `make run` (set up + default workflow), `make test` (set up + tests).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
TEST_STAMP := $(subst .installed-,.installed-test-,$(STAMP))
CORES  ?= 2
SNAKE  := PATH=$(abspath $(BIN)):$$PATH $(BIN)/snakemake

.PHONY: run test setup lint dry report bench clean

setup: $(STAMP)

# Idempotent: the stamp encodes pyproject.toml, so a second call installs nothing.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.installed-*
	touch $@

# The test extra (the APS viewer the export must open) only for `make test`; removed with the
# stamp above whenever pyproject.toml changes, so it is reinstalled with the new pins.
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(SNAKE) --profile profiles/default --cores $(CORES)

test: $(TEST_STAMP)
	PATH=$(abspath $(BIN)):$$PATH QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(SNAKE) --lint

dry: setup
	$(SNAKE) -n

report: setup
	$(SNAKE) --report results/report.html

bench: setup
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python benchmarks/run_all.py

clean:
	rm -rf results .snakemake
