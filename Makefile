# Two set-up commands: `make demo` and `make test`. Both create/reuse .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMO_DIR ?= demo-work
PIP_FLAGS ?= -q --disable-pip-version-check

.PHONY: demo test bench lint clean venv install install-test check-cf

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install $(PIP_FLAGS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PY) -m pip install $(PIP_FLAGS) -e ".[dev]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(VENV)/bin/smci --workdir $(DEMO_DIR) --device cpu demo

test: install-test
	$(PY) -m pytest -q

# The small suite on CPU (JSON + markdown + PNG in benchmarks/results/). The production,
# I/O and baseline benchmarks run on the demo world when `make demo` built one, else on
# a tiny world built for the run.
bench: install
	$(VENV)/bin/smci --workdir $(DEMO_DIR) bench all --device cpu --size small \
		--out $(CURDIR)/benchmarks/results

# CF-1.8 and ACDD-1.3 check (IOOS compliance-checker) of the demo folder's first daily file
# and first SMCI1.0-layout file; fails on any error (a failed high-priority check), lists
# the warnings. Other files: make check-cf CF_FILES="a.nc b.nc".
CF_FILES ?= $(firstword $(wildcard $(DEMO_DIR)/product/1km/SMCI_1km_????????.nc)) \
	$(firstword $(wildcard $(DEMO_DIR)/product/smci1_1km/SMCI_1km_*cm.nc))
check-cf: install-test
	@test -n "$(strip $(CF_FILES))" || { echo "no product files in $(DEMO_DIR) (make demo)"; exit 1; }
	$(VENV)/bin/compliance-checker --test=cf:1.8 --test=acdd:1.3 --criteria=lenient $(CF_FILES)

lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(DEMO_DIR) .pytest_cache build *.egg-info .ruff_cache
