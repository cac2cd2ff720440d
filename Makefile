# minir1 — DeepSeek's claims, tested.
#
#   make book                          build the book (HTML) into _build/html
#   make test                          everything CI runs: unit tests, notebooks (smoke), book, browser
#   make chapters [PROFILE=cpu] [CHAPTER=lab] [JOBS=2] [ALLOW_DIRTY=1] [WAIT=1]   execute notebooks into book/
#   make reproduce [CHAPTER=lab] [PROFILE=cpu] [CACHE=dir] [OUT=dir]
#                                      re-execute into .artifacts/reproduce/<time>/ (cold cache
#                                      unless CACHE) and compare every metric with book/results
#   make lab                           open JupyterLab
#   make bench                         micro-benchmarks (python -m minir1.bench)
#   make gpu-check                     the gpu profile on this GPU, a few steps per chapter (<= 8 min)
#                                      -> .artifacts/gpu-check.json (plain python3 + torch; no venv)
#   make edition-tag                   tag HEAD as the newest edition in data/editions.yml (the lead, at release)
#   make clean / make clean-all        remove build outputs / also the venv and cached models
#
# Everything runs in .venv (created with python3 -m venv on first use). The install is
# skipped while .venv/.installed is newer than pyproject.toml.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP := $(VENV)/.installed
PROFILE ?= cpu
CHAPTER ?=
NBVAL_DIR := .artifacts/nbval
NOTEBOOKS := $(sort $(wildcard notebooks/*.ipynb))
CHROMIUM := /usr/bin/chromium
NBVAL_PYTEST = $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=300 \
  -p no:cacheprovider --durations=10 --junitxml=$(NBVAL_DIR)/junit.xml $(NBVAL_DIR)/*.ipynb
# Root needs no sudo (CI runs as root on a fresh Debian machine).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

export PATH := $(abspath $(BIN)):$(PATH)

step = @printf '\n\033[1m==> %s\033[0m\n' "$(1)"

.PHONY: help venv book claims test test-env test-unit test-nbval test-book test-browser \
        chromium chapters reproduce lab bench gpu-check clean clean-all edition-tag

help:
	@sed -n '3,/^#$$/p' Makefile | sed -e '$$d' -e 's/^# \{0,1\}//'

# ----------------------------------------------------------------------------- environment
$(STAMP): pyproject.toml
	$(call step,installing minir1[test] into $(VENV))
	@if [ ! -x $(PY) ]; then \
	  $(PYTHON) -m venv $(VENV) || { \
	    echo "python3 -m venv failed; installing python3-venv"; rm -rf $(VENV); \
	    $(SUDO) apt-get update && $(SUDO) apt-get install -y python3-venv && $(PYTHON) -m venv $(VENV); }; \
	fi
	$(PY) -m pip install -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y chromium; \
	fi
	@$(CHROMIUM) --version 2>/dev/null | head -1 || true

# ----------------------------------------------------------------------------- the book
claims: $(STAMP)
	$(PY) -m minir1.publish.claims
	$(PY) -m minir1.publish.ledger
	$(PY) -m minir1.publish.dashboard
	$(PY) -m minir1.publish.errata

book: claims
	$(call step,building the book (warnings are errors))
	$(BIN)/jupyter-book build . -n -W --keep-going
	@echo "Book: $(abspath _build/html/index.html)"

# The only target that writes book/chapters and book/results (see README "Running the chapters").
chapters: $(STAMP)
	$(PY) -m minir1.publish.chapters --profile $(PROFILE) $(if $(CHAPTER),--chapter $(CHAPTER)) \
	  $(if $(JOBS),--jobs $(JOBS)) $(if $(filter 1,$(ALLOW_DIRTY)),--allow-dirty) $(if $(filter 1,$(WAIT)),--wait)

# Never writes into book/: chapters and results go to OUT (default .artifacts/reproduce/<UTC time>).
CACHE ?=
OUT ?=
reproduce: $(STAMP)
	$(PY) -m minir1.publish.reproduce --profile $(PROFILE) $(if $(CHAPTER),--chapter $(CHAPTER)) \
	  $(if $(CACHE),--cache $(CACHE)) $(if $(OUT),--out $(OUT))

# Notebooks run here write their results to .artifacts/results-<profile>/, never to the book.
lab: $(STAMP)
	env -u MINIR1_PUBLISH $(BIN)/jupyter lab

bench: $(STAMP)
	$(PY) -m minir1.bench --out-dir book/results

# The device check (README "GPU edition"): runs where only python3 with torch, transformers and
# numpy is installed (no venv, no network, no papermill); never writes into the book.
gpu-check:
	PYTHONPATH=src $(if $(wildcard $(PY)),$(PY),$(PYTHON)) -m minir1.gpu_check

# An edition is tagged edition-YYYY.MM.DD (the newest entry of data/editions.yml; README "Editions").
edition-tag: $(STAMP)
	@tag=$$($(PY) -c 'from minir1.publish.errata import current_edition; print(current_edition()["tag"])'); \
	git tag -a "$$tag" -m "minir1 book, $$tag" && \
	echo "tagged $$tag at $$(git rev-parse --short HEAD); publish it with: git push origin $$tag"

# ----------------------------------------------------------------------------- tests
# Each step stops `make test` when it fails; the step names say how far it got.
test:
	@$(MAKE) --no-print-directory test-env
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-nbval
	@$(MAKE) --no-print-directory test-book
	@$(MAKE) --no-print-directory test-browser
	$(call step,all tests passed)

test-env:
	$(call step,[1/5] environment: venv + install + chromium)
	@$(MAKE) --no-print-directory $(STAMP) chromium

test-unit: $(STAMP)
	$(call step,[2/5] lint (ruff), unit and project tests)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(PY) -m pytest tests --ignore=tests/browser

# Source notebooks run in the smoke profile (results go to .artifacts/results-smoke).
test-nbval: $(STAMP)
	$(call step,[3/5] notebooks in the smoke profile (nbval))
ifeq ($(NOTEBOOKS),)
	@echo "no source notebooks in notebooks/; nothing to run"
else
	@rm -rf $(NBVAL_DIR) && mkdir -p $(NBVAL_DIR)
	@for nb in $(NOTEBOOKS); do \
	  $(BIN)/papermill --log-level WARNING --prepare-only -p profile smoke "$$nb" "$(NBVAL_DIR)/$$(basename $$nb)"; \
	done
	@# One pytest run for all notebooks; print seconds per notebook even when one fails.
	@echo '$(NBVAL_PYTEST)'; rc=0; $(NBVAL_PYTEST) || rc=$$?; \
	echo "seconds per notebook (smoke profile):"; \
	$(PY) -m minir1.publish.chapters --timing $(NBVAL_DIR)/junit.xml || true; \
	exit $$rc
endif

test-book:
	$(call step,[4/5] claims table + book build)
	@$(MAKE) --no-print-directory book

test-browser: $(STAMP)
	$(call step,[5/5] browser tests of the built book (Debian chromium))
	$(PY) -m pytest tests/browser

# ----------------------------------------------------------------------------- cleaning
clean:
	rm -rf _build book/_generated .artifacts/results-smoke .artifacts/chapters-smoke $(NBVAL_DIR) \
	  .pytest_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name .ipynb_checkpoints \) -type d \
	  -exec rm -rf {} +

clean-all: clean
	rm -rf $(VENV) .artifacts src/*.egg-info
