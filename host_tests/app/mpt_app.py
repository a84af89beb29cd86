# app/app.py on MicroPython: boot without a usable configuration.
import asyncio

import faults as F
import hal
from app import app, config

HEAP = "512k"
TIMEOUT = 120


def _write(text):
    with open(hal.state_dir() + "/config.json", "w") as f:
        f.write(text)


def test_bad_config_is_shown_and_nothing_else_runs():
    import json

    import board

    d = dict(board.DEFAULT_CONFIG)
    d["device_id"] = 0
    _write(json.dumps(d))
    a = app.boot()
    assert a.cfg is None
    assert a.faults.current()[0] == F.CONFIG_BAD and a.faults.current()[1] == "C02"
    s = a.snapshot()
    assert s["fault"][1] == "C02"
    assert "device_id: 0 out of range 1..4294967295" in s["config_errors"]
    assert a.link is None and a.uplink is None and a.store is None
    a.add_tasks()
    assert [t[0] for t in a.sup.summary()] == ["config", "display", "status"]
    # The display draws the diagnostics screen with the fault's sentence.
    from display import screens

    a.display.screen = screens.DIAG
    a.display.update(s, 0)
    drawn = bytes(a.display.panel.buf)
    screens.diag(a.display.panel, s)
    assert bytes(a.display.panel.buf) == drawn and len(set(drawn)) > 1


def test_missing_config_on_a_board_without_defaults():
    import board

    del board.DEFAULT_CONFIG  # as on the ESP32 board
    a = app.boot()
    assert a.faults.current()[1] == "C01"
    assert a.snapshot()["config_errors"][0].startswith("config: no ")


def test_provisioning_a_valid_config_restarts_into_it():
    import board

    _write("not json")
    a = app.boot()
    assert a.faults.current()[1] == "C02"
    hal.clock.speed = 10_000  # the 30 s re-check passes in 3 ms
    d = dict(board.DEFAULT_CONFIG)
    import json

    _write(json.dumps(d))
    try:
        asyncio.run(a.config_watch())
        assert False, "no restart"
    except SystemExit as e:
        assert e.args[0] == hal.RESET_EXIT
    assert hal.reset_cause() == "config"
    assert config.load().device_id == d["device_id"]


def test_watchdog_reset_is_reported_at_boot():
    from hal import unix

    unix._note_cause("watchdog")
    a = app.boot()
    assert a.faults.is_active(F.WATCHDOG_RESET)
    assert a.reset_cause == "watchdog"
