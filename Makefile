# `make demo` and `make test` each (re)build .venv only when pyproject.toml or a plugin package changed.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
PLUGIN_FILES := $(shell find plugins -name pyproject.toml -o -name '*.py' | grep -v egg-info)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test bench gpu-check lint clean

$(STAMP): pyproject.toml $(PLUGIN_FILES)
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test,ray]' $(foreach p,$(wildcard plugins/*/pyproject.toml),-e $(dir $(p)))
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mmzoo demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	for b in benchmarks/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

gpu-check: $(STAMP)
	$(VENV)/bin/python scripts/gpu_check.py

lint: $(STAMP)
	$(VENV)/bin/ruff check mmzoo tests plugins benchmarks scripts

clean:
	rm -rf $(VENV)
