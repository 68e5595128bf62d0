# `make demo` and `make test` each create .venv when missing and install the project into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint-imports system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU/CUDA torch wheels that lie on this machine's disk; pip takes them without a download.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bench run

# The architecture's rules (pyproject.toml, [tool.importlinter]) are checked before the tests.
lint-imports: $(STAMP)
	$(PY) scripts/lint_imports.py

# SLURM and Chromium for the tests that use them (installed when missing, as root; else those tests skip).
system-deps:
	bash scripts/system_deps.sh

test: lint-imports system-deps
	$(PY) -m pytest -q

# The inner loop: everything but the slow tests (subprocess kills, Ray, several processes, UI servers).
test-fast: lint-imports
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf runs .pytest_cache
