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


def _command(url=b"http://127.0.0.1:9/ihd.bin"):
    import struct

    return b"\x01" + struct.pack(">I32sIB", 4096, bytes(32), 0, 3) + b"1.1" + struct.pack(">H", len(url)) + url


def test_the_arena_is_the_panels_frame_and_an_update_lends_it():
    # The updater's arena is the display's frame buffer (idle while an
    # update runs), not a 4 KB buffer of its own held for good: what makes
    # room for the supplier features on the 96 KB board (test_sim_ota).
    from display import open_panel

    p = open_panel("ssd1680_296x128")
    p.show(full=True)
    assert p._known
    gc.collect()
    before = gc.mem_alloc()
    o = Ota(_KEYS, F.Faults(), p)
    gc.collect()
    held = gc.mem_alloc() - before
    assert o.arena is p.buf and held < 1024, held  # before: 4,048 B and more
    assert o.on_command(_command()) == 0 and o.busy()
    # the update writes the frame now: the panel's old image is unknown
    assert not p._known
    # a panel whose frame is too small for the arena: one of its own
    q = open_panel("ssd1680_250x122")
    o2 = Ota(_KEYS, F.Faults(), q)
    assert o2.arena is not q.buf and len(o2.arena) >= len(q.buf)


def test_a_refresh_overlapping_a_lend_leaves_the_next_one_full():
    # The display may be waiting on the glass (ashow) when an update
    # starts: the frame it then sends as the controller's old image may be
    # the updater's bytes, so that refresh must not mark the image known.
    import asyncio

    from display import open_panel

    busy = [0]
    p = open_panel("ssd1680_296x128", busy_source=lambda: 1 if busy[0] > 0 else 0)

    async def main():
        p.show(full=True)
        p.fill_rect(0, 0, 10, 10, 1)
        busy[0] = 1
        t = asyncio.create_task(p.ashow())  # a partial refresh, waiting on the glass
        await asyncio.sleep_ms(50)
        p.lend()
        busy[0] = 0
        await t

    asyncio.run(main())
    assert (p.full_refreshes, p.partial_refreshes) == (1, 1)
    p.show(full=False)  # asked partial: the old image is unknown
    assert (p.full_refreshes, p.partial_refreshes) == (2, 1)
    p.show(full=False)
    assert (p.full_refreshes, p.partial_refreshes) == (2, 2)


def test_busy_while_the_updater_is_loaded_unless_an_image_is_on_trial():
    # Set to boot (the reset seconds away) or just refused, the updater
    # still loaded: the app draws nothing then (test_sim_ota[mp32]: a
    # redraw in those seconds ran out of memory, 2 of 5 runs). Before:
    # busy() was False once the download was over.
    from ota import status as S

    o = Ota(_KEYS, F.Faults())
    assert not o.busy()
    assert o.on_command(b"{not json") != 0  # refused: the updater stays until released
    assert o.busy()
    o.status.set(S.REBOOTING, 100)
    assert o.busy() and not o.release()
    o.status.set(S.CONFIRMING, 100)  # on trial: the display draws
    assert not o.busy()
    o.status.set(S.REJECTED)
    assert o.busy() and o.release() and not o.busy()
