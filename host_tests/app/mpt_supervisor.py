# app/supervisor.py on MicroPython: restarts, backoff, MemoryError handling.
import asyncio

import faults as F
import hal
from app.supervisor import Supervisor

HEAP = "128k"


class FakeClock:
    # Device time that only moves when a test says so.
    speed = 1

    def __init__(self):
        self.t = 0

    def ticks_ms(self):
        return self.t

    def real_ms(self, ms):
        return ms


def _quiet(*a):
    pass


def _sup(clock=None):
    sleeps = []

    async def sleep(ms):
        sleeps.append(ms)
        await asyncio.sleep_ms(0)

    s = Supervisor(F.Faults(), clock=clock or FakeClock(), log=_quiet, watchdog=False, sleep_ms=sleep)
    return s, sleeps


async def _until(cond, limit=1000):
    for _ in range(limit):
        if cond():
            return
        await asyncio.sleep_ms(0)
    assert False, "condition never met"


def test_failing_task_restarts_with_doubling_backoff():
    s, sleeps = _sup()
    calls = [0]

    async def flaky():
        calls[0] += 1
        if calls[0] <= 5:
            raise OSError(110)

    t = s.add("flaky", flaky, forever=False)

    async def main():
        s.start()
        await _until(lambda: t.done)

    asyncio.run(main())
    assert calls[0] == 6
    assert sleeps == [500, 1000, 2000, 4000, 8000]
    assert t.failures == 5 and t.runs == 6
    assert t.last_error == "OSError: [Errno 110] ETIMEDOUT", t.last_error
    assert s.faults.current() is None


def test_backoff_is_capped_and_resets_after_a_healthy_run():
    clock = FakeClock()
    s, sleeps = _sup(clock)
    calls = [0]

    async def task():
        calls[0] += 1
        if calls[0] == 12:
            clock.t += 60_000  # this run was healthy for a minute
        if calls[0] < 14:
            raise ValueError("x")

    t = s.add("t", task, forever=False)

    async def main():
        s.start()
        await _until(lambda: t.done)

    asyncio.run(main())
    assert sleeps[:11] == [500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000]
    assert sleeps[11:] == [500, 1000]


def test_forever_task_that_returns_is_restarted():
    s, sleeps = _sup()
    calls = [0]

    async def short():
        calls[0] += 1

    t = s.add("short", short)

    async def main():
        s.start()
        await _until(lambda: calls[0] >= 3)

    asyncio.run(main())
    assert t.last_error == "returned" and t.failures >= 2


def test_memory_error_sets_low_memory_and_the_task_comes_back():
    s, sleeps = _sup()
    calls = [0]
    keep = []

    async def greedy():
        calls[0] += 1
        if calls[0] == 1:
            keep.append(bytearray(512 * 1024))  # beyond the 128k heap: a real MemoryError

    t = s.add("greedy", greedy, forever=False)

    async def main():
        s.start()
        await _until(lambda: t.done)

    asyncio.run(main())
    assert s.mem_errors == 1 and t.last_error == "MemoryError"
    assert s.faults.is_active(F.LOW_MEMORY)
    assert s.faults.current()[1] == "D01"


def test_other_tasks_keep_running_while_one_fails():
    s, sleeps = _sup()
    ticks = [0]

    async def steady():
        while True:
            ticks[0] += 1
            await asyncio.sleep_ms(0)

    async def broken():
        raise RuntimeError("boom")

    s.add("steady", steady)
    b = s.add("broken", broken)

    async def main():
        s.start()
        await _until(lambda: b.failures >= 4)

    asyncio.run(main())
    assert ticks[0] >= 4
    assert s.summary()[0] == ("steady", 1, 0, None)


def test_repeated_memory_errors_reset_the_device():
    s, sleeps = _sup()

    async def hopeless():
        x = bytearray(512 * 1024)  # noqa: F841

    s.add("hopeless", hopeless)
    try:
        asyncio.run(s.run())
        assert False, "no reset"
    except SystemExit as e:
        assert e.args[0] == hal.RESET_EXIT
    assert s.mem_errors == 3
    assert hal.reset_cause() == "memory"
