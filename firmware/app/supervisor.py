# Supervisor: keeps the device's asyncio tasks alive and the watchdog fed.
#
# Each task is a factory returning a coroutine. When the coroutine fails (or
# returns, for a task that should run forever) the supervisor logs why and
# starts a fresh one after a backoff that doubles on every quick failure and
# resets once the task has run healthily for a while, so a persistent fault
# (a dead co-processor) does not spin the CPU and a passing one is retried
# soon. MemoryError is caught like any failure, raises faults.LOW_MEMORY and
# triggers a collection; several in a row mean the heap is fragmented beyond
# recovery, and a clean reset is the only cure.
#
# The hardware watchdog is fed from the supervisor's own loop, so it fires
# when the event loop stops turning (a task blocking in a busy loop or a
# driver wait): exactly the failure no task can report itself.
# BaseExceptions (SystemExit from hal.reset, an emulated power cut) are not
# caught: they end the run as they would on the device.
import asyncio
import gc
import sys
import time

from micropython import const

import faults as F
import hal

_MIN_BACKOFF_MS = const(500)  # device time
_MAX_BACKOFF_MS = const(300_000)
_HEALTHY_MS = const(60_000)  # a run this long resets the backoff
_MEM_RESET_AFTER = const(3)  # MemoryErrors in a row, across all tasks
WDT_REAL_MS = const(30_000)  # watchdog timeout in real time
_FEED_REAL_MS = const(1_000)


class _Task:
    def __init__(self, name, factory, forever):
        self.name = name
        self.factory = factory
        self.forever = forever
        self.runs = 0
        self.failures = 0
        self.in_a_row = 0  # failures since the last run that lasted _HEALTHY_MS
        self.failed_at = None  # ticks_ms of the last failure
        self.last_error = None
        self.task = None
        self.done = False


class Supervisor:
    def __init__(self, faults, clock=None, log=None, watchdog=True, sleep_ms=None, wdt_ms=WDT_REAL_MS):
        self.faults = faults
        self.clock = clock or hal.clock
        self.log = log or _print_log
        self._tasks = []
        self._use_wdt = watchdog
        self.wdt_ms = wdt_ms  # real time
        self.wdt = None
        self.mem_errors = 0
        self._mem_in_a_row = 0
        self._last_mem_error = 0
        self.feeds = 0
        # Backoff waits are in device time; tests pass their own sleep.
        self._sleep_ms = sleep_ms or self._device_sleep
        # spawn(coro, name) -> asyncio task (app/taskprof.py times each by name)
        self.spawn = _spawn

    def _device_sleep(self, ms):
        return asyncio.sleep_ms(self.clock.real_ms(ms))

    def add(self, name, factory, forever=True):
        # factory() -> coroutine. forever=False: a normal return is the end.
        t = _Task(name, factory, forever)
        self._tasks.append(t)
        return t

    def task(self, name):
        for t in self._tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    def start(self):
        for t in self._tasks:
            if t.task is None:
                t.task = self.spawn(self._keep(t), t.name)

    async def _keep(self, t):
        backoff = _MIN_BACKOFF_MS
        while True:
            t.runs += 1
            started = self.clock.ticks_ms()
            me = None
            try:
                await t.factory()
                if not t.forever:
                    t.done = True
                    return
                t.last_error = "returned"
            except MemoryError as e:
                # Free what the failed coroutine held before anything else.
                gc.collect()
                me = e
                self.mem_errors += 1
                self._mem_in_a_row += 1
                self._last_mem_error = self.clock.ticks_ms()
                self.faults.set(F.LOW_MEMORY)
                t.last_error = "MemoryError"
                if self._mem_in_a_row >= _MEM_RESET_AFTER:
                    self.log("supervisor", "%s: MemoryError x%d, resetting" % (t.name, self._mem_in_a_row))
                    sys.print_exception(e)
                    hal.reset("memory")
            except Exception as e:
                t.last_error = "%s: %s" % (type(e).__name__, e)
            t.failures += 1
            t.failed_at = self.clock.ticks_ms()
            if time.ticks_diff(t.failed_at, started) >= _HEALTHY_MS:
                backoff = _MIN_BACKOFF_MS
                t.in_a_row = 0
            t.in_a_row += 1
            self.log("supervisor", "%s failed (%s), restart in %d ms" % (t.name, t.last_error, backoff))
            if me is not None:
                # Where and how much, on the console (the device's UART):
                # the function that failed and the allocation size ("...,
                # allocating 488 bytes") are what a field engineer needs;
                # the traceback was recorded when the error was raised, so
                # printing it takes no heap.
                sys.print_exception(me)
                me = None
            await self._sleep_ms(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_MS)

    async def run(self):
        # Start every task, then feed the watchdog while the loop turns.
        self.start()
        if self._use_wdt and self.wdt is None:
            # The Unix HAL scales watchdog timeouts by the clock's speed; a
            # blocked event loop is a real-time failure, so undo the scaling.
            self.wdt = hal.Watchdog(self.wdt_ms * max(1, self.clock.speed))
        while True:
            if self.wdt is not None:
                self.wdt.feed()
            self.feeds += 1
            # MemoryErrors count as "in a row" until the heap has been fine
            # for a healthy period.
            if self._mem_in_a_row and time.ticks_diff(self.clock.ticks_ms(), self._last_mem_error) >= _HEALTHY_MS:
                self._mem_in_a_row = 0
            await asyncio.sleep_ms(min(_FEED_REAL_MS, self.wdt_ms // 4))

    def summary(self):
        # [(name, runs, failures, last_error)] for status lines and the cloud.
        return [(t.name, t.runs, t.failures, t.last_error) for t in self._tasks]


def _spawn(coro, name):
    return asyncio.create_task(coro)


def _print_log(src, msg):
    print("log", src, msg)
