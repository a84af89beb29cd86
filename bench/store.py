"""Bench for the reading store (firmware/store) on the MicroPython Unix port.

Simulates DAYS days of 4-second readings from a realistic household load
profile (standby noise, fridge and freezer cycles with start-up spikes,
kettle and oven spikes, lighting and TV in the evening, a washing machine
some days; summation integrated from demand, 1 Wh resolution; 2% of
intervals 5 s instead of 4) into the board's 256 KB store partition on the
emulated NOR flash, flushing every 60 s and moving the "uploaded" cursor at
every flush (the worst case for cursor records). Then runs the heap check
of host_tests/store/test_heap.py (96 KB cap, precompiled code).

Prints one JSON object:
  bytes_per_reading              flash consumed per reading, all overhead in
                                 (sector headers, record framing and CRCs,
                                 cursor records, unused sector tails)
  hours_of_4s_readings_in_256k   the fewest hours of readings the log held
                                 at any point after it first wrapped
  erases_per_sector_per_day, flash_life_years (100,000-cycle flash)
  baseline_*                     the same readings as fixed 21-byte structs
                                 (one record each, as a naive log would):
                                 measured in the same run, with ratios
  heap_*                         from the heap check

Usage: .venv/bin/python bench/store.py [--days N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "host_tests"))
sys.path.insert(0, str(ROOT / "host_tests" / "store"))

from test_heap import run_heapcheck  # noqa: E402

import mpy  # noqa: E402

SIM = r"""
import struct
import time

import hal
from store import Store

DAYS = %(days)d
T0 = 1767225600  # 2026-01-01T00:00:00Z


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) %% n


class Clock:
    ms = 0

    def ticks_ms(self):
        return self.ms


rng = Lcg(2026)


def demand(t, day):
    # household load in W at second-of-day t
    w = 75 + rng.next(13) - 6  # standby + meter noise
    m = t // 60
    # fridge: 40 min cycle, compressor on 14 min, start-up spike
    c = (t + 700) %% 2400
    if c < 840:
        w += 350 if c < 8 else 95 + rng.next(7)
    # freezer: 55 min cycle, on 20 min
    c = (t + 1900) %% 3300
    if c < 1200:
        w += 260 if c < 8 else 110 + rng.next(9)
    # kettle: 3 minutes at breakfast, lunch, tea
    for k in (7 * 3600 + 600, 13 * 3600, 17 * 3600 + 1800, 21 * 3600 + 900):
        if k <= t < k + 180:
            w += 2850 + rng.next(60)
    # oven 18:00-18:50, thermostat cycling
    if 18 * 3600 <= t < 18 * 3600 + 3000 and (t // 150) %% 2 == 0:
        w += 2000 + rng.next(40)
    # lights and TV in the evening
    if 17 * 60 <= m < 23 * 60:
        w += 140 + rng.next(5)
    if 19 * 60 <= m < 22 * 60 + 30:
        w += 95 + rng.next(11)
    # washing machine every third day at 10:00: heating, then the motor
    if day %% 3 == 0:
        if 36000 <= t < 36000 + 900:
            w += 2100 + rng.next(50)
        elif 36000 + 900 <= t < 36000 + 4500:
            w += 250 + rng.next(150)
    return w


def main():
    part = hal.partition("store")
    clk = Clock()
    st = Store(part, clock=clk, ram_size=900)
    nsect = st.log.n
    utc = T0
    wh = 0.0
    n = 0
    raw = bytearray(21)
    raw_bytes = 0
    wrapped_at = None
    min_held = None
    t_app = 0
    t_flush = 0
    while utc < T0 + DAYS * 86400:
        day = (utc - T0) // 86400
        d = demand((utc - T0) %% 86400, day)
        dt = 5 if rng.next(50) == 0 else 4
        utc += dt
        wh += d * dt / 3600
        t1 = time.ticks_us()
        seq = st.append(utc, d, 4_000_000 + int(wh), 0, 7)
        t_app += time.ticks_diff(time.ticks_us(), t1)
        struct.pack_into("<IIiIIB", raw, 0, seq, utc, d, 4_000_000 + int(wh), 0, 7)
        raw_bytes += len(raw)
        n += 1
        clk.ms = (utc - T0) * 1000
        if st.flush_due():
            st.set_cursor("uploaded", st.committed())
            t1 = time.ticks_us()
            st.flush()
            t_flush += time.ticks_diff(time.ticks_us(), t1)
            if wrapped_at is None and st.log.erases > nsect:
                wrapped_at = seq
            if wrapped_at is not None:
                held = st.committed() - st.oldest_seq() + 1
                min_held = held if min_held is None else min(min_held, held)
    st.flush()
    # a reboot on the full log, and the display's cold queries
    t1 = time.ticks_us()
    st2 = Store(part, clock=clk, ram_size=900)
    boot_us = time.ticks_diff(time.ticks_us(), t1)
    t1 = time.ticks_us()
    st2.hourly_wh(utc, 24)
    hourly_us = time.ticks_diff(time.ticks_us(), t1)
    t1 = time.ticks_us()
    st2.energy_since(utc - 18 * 3600)  # a point far back on flash
    today_us = time.ticks_diff(time.ticks_us(), t1)
    st2 = None
    log = st.log
    # every sector ever opened is consumed whole (header, records, tail),
    # except the head, which is consumed up to its end
    consumed = (log.top - 1) * 4096 + log.end[log.head]
    counts = part_counts(part, nsect)
    print("bench", {
        "readings": n,
        "consumed": consumed,
        "raw_bytes": raw_bytes,
        "min_held": min_held,
        "erases": sum(counts),
        "erase_min": min(counts),
        "erase_max": max(counts),
        "sectors": nsect,
        "days": DAYS,
        "append_us": t_app / n,
        "flush_us_per_reading": t_flush / n,
        "stats_health": st.stats()["health"],
        "boot_us": boot_us,
        "hourly_us": hourly_us,
        "today_us": today_us,
    })


def part_counts(part, nsect):
    f = hal.flash()
    first = part.offset // 4096
    return [f.erase_count(first + i) for i in range(nsect)]


main()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=7, help="simulated days (default 7)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        t = Path(tmp)
        print(f"simulating {args.days} days of 4 s readings on MicroPython...", file=sys.stderr)
        out = mpy.run(SIM % {"days": args.days}, heap="512k", state_dir=t / "sim", timeout=1800).stdout
        m = re.search(r"^bench (\{.*\})$", out, re.M)
        if not m:
            sys.exit(f"bench: no result from MicroPython:\n{out}")
        b = eval(m[1], {"__builtins__": {}})  # a MicroPython dict repr: literals only
        print("heap check under a 96 KB cap...", file=sys.stderr)
        h = run_heapcheck(t / "heap")
    n = b["readings"]
    bpr = b["consumed"] / n
    per_day = b["erases"] / b["sectors"] / b["days"]
    raw_bpr = b["raw_bytes"] / n + 8  # naive: a 21-byte struct in its own 8-byte-framed record
    result = {
        "bytes_per_reading": round(bpr, 3),
        "hours_of_4s_readings_in_256k": round(b["min_held"] * 4 / 3600, 1),
        "readings_held_min": b["min_held"],
        "erases_per_sector_per_day": round(per_day, 3),
        "flash_life_years": round(100_000 / per_day / 365, 1),
        "erase_count_spread": [b["erase_min"], b["erase_max"]],
        "baseline_bytes_per_reading": round(raw_bpr, 3),
        "ratio_vs_baseline": round(bpr / raw_bpr, 3),
        "baseline_hours_in_256k": round((b["sectors"] - 2) * 4096 / raw_bpr * 4 / 3600, 1),
        "append_us_unix": round(b["append_us"], 1),
        "flush_us_per_reading_unix": round(b["flush_us_per_reading"], 1),
        "boot_ms_full_log_unix": round(b["boot_us"] / 1000, 1),
        "hourly_wh_24h_cold_ms_unix": round(b["hourly_us"] / 1000, 1),
        "energy_since_18h_ms_unix": round(b["today_us"] / 1000, 1),
        "heap_cap": h["heap_cap"],
        "heap_store_bytes_empty_log": h["store_empty"],
        "heap_store_bytes_full_log": h["store_full"],
        "heap_stream_growth_bytes": h["stream_growth"],
        "ram_ring_readings": h["ram_size"],
        "simulated_days": b["days"],
        "readings": n,
        "health": b["stats_health"],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
