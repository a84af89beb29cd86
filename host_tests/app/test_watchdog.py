"""The supervisor feeds the real (emulated) hardware watchdog only while the event loop turns."""

import mpy as mpymod

RUN = """
import asyncio, sys, time
import faults, hal
from app.supervisor import Supervisor

s = Supervisor(faults.Faults(), log=lambda *a: None, wdt_ms=400)

async def worker():
    t0 = time.ticks_ms()
    while time.ticks_diff(time.ticks_ms(), t0) < 1500:
        await asyncio.sleep_ms(10)
    if BLOCK:
        time.sleep(5)  # a driver stuck in a blocking wait: the loop stops
    print("feeds", s.feeds)
    sys.exit(0)

s.add("worker", worker)
asyncio.run(s.run())
"""


def test_watchdog_is_fed_while_the_loop_turns(mpy):
    r = mpy.run("BLOCK = False\n" + RUN, heap="128k")
    feeds = int(r.stdout.split()[-1])
    assert feeds >= 1500 // 100  # fed every 100 ms (400 ms timeout / 4)
    r = mpy.run("import hal\nprint(hal.reset_cause())", heap="128k")
    assert r.stdout.strip() == "power-on"


def test_blocked_loop_is_reset_by_the_watchdog(mpy):
    r = mpy.run("BLOCK = True\n" + RUN, heap="128k", check=False, timeout=30)
    assert r.returncode == -9, (r.returncode, r.stdout, r.stderr)
    assert "feeds" not in r.stdout
    assert "watchdog expired" in r.stderr
    # The next boot knows why it restarted.
    r = mpy.run("import hal\nprint(hal.reset_cause())", heap="128k")
    assert r.stdout.strip() == "watchdog"


def test_harness_reports_a_killed_process():
    # Guard for the assertion above: a SIGKILLed MicroPython really is -9.
    r = mpymod.run("import os\nos.system('kill -9 $PPID')\nimport time\ntime.sleep(5)", check=False, timeout=30)
    assert r.returncode == -9
