# advdetect: the two commands of the README, and a few helpers.
#   make book [PROFILE=cpu|smoke|paper] [JOBS=2] [FORCE=1]   set up, execute the notebooks of _toc.yml whose inputs
#                                         changed (FORCE=1: all of them), JOBS at a time, then render
#   make test                             set up, unit tests, then pytest --nbval-lax notebooks/ at the smoke profile
# Set-up creates .venv if it is missing and installs the pinned requirements and the package (once per change).

PYTHON   ?= python3
VENV     ?= .venv
PROFILE  ?= cpu
JOBS     ?= 2
FORCE    ?=
PY       := $(VENV)/bin/python
STAMP    := $(VENV)/.installed
export OMP_WAIT_POLICY := PASSIVE

.PHONY: setup book execute render test unit nbval bench lab clean-cache help

help:
	@sed -n '2,5p' Makefile

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, alone and pinned, so that nothing pulls a CUDA build on a CPU-only machine
$(STAMP): requirements.txt pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

book: setup
	$(PY) -m advdetect.book all --profile $(PROFILE) --jobs $(JOBS) $(if $(FORCE),--force,)

execute: setup
	$(PY) -m advdetect.book execute --profile $(PROFILE) --jobs $(JOBS) $(if $(FORCE),--force,)

render: setup
	$(PY) -m advdetect.book render

unit: setup
	$(PY) -m pytest tests

nbval: setup
	ADVDETECT_PROFILE=smoke ADVDETECT_HEADLESS=1 TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax notebooks/

test: setup
	$(PY) -m pytest tests
	ADVDETECT_PROFILE=smoke ADVDETECT_HEADLESS=1 TQDM_DISABLE=1 $(PY) -m pytest --nbval-lax notebooks/

bench: setup
	$(PY) benchmarks/attack_throughput.py

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

clean-cache:
	rm -rf .cache/advdetect
