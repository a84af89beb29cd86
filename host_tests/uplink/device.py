# A device on the Unix port for the uplink tests and bench: a synthetic meter
# (one reading every UPL_INTERVAL device seconds, or the readings of a CSV
# file) feeding the store and the uplink, for UPL_RUN_S device seconds.
# Env: UPL_DEV, UPL_KEY (hex), UPL_EPS ("host:port,..."), UPL_RUN_S,
# UPL_DRAIN=1 (then keep running until everything stored is acknowledged),
# UPL_KA, UPL_MAXAGE (seconds), UPL_INTERVAL, UPL_FLUSH (readings per flush),
# UPL_CSV (file of utc_s,demand_w[,delivered_wh,received_wh,flags] rows to
# replay at their own times). The store is the real one (firmware/store) on
# the emulated flash of IHD_STATE, so a new process is a reboot.
# Prints "status {json}" at the end; UPL_DUMP=1 also prints every stored
# reading as "r seq,utc,demand,delivered,received,flags"; UPL_RTLOG=1 prints
# "rt seq unix_time" for each reading handed to the uplink in real-time mode.
# Always printed: "uplink_heap N" (bytes the Uplink object took) and, every
# device hour, "heap N" (bytes allocated after a collection); "heard_s N" the
# first time an authentic reply came (device seconds after boot). Commands
# other than real-time are logged as "cmd KIND PAYLOADHEX" when run;
# UPL_CMD_EXIT=HEX makes the device stop dead (a power cut) inside the
# handler of the command with that payload. UPL_DRAIN_S bounds the drain.
# HEALTH reports (uplink/health.py) from a small snapshot (version
# "9.8.7-test", build "testdev", reset cause "watchdog", the store's stats,
# the fault set); UPL_FAULTS="S:N,S:-N" sets (clears, with -) fault N at
# device second S; UPL_NO_HEALTH=1: no reports.
import asyncio
import binascii
import gc
import json
import os
import sys
import time

import hal
from meter.reading import DEV_EPOCH
from uplink.uplink import Uplink


def env(name, default=None):
    v = os.getenv(name)
    return default if v is None or v == "" else v


def open_store():
    from store import Store

    return Store(hal.partition("store"), clock=hal.clock)


def synthetic(utc, state):
    # Deterministic load: base + fridge cycle + a kettle now and then.
    dem = 180 + (utc * 7919 % 13) + (90 if (utc // 1200) % 3 else 0) + (2200 if utc % 5400 < 180 else 0)
    state[0] += dem * 3
    state[1] += state[0] // 3600
    state[0] %= 3600
    return dem, state[1], 0, 1 | 2 | 4


class CsvFeed:
    def __init__(self, path):
        self.f = open(path)
        self.f.readline()  # header

    def next(self):
        line = self.f.readline()
        if not line:
            return None
        return [int(x) for x in line.split(",")]


async def meter(store, up, interval, flush_every):
    clock = hal.clock
    state = [0, 100000]
    feed = CsvFeed(env("UPL_CSV")) if env("UPL_CSV") else None
    n = 0
    row = None
    rtlog = env("UPL_RTLOG")
    while True:
        if feed is not None:
            row = feed.next()
            if row is None:
                return
            utc = row[0]
        else:
            utc = (clock.utc() // interval + 1) * interval
        wait = (utc - clock.utc()) * 1000
        if wait > 0:
            await asyncio.sleep_ms(clock.real_ms(wait))
        if feed is not None:
            dem = row[1]
            dl = row[2] if len(row) > 2 else 0
            rc = row[3] if len(row) > 3 else 0
            fl = row[4] if len(row) > 4 else 7
        else:
            dem, dl, rc, fl = synthetic(utc, state)
        t_s = utc - DEV_EPOCH  # readings carry device seconds (meter/reading.py)
        seq = store.append(t_s, dem, dl, rc, fl)
        n += 1
        if n % flush_every == 0:
            store.flush()
        up.notify(seq, t_s, dem, dl, rc, fl)
        if rtlog and up.status.realtime:
            # wall time from integer ns: a float time.time() on the 32-bit
            # single-precision build has a 128 s step at 1.8e9
            ns = time.time_ns()
            print("rt", seq, "%d.%06d" % (ns // 1_000_000_000, ns // 1000 % 1_000_000))


class Faults:
    # The app's fault set as the uplink sees it: prints each change ("fault
    # set 22" for N03, CLOUD_AUTH) so tests can follow the state machine.
    def __init__(self):
        self.on = set()
        self._active = 0  # changes with the set (what uplink/health.py watches)

    def set(self, code):
        if code not in self.on:
            self.on.add(code)
            self._active += 1 << code
            print("fault set", code)

    def clear(self, code):
        if code in self.on:
            self.on.discard(code)
            self._active -= 1 << code
            print("fault clear", code)

    def active(self):
        return sorted(self.on)


def health_source(store, faults):
    heap = [None]

    def snap():
        gc.collect()
        free = gc.mem_free()
        if heap[0] is None or free < heap[0]:
            heap[0] = free
        return {
            "version": "9.8.7-test",
            "build": "testdev",
            "reset_cause": "watchdog",
            "faults": faults.active(),
            "meter": {"lqi": 200},
            "wifi": {"rssi": -61},
            "store": store.stats(),
            "heap_min": heap[0],
            "ota": {"state": "idle"},
        }

    return snap


async def fault_script(faults, spec):
    clock = hal.clock
    t0 = clock.ticks_ms()
    for item in spec.split(","):
        at, code = item.split(":")
        wait = int(at) * 1000 - time.ticks_diff(clock.ticks_ms(), t0)
        if wait > 0:
            await asyncio.sleep_ms(clock.real_ms(wait))
        code = int(code)
        if code < 0:
            faults.clear(-code)
        else:
            faults.set(code)


def on_command(kind, payload):
    h = binascii.hexlify(payload).decode()
    print("cmd", kind, h)
    if env("UPL_CMD_EXIT") == h:
        sys.stdout.flush()
        sys.exit(3)  # SystemExit passes the handler guard and asyncio: the process ends here
    return 0


async def main():
    dev = int(env("UPL_DEV", "4097"))
    key = binascii.unhexlify(env("UPL_KEY", "00" * 32))
    eps = []
    for e in env("UPL_EPS", "127.0.0.1:4700").split(","):
        i = e.rfind(":")
        eps.append((e[:i], int(e[i + 1 :])))
    store = open_store()
    gc.collect()
    before = gc.mem_alloc()
    faults = Faults()
    up = Uplink(
        store,
        dev,
        int(env("UPL_KID", "0")),
        key,
        eps,
        keepalive_s=int(env("UPL_KA")) if env("UPL_KA") else None,
        batch_max_age_s=int(env("UPL_MAXAGE", "5400")),
        on_command=on_command,
        faults=faults,
        health_source=None if env("UPL_NO_HEALTH") else health_source(store, faults),
    )
    gc.collect()
    print("uplink_heap", gc.mem_alloc() - before)
    asyncio.create_task(up.run())
    if env("UPL_FAULTS"):
        asyncio.create_task(fault_script(faults, env("UPL_FAULTS")))
    mt = asyncio.create_task(meter(store, up, int(env("UPL_INTERVAL", "3")), int(env("UPL_FLUSH", "20"))))
    clock = hal.clock
    end = time.ticks_add(clock.ticks_ms(), int(env("UPL_RUN_S", "60")) * 1000)
    hour = time.ticks_add(clock.ticks_ms(), 3600_000)
    t0 = clock.ticks_ms()
    heard = False

    def seen():
        if up.status.last_ack_ticks is not None:
            print("heard_s", time.ticks_diff(up.status.last_ack_ticks, t0) // 1000)
            return True
        return False

    while time.ticks_diff(end, clock.ticks_ms()) > 0:
        await asyncio.sleep_ms(clock.real_ms(1000))
        heard = heard or seen()
        if time.ticks_diff(clock.ticks_ms(), hour) >= 0:
            hour = time.ticks_add(hour, 3600_000)
            gc.collect()
            print("heap", gc.mem_alloc())
    if env("UPL_DRAIN"):
        mt.cancel()
        store.flush()
        for _ in range(int(env("UPL_DRAIN_S", "100000"))):
            if up.uploaded >= store.committed() and not up.inflight:
                break
            up.flush()
            await asyncio.sleep_ms(clock.real_ms(1000))
            store.flush()
    heard = heard or seen()
    st = up.status
    d = {}
    for k in dir(st):
        v = getattr(st, k)
        if not k.startswith("_") and isinstance(v, (int, str, bool)):
            d[k] = v
    d["uploaded"] = up.uploaded
    d["seq"] = up.session.seqs.seq
    ep = getattr(up, "epoch", None)
    if ep is not None:
        d["epoch"] = ep
    print("status", json.dumps(d))
    if env("UPL_DUMP"):
        from meter.reading import DEV_EPOCH  # the store keeps device seconds; the collector UTC

        for r in store.readings_from(1):
            print("r %d,%d,%d,%d,%d,%d" % (r[0], r[1] + DEV_EPOCH, r[2], r[3], r[4], r[5]))
    sys.stdout.flush()


asyncio.run(main())
