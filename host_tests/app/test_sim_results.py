"""tools/ihd/sim/results.py committed_vs_stored and verdict(): the checks the soak relies on can fail.

A store written by the firmware on MicroPython (its emulated NOR flash file),
a collector table holding the same readings, then the table is altered: a
value changed, a row removed. The checker, reading the flash back with the
firmware's own store, must see the difference and the gap, and the sim's
verdict must fail on them.
"""

import os
import sqlite3
import subprocess
import sys
import threading

import mpy as mpymod

ROOT = mpymod.ROOT
sys.path.insert(0, str(ROOT / "tools"))

from ihd.mp32 import runtime as mpruntime  # noqa: E402
from ihd.sim import proc as simproc  # noqa: E402
from ihd.sim.results import Results  # noqa: E402

N = 300
DEV_EPOCH = 1704067200  # meter/reading.py: readings carry seconds since 2024-01-01
WRITE = f"""
import hal
from store import Store
st = Store(hal.partition('store'))
for i in range({N}):
    st.append({1767225600 - DEV_EPOCH} + 7 * i, 100 + i % 37, 5000 + i // 9, i // 50, 2 | (4 if i % 9 == 0 else 0))
    if i % 64 == 63:
        st.flush()
st.flush()
print(st.committed())
"""


def test_committed_vs_stored_sees_a_changed_value_and_a_missing_row(tmp_path):
    rt = mpruntime.default_name()  # this test's runtime (IHD_MICROPYTHON)
    tree = simproc.build_tree(tmp_path / "firmware") if rt == "wheel" else None
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ, MICROPYPATH=simproc.sim_path(rt, "unix", tree), IHD_STATE=str(state))
    cmd = simproc.firmware_cmd(None, 1 << 20, code=WRITE, runtime=rt)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.split() == [str(N)], r.stdout + r.stderr

    db = tmp_path / "collector.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE readings (device_id INTEGER, seq INTEGER, utc_s INTEGER, demand_w INTEGER,"
        " delivered_wh INTEGER, received_wh INTEGER, flags INTEGER)"
    )
    # the gas meter's readings have their own table (schema 6): none here
    con.execute(
        "CREATE TABLE gas (device_id INTEGER, epoch INTEGER, seq INTEGER, utc_s INTEGER, demand INTEGER,"
        " delivered INTEGER, flags INTEGER, received_at REAL)"
    )
    # The collector's rows, written independently of the firmware's reader.
    for i in range(N):
        row = (4097, i + 1, 1767225600 + 7 * i, 100 + i % 37, 5000 + i // 9, i // 50, 2 | (4 if i % 9 == 0 else 0))
        con.execute("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", row)
    con.commit()

    res = Results()
    res.tree, res.state, res.db, res.device_id, res.runtime = tree, state, db, 4097, rt
    res.lock, res.commits = threading.Lock(), [(1, 200), (201, N)]
    c = res.committed_vs_stored()
    assert c["on_flash"] == c["compared"] == N and c["oldest_on_flash"] == 1, c
    assert c["differ"] == 0 and c["missing_at_collector"] == 0 and c["commit_lines_not_on_flash"] == 0, c

    con.execute("UPDATE readings SET demand_w = demand_w + 1 WHERE seq = 123")
    con.execute("DELETE FROM readings WHERE seq = 250")
    con.commit()
    con.close()
    c = res.committed_vs_stored()
    assert c["differ"] == 1 and c["missing_at_collector"] == 1 and c["compared"] == N - 1, c
    assert c["examples"][0][0][0] == 123 and ["missing", 250] in c["examples"], c

    # the verdict fails on it, even with everything else in order
    summary = {"memory_errors": 0, "crashes": 0, "watchdog_resets": 0, "aborted": None, "readings_lost": 0}
    summary |= {"readings_never_sent": 0, "heap_growth": 0, "data_heap_peak": 1, "data_heap_budget": 2}
    res.out = tmp_path
    res.summary = lambda: summary | {"committed_vs_stored": c}
    assert res.verdict() == 1
    # a run cut short (Ctrl-C) may leave readings unsent on flash, never changed
    res.summary = lambda: summary | {"committed_vs_stored": c | {"differ": 0}, "interrupted": True}
    assert res.verdict() == 0
    res.summary = lambda: summary | {"committed_vs_stored": c | {"differ": 0}}
    assert res.verdict() == 1
    res.summary = lambda: summary | {"committed_vs_stored": c, "interrupted": True}
    assert res.verdict() == 1
    good = summary | {"committed_vs_stored": c | {"differ": 0, "missing_at_collector": 0}}
    res.summary = lambda: good
    assert res.verdict() == 0
    # and on the heap: growth past 2 KB, or data reaching its budget
    res.summary = lambda: good | {"heap_growth": 4096}
    assert res.verdict() == 1
    res.summary = lambda: good | {"data_heap_peak": 2}
    assert res.verdict() == 1
    # make soak's --expect-history-days 8: fewer closed days known fail it
    import argparse

    res.a = argparse.Namespace(expect_history_days=8)
    for days, want in ((8, 0), (7, 1), (None, 1)):
        res.summary = lambda d=days: good | {"history_days": d}
        assert res.verdict() == want, days


def test_previews_show_the_running_boot_only(tmp_path):
    # After a reboot (the `u` OTA demo, a power cut) the new boot records the
    # panel afresh. Before, display.png kept the previous boot's last frame
    # and DIR/display/ its refreshes until the new boot drew (refresh
    # numbering restarts, so the old boot's higher-numbered frames stayed).
    from PIL import Image

    out, state = tmp_path / "run", tmp_path / "run" / "state"
    (out / "display").mkdir(parents=True)
    state.mkdir()
    old = Image.new("L", (296, 128), 0)  # the previous boot's frames: black
    for i in range(1, 6):
        old.save(out / "display" / f"refresh{i}.png")
    old.save(out / "display.png")
    res = Results()
    res.out, res.state, res.render_lock = out, state, threading.Lock()
    res.shots_boot, res.boots = 1, 2  # boot 2 has started and drawn nothing yet
    res.render_display()
    assert not list((out / "display").glob("refresh*.png"))
    shown = Image.open(out / "display.png").convert("L")
    white = sum(shown.histogram()[128:])
    assert white > 0.9 * 296 * 128, "the previous boot's frame is still the preview"
    assert shown.getextrema()[0] < 128  # and the placeholder says something


def test_heap_growth_sees_a_leak_not_a_swing():
    # per boot, the floor of the last quarter minus the first: a buffer alive
    # at some status lines swings the heap by ~2.3 KB (RAVEn wheel soak:
    # 180,800 / 183,040), which the old max-of-quarter read as 2,240 B growth
    from ihd.sim import results as simresults

    swing = [180800, 183040] * 8
    leak = [180800 + 300 * i for i in range(16)]
    fresh_boot = [170000] * 10  # another boot, another baseline
    assert simresults.heap_growth([(0, h, 1) for h in swing] + [(0, h, 2) for h in fresh_boot]) == 0
    assert simresults.heap_growth([(0, h, 1) for h in leak]) == 300 * 12
    assert simresults.heap_growth([(0, h, 1) for h in leak[:7]]) is None  # too short to judge
    # a short boot (9 samples) whose last two both caught the swing: the
    # windows are 4 samples, not a quarter of 9 (CI: 2,272 B with 2)
    short = [194752, 198208, 198304, 197120, 198304, 194848, 199424, 198300, 197000]
    assert simresults.heap_growth([(0, h, 1) for h in short]) == 96
