# The device's report of itself: the status snapshot the display, the
# cloud and the logs share (snapshot(app)), and the status line printed
# every 10 simulated minutes with the heap after a full collection
# (print_status(app)); docs/sim.md lists the fields the simulator reads.
import gc
import json
import sys
import time

from micropython import const

import board
import hal
from meter.reading import DEV_EPOCH, ZIGBEE_EPOCH

VERSION = "1.0.0"  # this code's version: the fallback when the image names none
_running = None  # the running image's version, read once (running_version)
_QUERY_MS = const(300_000)  # store queries (today, per hour) refreshed this often
# per-task CPU in the status lines (app/taskprof.py), board.PROFILE
_PROFILE = getattr(board, "PROFILE", None)


def running_version():
    # The version in the running image's esp_app_desc_t (what ESP-IDF's
    # esp_app_get_description() returns, and what an OTA command names),
    # read once: after an update the device reports the image it runs,
    # not the constant above (the simulator's test images carry only a
    # version). Image header 24 B + first segment header 8 B, then the
    # descriptor: magic u32, secure_version u32, 8 reserved, version[32].
    global _running
    if _running is None:
        _running = VERSION
        try:
            b = bytearray(80)
            hal.running_partition().readblocks(0, b, 0)
            if b[0] == 0xE9 and b[32:36] == b"\x32\x54\xcd\xab":
                v = bytes(b[48:80]).split(b"\0")[0].decode()
                if v:
                    _running = v
        except (OSError, ValueError, UnicodeError):
            pass  # no readable image (a Unix run without one): the code's own
    return _running


def snapshot(a, history=True):
    # -> dict: what the diagnostics screen, the cloud and the logs show.
    # history=False: without the history's lists (screens other than
    # history, HEALTH reports; and always while an update runs: its modules
    # need the heap)
    now = hal.clock.ticks_ms()
    t = a.last_reading_ticks
    s = {
        "fault": a.faults.current(),
        "fault_count": len(a.faults.active()),
        "demand_w": a.last_demand,
        "last_reading_age_s": None if t is None else time.ticks_diff(now, t) // 1000,
        "utc": hal.clock.utc(),
        "clock_valid": hal.clock.valid(),
        "version": running_version(),
        "board": board.NAME,
        "build": board.NAME,
        "uptime_s": time.ticks_diff(now, a.boot_ticks) // 1000,
        "reset_cause": a.reset_cause,
        "heap_min": a.heap_min,
        "readings": a.readings,
        "bad_readings": a.bad_readings,
        "commits": a.commits,
        "faults": a.faults.active(),
        "mem_errors": a.sup.mem_errors,
        "tasks": a.sup.summary(),
        "wifi": {"connected": hal.wifi.isconnected(), "rssi": hal.wifi.rssi()},
    }
    tariff = getattr(a.link, "tariff", None)
    if a.link is not None:
        s["meter"] = a.link.status.as_dict()
    if a.store is not None:
        st = a.store
        s["store"] = st.stats()
        if hal.clock.valid():
            # Flash queries: refreshed every _QUERY_MS, not every redraw
            # (the figures move slowly; each query may decode a sector).
            q = a._query
            if q is None or time.ticks_diff(now, q[0]) >= _QUERY_MS:
                # the store keeps device seconds (meter/reading.py); its
                # epoch is a UTC midnight, so hours line up; "today" starts
                # at local midnight (the link's zone, meter/localtime.py)
                t = hal.clock.utc() - DEV_EPOCH
                z = a.link.zone
                q = a._query = (now, st.energy_since(z.midnight(z.day(t))), st.hourly_wh(t, 24))
            s["today_wh"] = q[1]
            s["hourly_wh"] = q[2]
            if tariff is not None and not tariff.seeded and tariff.day >= 0:
                # once per boot: today's energy before the link's first
                # reading, from the log (both have seen the same readings)
                tariff.seed(tariff.day, st.energy_since(a.link.zone.midnight(tariff.day)))
    if tariff is not None:
        # price (minor units per kWh), currency (symbol), standing_charge,
        # cost_today (minor units, standing charge included), ...: None
        # when unknown (meter/price.py)
        s.update(tariff.figures(a.last_demand))
    gas = getattr(a.link, "gas", None)
    if gas is not None and gas.gas is not None:
        # the gas meter's today (kWh, Wh, litres) and reading age: only with
        # one (EZSP, meter/gas.py); key absent = no gas meter
        s["gas"] = gas.figures()
    h = a.history
    if h is not None and history and not (a.ota is not None and a.ota.busy()):
        # days (today last), weeks, months: Wh and minor units, None
        # unknown (meter/history.py)
        s["history"] = h.figures()
        if h.damaged:
            s["history_damaged"] = h.damaged
    link = a.link
    if link is not None and getattr(link, "ambient", None) is not None:  # supplier=True
        # prepayment (None: not a prepay meter), the supplier's message on
        # show (None: none), ambient low/medium/high, the meter's identity
        # for support (docs/display.md); where the ambient level came from
        # is not a key (each key is heap in every snapshot and status line)
        # prepay and message only when there is one (absent = None,
        # docs/display.md): most meters have neither, and every key is heap
        p = link.prepay()
        if p is not None:
            s["prepay"] = p
        m = link.messages  # None until the meter sent one
        if m is not None:
            zb = hal.clock.utc() - ZIGBEE_EPOCH if hal.clock.valid() else None
            m = m.current(zb)
            if m is not None:
                s["message"] = m
        s["ambient"] = link.ambient.figures()[0]  # its source: link.ambient (support)
        s["identity"] = link.identity()
    u = a.uplink
    if u is not None:
        us = u.status
        s["cloud"] = {
            "endpoint": us.endpoint,
            "last_ack_age_s": us.ack_age_s(now),
            "pending": us.pending,
            "realtime": us.realtime,
            "realtime_left_s": us.realtime_left_s if us.realtime else 0,
            "bytes_up": us.bytes_up,
            "bytes_down": us.bytes_down,
            "retransmits": us.retransmits,
            "rejected": us.rejected(),
        }
    if a.display is not None:
        s["display"] = a.display.counts()
    if a.ota is not None:
        o = a.ota.status
        s["ota"] = {"state": o.state, "percent": o.percent, "version": o.version, "reason": o.reason}
    if a.cfg_errors:
        s["config_errors"] = a.cfg_errors
    return s


def print_status(a):
    # Heap in use after a full collection: what the firmware really
    # holds, so growth from day to day shows here (and in the soak test).
    gc.collect()  # the snapshot's dicts go into a collected heap (an update may hold most of it)
    s = snapshot(a)
    gc.collect()
    heap = gc.mem_alloc()
    if heap > a.heap_peak:
        a.heap_peak = heap
    s["heap"] = heap
    free = s["heap_free"] = gc.mem_free()
    if a.heap_min is None or free < a.heap_min:
        a.heap_min = free  # the low-water mark the HEALTH report carries
    s["heap_peak"] = a.heap_peak
    s["heap_code"] = a.heap_code
    if _PROFILE:
        from app import taskprof

        s["cpu"] = taskprof.snapshot()
    # Streamed, not json.dumps(): one status line is a few KB, and a
    # string that size needs a contiguous block a fragmented heap may
    # not have (this was a real MemoryError in the 7-day soak).
    out = sys.stdout
    out.write("status ")
    json.dump(s, out)
    out.write("\n")
