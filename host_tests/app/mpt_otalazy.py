# app/otalazy.py: the OTA updater's modules are on the heap only while it
# has work (an update requested, or one in flight at the last reset).
import gc
import json
import sys

import faults as F
import hal
from app.otalazy import Ota

HEAP = "256k"
_KEYS = [b"\x01" * 32]


def _loaded():
    return sorted(m for m in sys.modules if m.startswith("ota.") and m != "ota.status")


def test_idle_boot_imports_no_updater_and_a_command_loads_then_drops_it():
    import asyncio  # noqa: F401  (the app has it: not the updater's)

    o = Ota(_KEYS, F.Faults())
    assert o.after_boot() == "idle"
    mods = set(sys.modules)
    gc.collect()
    before = gc.mem_alloc()
    assert _loaded() == [] and o.updater is None
    assert not o.confirm_if_healthy(True, True) and not o.rollback_due()
    assert not o.release()
    # a malformed command: refused by the updater, which is then idle
    assert o.on_command(b"{not json") != 0
    assert "ota.updater" in _loaded() and o.updater is not None
    assert o.status.reason
    assert o.release()
    assert _loaded() == [] and o.updater is None
    assert not hasattr(sys.modules["ota"], "updater")
    gc.collect()
    kept = gc.mem_alloc() - before
    print("kept after release", kept, sorted(set(sys.modules) - mods))
    if sys.maxsize < 2**32:  # mp32, frozen (the wheel compiles: its new names stay interned)
        assert kept < 512, kept
    # and loads again, as new
    assert o.on_command(b"{not json") != 0 and "ota.updater" in _loaded()


def test_update_in_flight_at_reset_loads_the_updater_and_keeps_a_trial_image():
    running = hal.running_partition().info()[4]
    rec = {"min_sv": 0, "pending": {"slot": running, "version": "9.9.9", "sv": 0, "stage": "booting"}}
    with open(hal.state_dir() + "/ota.json", "w") as f:
        f.write(json.dumps(rec))
    o = Ota(_KEYS, F.Faults())
    assert o.after_boot() == "confirming"
    assert "ota.updater" in _loaded()
    assert not o.release()  # on trial: confirmation and rollback need it
    assert not o.confirm_if_healthy(False, True)
    assert o.confirm_if_healthy(True, True) and o.status.state == "confirmed"
    assert o.release() and _loaded() == []


def test_arena_is_the_size_the_updater_carves():
    # app/otalazy.py reserves the arena at boot without importing ota/ (it
    # stays lazy); ota/updater.py carves it: a drift would raise in carve()
    # inside Updater.__init__, at boot while an image is on trial.
    from app import otalazy
    from ota import updater

    assert otalazy.ARENA_SIZE == updater.ARENA_SIZE, (otalazy.ARENA_SIZE, updater.ARENA_SIZE)
