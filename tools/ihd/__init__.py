"""The host side of the ihd in-home display: one package, one sub-package per part.

    cli.py       the `ihd` command (pyproject.toml's console script)
    collector/   the uplink collector: UDP ingest, SQLite/PostgreSQL store, reports, support console
    sim/         the whole device simulated: processes, options, fault injection, results
    emulators/   the meter side: RAVEn/EZSP co-processor emulators, household load profiles
    uplink/      the uplink wire format and batch codec on the host (shared by collector and sim)
    ota/         signed OTA images: keys, signing, verifying, the HTTP range server
    provision/   a device's configuration, validated by the firmware's own validator
    capture/     raw co-processor captures decoded by the firmware's own parsers
    panel/       the e-ink panel emulator and its controller models
    deploy/      the firmware onto a real board (mpy-cross, mpremote, esptool)
    fleet/       sharded ingest: which collector serves which devices
    mp32/        our MicroPython: its build, the ESP32 port emulation, which runtime runs firmware
    dev/    developer tooling: static checks, fonts, benchmarks, a throw-away PostgreSQL

Firmware is never imported here: the tools run it on MicroPython (mp32/runtime.py).
"""

from __future__ import annotations

import os
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent  # tools/: the folder holding this package
ROOT = TOOLS.parent  # the checkout: firmware/, boards/, host_tests/, ...

# The tools start each other as `python -m ihd.PART` (the simulator starts the
# collector, the emulator, the proxy). Those must run this checkout's code, not
# whatever checkout the shared .venv's editable install points at, so children
# get this tools/ first on their PYTHONPATH.
_pp = os.environ.get("PYTHONPATH", "")
if _pp.split(os.pathsep)[0] != str(TOOLS):
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TOOLS), _pp) if p)
