# IHD firmware: run, test and check. A fresh clone needs only python3 and make.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPYCROSS_ARCH := xtensawin

.PHONY: all venv test check lint typecheck mpy-size clean

all: test

$(STAMP): requirements.txt constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	touch $(STAMP)

venv: $(STAMP)

## make test: install the toolchain if needed, then every host test.
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

## make check: lint, compile every firmware module for the ESP32, type-check.
check: lint mpy-size typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mpy-size: $(STAMP)
	$(BIN)/python tools/mpysize.py --arch $(MPYCROSS_ARCH) firmware

typecheck: $(STAMP)
	$(BIN)/python tools/typecheck.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
