# IHD firmware: run, test and check. A fresh clone needs only python3 and make.

# Every command here runs this checkout's host package (tools/ihd), whichever
# checkout the .venv's editable install points at (a shared venv, worktrees).
export PYTHONPATH := $(CURDIR)/tools$(if $(PYTHONPATH),:$(PYTHONPATH))
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPYCROSS_ARCH := xtensawin

.PHONY: all venv mp32 test check lint typecheck mpy-size clean

all: test

$(STAMP): requirements.txt constraints.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## make mp32: our MicroPython build from the pinned source, configured like the
## ESP32 (32-bit, single-precision, firmware frozen): build/mp32/micropython.
## MICROPY_DIR=/path/to/micropython to build from another tree.
mp32: $(STAMP)
	$(PY) tools/ihd/mp32/build.py $(if $(MICROPY_DIR),--micropython-dir $(MICROPY_DIR))

## make test: install the toolchain and build mp32 if needed, then every host
## test, each MicroPython one on both runtimes (mp32 and the pinned wheel).
## TEST_JOBS: pytest-xdist workers (whole test files per worker: a module's
## fixtures, such as one soak per protocol, run once). Many tests wait on
## simulated time rather than the CPU, so 2 workers on 2 cores cut the wall
## time. Tests marked serial (timing-sensitive under load) run alone after.
## TEST_JOBS=0 runs everything in one process.
TEST_JOBS ?= 2
test: $(STAMP) mp32 pg-server
ifeq ($(TEST_JOBS),0)
	$(BIN)/pytest -q $(PYTEST_ARGS)
else
	$(BIN)/pytest -q -n $(TEST_JOBS) --dist loadfile -m "not serial" $(PYTEST_ARGS)
	$(BIN)/pytest -q -m serial $(PYTEST_ARGS)
endif

## make check: lint, compile every firmware module for the ESP32, type-check.
check: lint mpy-size typecheck

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

mpy-size: $(STAMP)
	$(BIN)/python -m ihd.dev.mpysize --arch $(MPYCROSS_ARCH) firmware

typecheck: $(STAMP)
	$(BIN)/python -m ihd.dev.typecheck

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

## --- the whole device (ihd sim, ihd deploy, bench/) ---------------
.PHONY: run soak deploy flash bench bench-publish
BOARD ?= esp32s3_eink29
DRY_RUN ?=
SIM_ARGS ?=
_dry = $(if $(DRY_RUN),--dry-run)

# The whole MicroPython heap of the simulated device on mp32 (frozen code,
# as on an ESP32 without PSRAM, which leaves MicroPython ~100-110 KB).
HEAP ?= 96k
RUN_OUT ?= run/sim

## make run: the whole device simulated on embedded defaults (Ctrl-C stops), on mp32.
## ihd/sim/termfg.py gives the simulator the terminal, so Ctrl-C stops it in
## order and make exits with its status (else make dies of the SIGINT too).
run: $(STAMP) mp32
	$(BIN)/python -m ihd.sim.termfg $(BIN)/ihd sim run --board-defaults --hours 24 --speed 60 --heap $(HEAP) \
		--preview-every 30 --out $(RUN_OUT) $(SIM_ARGS)

## make soak: 8 simulated days and an hour on mp32 with the ESP32 board (the real hal/esp32.py on
## the emulated port modules), whole heap $(HEAP), 10% loss, a 6 h outage, 20 power cuts (about
## 6 min); the verdict also wants the history screen's 8 closed days known at the end (our own
## daily totals across the power cuts, or the meter's history attributes). The meter ran a day
## before (--meter-days 1): the display starts minutes after the first midnight, so that day is
## the meter's (a run without it knew 7 of 8: 1 January unknown, never guessed).
SOAK_BOARD ?= esp32s3_eink29
soak: $(STAMP) mp32
	$(BIN)/ihd sim run --board $(SOAK_BOARD) --hours 193 --heap $(HEAP) --loss 0.1 --outage 72:6 --power-cuts 20 \
		--speed 2000 --no-record-display --meter-days 1 --expect-history-days 8 --out build/soak $(SIM_ARGS)

## make deploy PORT=/dev/ttyACM0 [BOARD=...] [DRY_RUN=1]: mpy-cross + mpremote copy.
deploy: $(STAMP)
	@test -n "$(PORT)" || { echo "make deploy: give PORT=/dev/ttyACM0 (the board's serial port)"; exit 2; }
	$(BIN)/ihd deploy --board $(BOARD) --port $(PORT) $(_dry)

## make flash PORT=... IMAGE=firmware.bin [DRY_RUN=1]: esptool write-flash.
flash: $(STAMP)
	@test -n "$(PORT)" -a -n "$(IMAGE)" || { echo "make flash: give PORT=... and IMAGE=firmware.bin"; exit 2; }
	$(BIN)/ihd flash --board $(BOARD) --port $(PORT) --image $(IMAGE) $(_dry)

## make bench: every bench/*.py (both runtimes); one report in build/bench/report.md and .json.
## The committed figures (bench/report.*) change only with make bench-publish.
bench: $(STAMP) mp32
	$(BIN)/ihd bench --out build/bench/report
	@echo "bench: report in build/bench/report.md; make bench-publish copies it to bench/report.md (tracked)"

bench-publish:
	@test -f build/bench/report.md || { echo "make bench-publish: run make bench first"; exit 2; }
	cp build/bench/report.md build/bench/report.json bench/

## make previews: PNG previews of every screen on every panel into docs/screens/.
.PHONY: previews
previews: $(STAMP)
	$(BIN)/ihd panel previews --out docs/screens

## make chromium: Debian's Chromium and chromedriver for the support console's
## browser test (host_tests/console/test_browser.py runs this when they are missing).
.PHONY: chromium
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }


## make pg-server: Debian's PostgreSQL server binaries, installed when missing (the
## collector's PostgreSQL tests start their own throw-away server with them; make test).
## make postgres: a throw-away server in build/postgres, its URL printed
## (`make postgres-stop` ends it and removes the folder); python -m ihd.dev.pgtmp does both.
.PHONY: pg-server postgres postgres-stop
pg-server:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; }

postgres: $(STAMP) pg-server
	$(BIN)/python -m ihd.dev.pgtmp start --dir build/postgres

postgres-stop: $(STAMP)
	$(BIN)/python -m ihd.dev.pgtmp stop --dir build/postgres
