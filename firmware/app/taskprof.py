# Per-task CPU profile of the asyncio loop (off unless the board asks:
# boards/unix PROFILE_TASKS, env IHD_PROFILE=1 in the simulator).
#
# Every task created after install() runs inside a wrapper generator that
# times each resume with ticks_us, so a task's figure is the time its own
# code (and the collections its allocations set off) took between two
# awaits. Whatever is not inside a task is the loop itself: waiting in
# poll() costs no CPU, so process CPU minus the tasks' sum is the loop's
# scheduling and the I/O wake-ups. Tasks are named by their coroutine
# function; every restart of a task adds to the same name.
import asyncio
import time

from micropython import const

_STAT = "/proc/self/stat"  # Unix: utime and stime in clock ticks (100 Hz)
_TICK_US = const(10_000)

_acc = {}  # name -> [resumes, us]


def _name(coro):
    # "<generator object 'serve' at 0x...>" -> "serve" (once per task)
    r = repr(coro)
    i = r.find("'")
    j = r.find("'", i + 1)
    return r[i + 1 : j] if 0 <= i < j else r


def _timed(slot, coro):
    # Forwards send/throw to coro and adds the time of each resume to slot.
    send = coro.send
    throw = coro.throw
    ticks_us = time.ticks_us
    diff = time.ticks_diff
    exc = None
    while True:
        t0 = ticks_us()
        try:
            y = send(None) if exc is None else throw(exc)
        except StopIteration as e:
            slot[0] += 1
            slot[1] += diff(ticks_us(), t0)
            return e.value
        except BaseException:
            slot[0] += 1
            slot[1] += diff(ticks_us(), t0)
            raise
        slot[0] += 1
        slot[1] += diff(ticks_us(), t0)
        try:
            yield y
            exc = None
        except BaseException as e:  # CancelledError, timeouts thrown in
            exc = e


def _slot(name):
    s = _acc.get(name)
    if s is None:
        s = _acc[name] = [0, 0]
    return s


def install(sup=None):
    # Wrap every task created from now on (asyncio.run's main task too);
    # the supervisor's tasks are named by their supervisor name.
    core = asyncio.core  # type: ignore[attr-defined]  # MicroPython only
    create = core.create_task

    def create_task(coro):
        return create(_timed(_slot(_name(coro)), coro))

    def spawn(coro, name):
        return create(_timed(_slot(name), coro))

    core.create_task = create_task
    asyncio.create_task = create_task
    if sup is not None:
        sup.spawn = spawn


def process_cpu_ms():
    # CPU of the whole process (Unix /proc); None where there is no /proc.
    try:
        with open(_STAT) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * (_TICK_US // 1000)
    except OSError:
        return None


def snapshot():
    # {"tasks": {name: [resumes, ms]}, "process_ms": int|None}
    return {
        "tasks": {k: [v[0], v[1] // 1000] for k, v in _acc.items()},
        "process_ms": process_cpu_ms(),
    }


# -- call counts (IHD_PROFILE=2): every function and method of the named
# modules wrapped, counting calls and inclusive time. The wrapper itself
# allocates (an args tuple per call), so the times are inflated; the counts
# are exact and show which functions run per byte, per frame, per reading.
_calls = {}  # "module.Class.name" -> [calls, us]


def _wrap(key, fn):
    slot = _calls[key] = [0, 0]
    ticks_us = time.ticks_us
    diff = time.ticks_diff

    def counted(*a, **kw):
        t0 = ticks_us()
        try:
            return fn(*a, **kw)
        finally:
            slot[0] += 1
            slot[1] += diff(ticks_us(), t0)

    return counted


def count_calls(prefixes):
    # Wrap module-level functions and class methods of every loaded module
    # whose name starts with one of prefixes. Call before objects are built
    # (a bound method taken earlier keeps the unwrapped function).
    import sys

    for mname, mod in list(sys.modules.items()):
        if not mname.startswith(prefixes):
            continue
        for name, obj in list(mod.__dict__.items()):
            t = type(obj).__name__
            if t == "function":
                setattr(mod, name, _wrap(mname + "." + name, obj))
            elif t == "type" and getattr(obj, "__module__", None) == mname:
                for an, av in list(obj.__dict__.items()):
                    if type(av).__name__ == "function" and an != "__init__":
                        setattr(obj, an, _wrap(mname + "." + name + "." + an, av))


def calls():
    # [(key, calls, ms)], most called first
    out = [(k, v[0], v[1] // 1000) for k, v in _calls.items() if v[0]]
    out.sort(key=lambda r: -r[1])
    return out
