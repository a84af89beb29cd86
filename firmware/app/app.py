# The device application: boots, loads the configuration and runs the parts
# as supervised asyncio tasks:
#   meter    meter link (co-processor on the UART) -> on_reading()
#   flush    RAM ring -> flash log every _FLUSH_MS (a bounded loss window)
#   uplink   batches from the flash log to the collector; commands back
#   display  live and diagnostics screens from a status snapshot
#   health   Wi-Fi, clock and store faults; OTA self-confirmation
#   status   one status line every _STATUS_MS (heap after collect, counters)
# Without a valid configuration only the display and a re-check of the
# config file run, showing CONFIG_MISSING / CONFIG_BAD.
import asyncio
import gc
import json
import time

from micropython import const

import board
import faults as F
import hal
from app import config
from app.supervisor import Supervisor

VERSION = "1.0.0"
_FLUSH_MS = const(60_000)  # device time; RAM readings at risk at most this long
_STATUS_MS = const(600_000)
_HEALTH_MS = const(5_000)
_CONFIG_RECHECK_MS = const(30_000)


def log(src, msg):
    print("log", src, msg)


def sleep_device(ms):
    # asyncio sleeps in real time; the device's timers are in device time.
    return asyncio.sleep_ms(hal.clock.real_ms(ms))


class App:
    def __init__(self, cfg, faults, cfg_errors=None, reset_cause="power-on"):
        self.cfg = cfg
        self.faults = faults
        self.cfg_errors = cfg_errors or []
        self.reset_cause = reset_cause
        self.boot_ticks = hal.clock.ticks_ms()
        self.sup = Supervisor(faults, log=log)
        self.readings = 0
        self.commits = 0
        self._pending = 0  # appended since the last flush
        self._first = 0
        self._last = 0
        self.heap_peak = 0
        self.store = None
        self.link = None
        self.uplink = None
        self.screen = None

    # -- parts ---------------------------------------------------------------
    def build(self):
        from meter import make_link
        from store import Store

        self.store = Store(hal.partition("store"), clock=hal.clock)
        if self.store.stats().get("quarantined"):
            self.faults.set(F.STORE_CORRUPT)
        uart = hal.Uart(board.METER_UART)
        self.link = make_link(self.cfg.meter_protocol, uart, self.on_reading, self.faults)
        hal.wifi.connect(self.cfg.wifi_ssid, self.cfg.wifi_key)

    def on_reading(self, utc, demand_w, delivered_wh, received_wh, flags):
        # Called by the meter link for every reading: RAM ring now, flash at
        # the next flush. No allocation here (hot path).
        self.store.append(utc, demand_w, delivered_wh, received_wh, flags)
        self.readings += 1
        if not self._pending:
            self._first = utc
        self._last = utc
        self._pending += 1

    def flush(self):
        # Commit the RAM readings to flash; the commit line lets the
        # simulator check that each committed reading reaches the collector.
        if not self._pending:
            return
        n, first, last = self._pending, self._first, self._last
        self.store.flush()
        self._pending = 0
        self.commits += 1
        print("commit", n, first, last)

    # -- tasks ---------------------------------------------------------------
    async def flusher(self):
        while True:
            await sleep_device(_FLUSH_MS)
            self.flush()

    async def health(self):
        while True:
            if hal.wifi.isconnected():
                self.faults.clear(F.WIFI_DOWN)
            else:
                self.faults.set(F.WIFI_DOWN)
            if hal.clock.valid():
                self.faults.clear(F.CLOCK_INVALID)
            else:
                self.faults.set(F.CLOCK_INVALID)
            await sleep_device(_HEALTH_MS)

    async def status(self):
        while True:
            self.print_status()
            await sleep_device(_STATUS_MS)

    def snapshot(self):
        # Everything the diagnostics screen, the cloud and the logs show.
        gc.collect()
        heap = gc.mem_alloc()
        if heap > self.heap_peak:
            self.heap_peak = heap
        s = {
            "utc": hal.clock.utc(),
            "clock_valid": hal.clock.valid(),
            "version": VERSION,
            "board": board.NAME,
            "uptime_s": time.ticks_diff(hal.clock.ticks_ms(), self.boot_ticks) // 1000,
            "reset_cause": self.reset_cause,
            "heap": heap,
            "heap_free": gc.mem_free(),
            "heap_peak": self.heap_peak,
            "readings": self.readings,
            "commits": self.commits,
            "faults": self.faults.active(),
            "mem_errors": self.sup.mem_errors,
            "tasks": self.sup.summary(),
            "wifi": hal.wifi.isconnected(),
            "rssi": hal.wifi.rssi(),
        }
        if self.link is not None:
            s["meter"] = self.link.status.as_dict()
        if self.store is not None:
            s["store"] = self.store.stats()
        if self.cfg_errors:
            s["config_errors"] = self.cfg_errors
        return s

    def print_status(self):
        print("status", json.dumps(self.snapshot()))

    async def config_watch(self):
        # Unprovisioned: once a valid config appears, restart into it.
        while True:
            await sleep_device(_CONFIG_RECHECK_MS)
            try:
                config.load()
            except config.ConfigError:
                continue
            log("app", "configuration provisioned: restarting")
            hal.reset("config")

    def add_tasks(self):
        sup = self.sup
        if self.cfg is None:
            sup.add("config", self.config_watch)
        else:
            sup.add("meter", self.link.run)
            sup.add("flush", self.flusher)
            sup.add("health", self.health)
        sup.add("status", self.status)

    async def run(self):
        self.add_tasks()
        await self.sup.run()


def boot():
    # -> App ready to run: faults from the last reset, the configuration.
    faults = F.Faults()
    cause = hal.reset_cause()
    if cause == "watchdog":
        faults.set(F.WATCHDOG_RESET)
    elif cause == "memory":
        faults.set(F.LOW_MEMORY)
    cfg, errors = None, None
    try:
        cfg = config.load(defaults=getattr(board, "DEFAULT_CONFIG", None))
    except config.ConfigMissing as e:
        faults.set(F.CONFIG_MISSING)
        errors = e.errors
    except config.ConfigError as e:
        faults.set(F.CONFIG_BAD)
        errors = e.errors
    for e in errors or ():
        log("config", e)
    a = App(cfg, faults, errors, cause)
    if cfg is not None:
        a.build()
    log("app", "boot %s on %s (reset: %s, config: %s)" % (VERSION, board.NAME, cause, cfg.source if cfg else "none"))
    return a


def main():
    a = boot()
    try:
        asyncio.run(a.run())
    except KeyboardInterrupt:
        a.print_status()
