# The device application: boots, loads the configuration and runs the parts
# as supervised asyncio tasks:
#   meter    meter link (co-processor on the UART) -> on_reading()
#   flush    RAM ring -> flash log when the store says so (a bounded loss window)
#   uplink   batches from the flash log to the collector; commands back
#   display  live and diagnostics screens from a status snapshot
#   health   Wi-Fi, clock and store faults; OTA self-confirmation
#   status   one status line every _STATUS_MS (heap after collect, counters)
# The display, the logs and the cloud read one snapshot (app/report.py), and the
# one fault table (faults.py) names what is wrong in all three.
# Without a valid configuration only the display and a re-check of the
# config file run, showing CONFIG_MISSING / CONFIG_BAD.
import asyncio
import gc
import time

import micropython
from micropython import const

import board
import faults as F
import hal
from app import config, report
from app.supervisor import Supervisor
from meter.reading import DEV_EPOCH, F_RECEIVED, F_SUMMATION
from uplink.datagram import CMD_OTA

VERSION = report.VERSION
_FLUSH_IDLE_MS = const(60_000)  # flusher's longest sleep (the store's flush_s)
_STATUS_MS = const(600_000)
_HEALTH_MS = const(30_000)
# The supervisor retries a failed task at least every 5 minutes (device time).
_LINK_DEAD_MS = const(360_000)
_CONFIG_RECHECK_MS = const(30_000)
_DISPLAY_MS = const(60_000)  # redraw period; the refresh policy decides the glass
_DIAG_EVERY = const(5)  # display rounds per screen turn
# RAM ring of the store: 192 readings (3.3 KB; 900 took 15.3 KB of a ~100
# KB heap, and 512, then 320 left an OTA download without room once the
# tariff, wire version 2 and then the day/week/month history came in:
# test_sim_ota at 96k, MemoryError in the uplink, display and status tasks;
# on main before the history, 1.5 KB held for good at boot was enough for
# one). It stages at most flush_n (64) readings while flash works, and
# holds 16-25 minutes of readings (EZSP ~5 s, RAVEn ~8 s apart) while it
# fails: the flush backoff's first three retries (2+4+8 min) before any is
# dropped.
_RAM_READINGS = const(192)
_STORE_FAULTS = (F.FLASH_FAIL, F.STORE_CORRUPT, F.STORE_BACKLOG)
CMD_UNKNOWN = const(255)  # DONE status for a command kind this firmware lacks
# "tasks": per-task CPU in status lines; "calls": also every function call
# counted, printed at an orderly stop (app/taskprof.py)
_PROFILE = getattr(board, "PROFILE", None)


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
        self.bad_readings = 0
        self.commits = 0
        self.heap_peak = 0
        self.heap_code = 0  # heap taken by imported code (preload())
        self.heap_min = None  # least heap free seen (report.print_status): the low-water mark
        self.store = None
        self.link = None
        self.history = None  # meter.history.History: days, weeks, months
        self.uplink = None
        self.display = None
        self.ota = None
        self.bus = None  # Unix: display bus recorder (board.bus_recorder)
        self.last_demand = None
        self._query = None  # (ticks, today_wh, hourly_wh) cached store queries
        self._logged_faults = []
        self.last_reading_ticks = None
        self._link_dead = False  # COPROC_SILENT raised by _check_link_task
        self._booted = hal.clock.ticks_ms()

    # -- parts ---------------------------------------------------------------
    def build(self):
        from meter import make_link
        from store import Store

        self.store = Store(hal.partition("store"), clock=hal.clock, ram_size=_RAM_READINGS)
        c = self.cfg
        # The link opens (and, for EZSP, re-opens) the board's UART itself;
        # EZSP joins with the install code when it has no network yet.
        # prepayment, supplier messages, ambient, identity (meter/zcl_prepay.py):
        # off unless the board has the heap (board.METER_SUPPLIER; ~1.2 KB
        # more than an OTA download leaves on the 96 KB boards: test_sim_ota)
        self.link = make_link(
            c.meter_protocol,
            board.METER_UART,
            self.on_reading,
            self.faults,
            install_code=c.install_code,
            supplier=getattr(board, "METER_SUPPLIER", False),
        )
        # the gas meter's readings (EZSP, meter/gas.py): their own stream
        self.link.on_gas = self.on_gas
        self.build_history()
        hal.wifi.connect(self.cfg.wifi_ssid, self.cfg.wifi_key)
        from app.otalazy import Ota
        from uplink.uplink import Uplink

        # the updater's modules are imported only while it has work
        # the updater's arena is the display's frame buffer (app/otalazy.py)
        self.ota = Ota(c.ota_keys, self.faults, self.display.panel if self.display else None)
        state = self.ota.after_boot()
        if state != "idle":
            log("ota", "after boot: %s %s" % (state, self.ota.status.reason or ""))
        self.uplink = Uplink(
            self.store,
            c.device_id,
            c.key_id,
            c.key,
            c.endpoints,
            faults=self.faults,
            on_command=self.on_command,
            nat_timeout_s=c.nat_timeout_s,
            health_source=self.health_snapshot,  # HEALTH reports (uplink/health.py)
        )

    def build_history(self):
        # Closed days from the history file, local time from the link's
        # zone, the last reading before this boot from the store.
        from meter.history import FILE, History

        sd = getattr(hal, "state_dir", None)
        link = self.link
        h = self.history = History((sd() if sd else "") + "/" + FILE, self.cfg.device_id, link.zone, link.tariff)
        link.history = h  # EZSP: the meter's history attributes go to it
        off = self.cfg.utc_offset_min
        if off is not None and link.zone.source == "utc":
            # the configuration's offset until the meter (or the stick) says
            link.zone.set(off * 60, -1, -1, 0, "config")
        self.history_tick()
        h.resume(self.store)

    def history_tick(self):
        # The local offset for the next readings (history and tariff), the
        # history file when a day closed, HISTORY_LOST while it is set aside.
        h = self.history
        if h is None:
            return
        if hal.clock.valid():
            h.tick(hal.clock.utc() - DEV_EPOCH)
            self.link.tariff.off = h.off
        if h.damaged and not h.closed:
            self.faults.set(F.HISTORY_LOST)
        else:
            self.faults.clear(F.HISTORY_LOST)  # a day closed since: counting again

    def on_command(self, kind, payload):
        # Authenticated commands from the collector (the uplink handles
        # real-time mode itself). -> DONE status for the collector.
        if kind == CMD_OTA:
            log("ota", "update requested")
            return self.ota.on_command(payload)
        log("app", "unknown command kind %d" % kind)
        return CMD_UNKNOWN

    def build_display(self):
        # The display runs with or without a configuration: it is how a
        # missing one is explained.
        from display import open_panel
        from display.ui import Display

        rec = getattr(board, "bus_recorder", None)
        self.bus = rec() if rec else None
        self.display = Display(open_panel())

    def on_reading(self, t_s, demand_w, delivered_wh, received_wh, flags):
        # Called by the meter link for every reading: RAM ring now, flash at
        # the next flush. No allocation here (hot path).
        # The meter link marks unknown summations by their flag (value -1);
        # the store keeps unsigned registers, so an unknown one is stored as
        # 0 with the flag still saying it is unknown.
        if not flags & F_SUMMATION:
            delivered_wh = 0
        if not flags & F_RECEIVED:
            received_wh = 0
        try:
            seq = self.store.append(t_s, demand_w, delivered_wh, received_wh, flags)
        except ValueError:
            # A reading the store cannot hold (the store says why): counted
            # and logged, never allowed to stop the meter link.
            self.bad_readings += 1
            if self.bad_readings <= 3:
                log("app", "reading refused: %d %d %d %d %d" % (t_s, demand_w, delivered_wh, received_wh, flags))
            return
        self.readings += 1
        self.history.reading(t_s, delivered_wh, flags)
        self.last_demand = demand_w
        self.last_reading_ticks = hal.clock.ticks_ms()
        self.uplink.notify(seq, t_s, demand_w, delivered_wh, received_wh, flags)
        st = self.store
        if seq - st.fseq >= st.flush_n:
            self.flush()  # a full batch waits: now, not at the next timer

    def on_gas(self, t_s, demand, delivered, received, flags):
        # The gas meter's readings (flag F_GAS, litres or Wh): the store's
        # gas stream and the uplink's gas section (version-3 DATA); never
        # the history, tariff, demand, meter-silence or real-time figures.
        try:
            seq = self.store.append(t_s, demand, delivered if flags & F_SUMMATION else 0, 0, flags & ~F_RECEIVED)
        except ValueError:
            self.bad_readings += 1
            return
        self.uplink.head = seq  # the newest reading held (HELLO), not streamed
        st = self.store
        if seq - st.fseq >= st.flush_n:
            self.flush()

    def flush(self, force=False):
        # RAM ring -> flash. The commit line (first and last seq now safe on
        # flash) lets the simulator check that every committed reading
        # reaches the collector exactly once.
        st = self.store
        before = st.committed()
        if force:
            st.flush()
        else:
            st.tick()
        after = st.committed()
        if after > before:
            self.commits += 1
            print("commit", before + 1, after)

    # -- tasks ---------------------------------------------------------------
    async def flusher(self):
        # Wakes when the store's flush is due (60 s after the first pending
        # reading or cursor), not on a fixed tick: at most two wake-ups per
        # flush. The 64-readings trigger is on_reading's.
        st = self.store
        while True:
            await sleep_device(st.due_in_ms(_FLUSH_IDLE_MS))
            self.flush()

    def log_faults(self):
        # One line per fault raised or cleared, numbered and worded as on
        # the display and in the cloud (faults.TABLE).
        now = self.faults.active()
        for num in now:
            if num not in self._logged_faults:
                row = F.describe(num)
                print("fault", num, row[1], "set:", row[2])
        for num in self._logged_faults:
            if num not in now:
                print("fault", num, F.describe(num)[1], "cleared")
        self._logged_faults = now

    async def health(self):
        rounds = 0
        while True:
            self.log_faults()
            if hal.wifi.isconnected():
                self.faults.clear(F.WIFI_DOWN)
            else:
                self.faults.set(F.WIFI_DOWN)
            if hal.clock.valid():
                self.faults.clear(F.CLOCK_INVALID)
            else:
                self.faults.set(F.CLOCK_INVALID)
            # A new image confirms itself only once it is healthy: meter link
            # up and the collector answering; otherwise it is rolled back.
            ota = self.ota
            if ota is not None:
                age = self.uplink.status.ack_age_s(hal.clock.ticks_ms())
                if ota.confirm_if_healthy(self.link.status.state == "up", age is not None and age < 600):
                    log("ota", "new image healthy: confirmed")
                elif ota.rollback_due():
                    log("ota", "new image never became healthy: rolling back")
                    hal.reset("ota-rollback")
                ota.release()  # an idle updater's modules leave the heap
            self._check_link_task()
            self.history_tick()
            rounds += 1
            if rounds % 10 == 0:  # store health every 5 minutes: stats() walks the log
                have = self.store.stats()["faults"]
                for f in _STORE_FAULTS:
                    if f in have:
                        self.faults.set(f)
                    else:
                        self.faults.clear(f)
            await sleep_device(_HEALTH_MS)

    def _check_link_task(self):
        # A link task that fails at every start (the UART cannot be opened,
        # a bug kills it) never gets to raise its own faults, and its status
        # still says what it last knew. Say it here; take it back only if it
        # was said here (the link clears it too, once up).
        t = self.sup.task("meter")
        now = hal.clock.ticks_ms()
        last = self.last_reading_ticks
        dead = (
            t.in_a_row >= 3  # so failed_at is set
            and time.ticks_diff(now, t.failed_at) < _LINK_DEAD_MS
            and time.ticks_diff(now, self._booted if last is None else last) > _LINK_DEAD_MS
        )
        if dead:
            if not self._link_dead:
                log("app", "meter link failing at every start (%s)" % t.last_error)
            self._link_dead = True
            self.faults.set(F.COPROC_SILENT)
            self.link.status.state = "silent"
        elif self._link_dead:
            self._link_dead = False
            self.faults.clear(F.COPROC_SILENT)

    async def display_task(self):
        from display import screens

        L, D, H = screens.LIVE, screens.DIAG, screens.HISTORY
        turns = (L, L, L, H)
        turns_fault = (L, D, L, D, H)
        n = 0
        rounds = 0
        while True:
            # Screens take turns of _DIAG_EVERY rounds: live most of the
            # time, history every 4th turn; with a fault, live and
            # diagnostics alternate, so the household keeps its figures and
            # support can read the cause off the glass.
            d = self.display
            if self.ota is not None and self.ota.busy():
                # The update needs the heap more than the glass needs a new
                # frame: a redraw (snapshot, text, partial refresh) beside
                # the updater's modules ran a 96 KB heap out of memory
                # (test_sim_ota: MemoryError in display and status, reset).
                # The panel keeps showing the last frame, as e-ink does.
                await sleep_device(_DISPLAY_MS)
                continue
            fault = self.faults.current() is not None
            if rounds % _DIAG_EVERY == 0:
                # a turn: no fault L L L H; a fault L D L D H (H: history)
                turn = rounds // _DIAG_EVERY
                d.screen = (turns_fault if fault else turns)[turn % (5 if fault else 4)]
            elif not fault and d.screen == screens.DIAG:
                d.screen = screens.LIVE  # the fault cleared: its screen goes at once
            rounds += 1
            kind = await d.aupdate(self.snapshot(d.screen == screens.HISTORY), hal.clock.ticks_ms() // 1000)
            if kind and self.bus is not None:
                n += 1
                self.bus.mark("refresh%d" % n)
            await sleep_device(_DISPLAY_MS)

    async def status(self):
        while True:
            self.print_status()
            await sleep_device(_STATUS_MS)

    def snapshot(self, history=True):
        # Everything the diagnostics screen, the cloud and the logs show.
        return report.snapshot(self, history)

    def health_snapshot(self):
        # What a HEALTH report encodes (uplink/health.py encode()) and no
        # more: it is built in the uplink task when the fault set changes,
        # which an update's start and end do, beside the updater's modules;
        # the whole snapshot (store, tasks, cloud, tariff, history: ~2 KB)
        # ran a 96 KB heap out of memory there (test_sim_ota).
        st = self.store.stats()
        o = self.ota
        return {
            "version": report.running_version(),
            "build": board.NAME,
            "reset_cause": self.reset_cause,
            "meter": {"lqi": self.link.status.lqi},
            "wifi": {"rssi": hal.wifi.rssi()},
            "store": {"fill_pct": st.get("fill_pct"), "health": st.get("health")},
            "heap_min": self.heap_min,
            "ota": {"state": o.status.state} if o is not None else None,
            "faults": self.faults.active(),
        }

    def print_status(self):
        report.print_status(self)

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
            sup.add("uplink", self.uplink.run)
            sup.add("health", self.health)
        if self.display is not None:
            sup.add("display", self.display_task)
        sup.add("status", self.status)

    async def run(self):
        self.add_tasks()
        await self.sup.run()


def preload(protocol):
    # Import every module the device runs, before any object is built: one
    # import order (less fragmentation), and the heap the code itself takes
    # can be measured (on the device it is frozen in flash and takes none).
    import app.otalazy  # noqa: F401  (ota.updater only on demand: app/otalazy.py)
    import display.ui  # noqa: F401
    import meter.history  # noqa: F401
    import store  # noqa: F401
    import uplink.uplink  # noqa: F401
    from display import driver

    driver(board.PANEL)
    if protocol == "raven":
        import meter.raven_link  # noqa: F401
    else:
        import meter.ezsp_link  # noqa: F401
    gc.collect()
    return gc.mem_alloc()


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
    for line in errors or ():
        log("config", line)
    code = preload(cfg.meter_protocol if cfg else board.METER_PROTOCOL)
    if _PROFILE == "calls":
        # before any object exists: bound methods taken later see the wrappers
        from app import taskprof

        taskprof.count_calls(("meter", "store", "uplink", "display", "app.app", "app.sup", "hal", "ota", "faults"))
    a = App(cfg, faults, errors, cause)
    a.heap_code = code
    a.build_display()
    if cfg is not None:
        a.build()
    log("app", "boot %s on %s (reset: %s, config: %s)" % (VERSION, board.NAME, cause, cfg.source if cfg else "none"))
    return a


def release_heap():
    # The Unix port raises KeyboardInterrupt from its signal handler, so it
    # can land anywhere: inside a collection (the collector's own lock bit
    # stays set: every allocation after it fails, "heap is locked") or a
    # heap-locked section. A full collection clears the former; locking
    # once more and unlocking down to depth 0 the latter.
    gc.collect()
    micropython.heap_lock()
    while micropython.heap_unlock():
        pass


def main():
    a = boot()
    if _PROFILE:
        from app import taskprof

        taskprof.install(a.sup)
    try:
        asyncio.run(a.run())
    except KeyboardInterrupt:
        # Orderly stop (simulator): commit what is in RAM, report.
        release_heap()
        if a.store is not None:
            a.flush(force=True)
        a.print_status()
        if _PROFILE == "calls":
            from app import taskprof

            for r in taskprof.calls():
                print("calls", r[0], r[1], r[2])
