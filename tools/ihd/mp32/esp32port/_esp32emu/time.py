# The ESP32 port's `time` module (ports/esp32/modtime.c, mphalport.c,
# extmod/modtime.c) on the Unix port, with the device's clock model:
#   * the epoch is 2000-01-01 (MICROPY_EPOCH_IS_2000): time(), gmtime(),
#     localtime(), mktime() count from it;
#   * the RTC (gettimeofday) reads 0 (2000-01-01) after a power-on until the
#     firmware sets it with machine.RTC().datetime(); it survives
#     machine.reset(), soft resets and watchdog resets (the RTC timer keeps
#     running, as on the chip) and is lost only by a power cut;
#   * ticks_ms()/ticks_us() count from 0 at boot, period 2**30.
# IHD_CLOCK="utc=S,speed=X[,invalid]" (as hal/unix.py): the whole device clock
# (ticks, RTC, sleeps, and select.poll timeouts in _esp32emu.select) runs X
# times faster than real time; without `invalid` the RTC starts at S (default:
# the host's UTC), as if it had been set before this boot.
# Deviations from the C source: localtime() is gmtime() (the port has no
# TZ unless the application sets one; the firmware never does); ticks_cpu()
# is ticks_us(); sleeps are the host's (no other tasks, no GIL release
# semantics); time values are computed from the host's monotonic clock
# with ms (ticks_ms, time) or us (ticks_us) resolution. asyncio runs its
# pure-Python task queue (extmod/asyncio/task.py), not the C one of
# extmod/modasyncio.c, which keys new tasks with the host's ticks
# (mp_hal_ticks_ms) instead of these.
import sys

from micropython import const

from _esp32emu import builtin, clock_spec, read_file, remove_file

_T = builtin("time")
# A loaded-module entry wins over the built-in (py/builtinimport.c): asyncio's
# `from _asyncio import ...` then fails and it falls back to asyncio/task.py.
sys.modules["_asyncio"] = None
_MASK = const(0x3FFFFFFF)  # MICROPY_PY_TIME_TICKS_PERIOD - 1
_EPOCH_1970 = const(946684800)  # seconds from 1970 to 2000
_RTC_FILE = "esp32_rtc"

_tdiff = _T.ticks_diff
_treal_ms = _T.ticks_ms
real_ticks_ms = _T.ticks_ms  # the host's, for _esp32emu.boot (link timers)
_treal_us = _T.ticks_us

_utc, speed, _valid = clock_spec()

# Device clock, rebased often so every figure stays a small int on 32 bits:
# [real ticks_ms at base, device ticks_ms at base, RTC seconds at base,
#  RTC ms within that second at base]
_st = [_treal_ms(), 0, 0, 0]
_us = [_treal_us(), 0]  # [real ticks_us at base, device ticks_us at base]


def _host_ms():
    return _T.time_ns() // 1_000_000


def _power_on():
    saved = read_file(_RTC_FILE)
    remove_file(_RTC_FILE)
    if saved:
        # A reset, not a power cut: the RTC kept running meanwhile.
        host, s, ms = (int(x) for x in saved.split())
        ms += (_host_ms() - host) * speed
        return s + ms // 1000, ms % 1000
    if not _valid:
        return 0, 0
    ms = _host_ms() if _utc is None else _utc * 1000
    ms -= _EPOCH_1970 * 1000
    return ms // 1000, ms % 1000


_st[2], _st[3] = _power_on()


def _dev_ms():
    # Device ms since the base; rebases once a real second has passed.
    st = _st
    now = _treal_ms()
    d = _tdiff(now, st[0])
    if d < 1000:
        return d * speed
    dev = d * speed
    st[0] = now
    st[1] = (st[1] + dev) & _MASK
    f = st[3] + dev
    st[2] += f // 1000
    st[3] = f % 1000
    return 0


def ticks_ms():
    d = _dev_ms()
    return (_st[1] + d) & _MASK


def ticks_us():
    u = _us
    now = _treal_us()
    d = _tdiff(now, u[0])
    if d >= 10_000:
        u[0] = now
        u[1] = (u[1] + d * speed) & _MASK
        d = 0
    return (u[1] + d * speed) & _MASK


ticks_cpu = ticks_us
ticks_add = _T.ticks_add
ticks_diff = _T.ticks_diff


def sleep_ms(ms):
    if ms > 0:
        _T.sleep_us(ms * 1000 // speed)


def sleep_us(us):
    if us > 0:
        _T.sleep_us(us // speed)


def sleep(s):
    sleep_ms(int(s * 1000))


# -- RTC (gettimeofday / settimeofday) ----------------------------------------
def rtc_ms():
    # -> (seconds, ms) since 2000-01-01 of the device RTC
    d = _dev_ms()
    f = _st[3] + d
    return _st[2] + f // 1000, f % 1000


def set_rtc(s, ms=0):
    _dev_ms()
    d = _tdiff(_treal_ms(), _st[0]) * speed
    f = ms - d  # the base is up to a second old
    _st[2] = s + f // 1000
    _st[3] = f % 1000


def save_rtc():
    # Before an emulated reset: what the next boot's RTC continues from. Reads
    # only (the watchdog thread calls it while the firmware may be mid-rebase).
    st = _st
    f = st[3] + _tdiff(_treal_ms(), st[0]) * speed
    with open(_state_path(), "w") as fh:
        fh.write("%d %d %d" % (_host_ms(), st[2] + f // 1000, f % 1000))


def _state_path():
    from _esp32emu import state_dir

    return state_dir() + "/" + _RTC_FILE


def time():
    return rtc_ms()[0]


def time_ns():
    s, ms = rtc_ms()
    return (s * 1000 + ms) * 1_000_000


# -- calendar (shared/timeutils/timeutils.c, 2000 epoch) ------------------------
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)


def _leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def gmtime(secs=None):
    if secs is None:
        secs = time()
    secs = int(secs)
    days, rem = divmod(secs, 86400)
    # civil_from_days (H. Hinnant), days counted from 1970-01-01
    z = days + 10957 + 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    y = yoe + era * 400 + (1 if m <= 2 else 0)
    yday = _DAYS_BEFORE[m - 1] + d + (1 if m > 2 and _leap(y) else 0)
    wday = (days + 5) % 7  # 2000-01-01 was a Saturday; Monday is 0
    return (y, m, d, rem // 3600, rem // 60 % 60, rem % 60, wday, yday)


localtime = gmtime


def mktime(t):
    y, m, d = t[0], t[1], t[2]
    # days_from_civil, normalising the month as timeutils_mktime does
    y += (m - 1) // 12
    m = (m - 1) % 12 + 1
    yy = y - (1 if m <= 2 else 0)
    era = yy // 400
    yoe = yy - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468 - 10957
    return days * 86400 + t[3] * 3600 + t[4] * 60 + t[5]
