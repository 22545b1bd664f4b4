# tf-custom-template: `make demo` bakes and trains the defaults; `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < requirements-dev.txt | cut -d' ' -f1)
DEMO := build/demo
DEMO_PROJECT := $(DEMO)/custom-tf-project
# `make test` runs a test per core, at most 4 (each holds TensorFlow processes of 1-2 GB).
JOBS ?= $(shell $(PYTHON) -c 'import os; print(min(os.cpu_count() or 1, 4))')

.PHONY: demo test test-fast lint clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

demo: $(STAMP)  ## bake the defaults into build/demo (a second run keeps that bake), install, train
	@if [ -e $(DEMO_PROJECT) ]; then \
	  echo "$(DEMO_PROJECT) exists: kept with everything made in it (rm -r $(DEMO) to bake again)"; \
	else \
	  $(BIN)/cookiecutter --no-input --output-dir $(DEMO) . ; \
	fi
	$(BIN)/python -m pip install --quiet --no-build-isolation --no-deps -e $(DEMO_PROJECT)
	cd $(DEMO_PROJECT) && $(BIN)/python -m custom_tf_project.train run_dir=runs/demo
	@echo "final metrics: $(DEMO_PROJECT)/runs/demo/final_metrics.json"
	@cat $(DEMO_PROJECT)/runs/demo/final_metrics.json
	@echo "next, from here (the demo is installed in this template's .venv):"
	@echo "  $(VENV)/bin/tensorboard --logdir $(DEMO_PROJECT)/runs"
	@echo "  cd $(DEMO_PROJECT) && $(BIN)/python -m custom_tf_project.plot run_dir=runs/demo"

test: $(STAMP)  ## the template's whole suite: bakes, hooks, and every option combination training
	$(BIN)/python -m pytest tests -n $(JOBS) --dist load --maxschedchunk 1 --durations=15

test-fast: $(STAMP)  ## bakes and hooks only, no TensorFlow run
	$(BIN)/python -m pytest tests -m "not slow" -n $(JOBS)

lint: $(STAMP)  ## the template's own code (the bakes are linted inside tests/test_bake.py)
	$(BIN)/ruff check hooks tests
	$(BIN)/ruff format --check hooks tests

clean:
	rm -rf build $(VENV)
