# Device seconds (meter/reading.py: UTC seconds since DEV_EPOCH) from the
# HAL clock without allocating per reading.
#
# hal.clock.utc() is Unix seconds: above 2**30, a boxed int on the 32-bit
# ESP32, built anew on every call (and valid() may call utc()). Stamping a
# reading with it would allocate per reading. DevClock reads utc() only
# when anchored (construction, and sync() after a link set the clock), and
# otherwise counts device seconds from ticks_ms(), a small int: now()
# allocates nothing. Both HALs derive utc() and ticks_ms() from the same
# oscillator, so counting ticks does not drift from utc().
#
# utc() has whole seconds only, so the anchor may sit up to 999 ms into its
# second: now() can lag utc() by one second (never lead it). A reading's
# time is a 1 s quantity anyway (the co-processors' own clocks say so).
from time import ticks_add, ticks_diff

from micropython import const

from meter.reading import DEV_EPOCH

_REANCHOR_MS = const(3_600_000)  # ticks_diff is good for 2**29 ms (6 days)


class DevClock:
    def __init__(self, clock):
        self.clock = clock
        self.sync()

    def sync(self):
        # Re-read the clock: call after clock.set_utc(). Allocates (boxed
        # Unix seconds): rare, never per reading.
        c = self.clock
        t = c.utc() - DEV_EPOCH  # before ticks: now() may lag, never lead
        self._tk = c.ticks_ms()
        self._t = t
        self._valid = c.valid()

    def valid(self):
        # The clock's valid() as of the last anchor: a clock becomes valid
        # only through set_utc(), after which the links call sync().
        return self._valid

    def now(self):
        # Device seconds now; no allocation (a small int until 2058).
        tk = self.clock.ticks_ms()
        d = ticks_diff(tk, self._tk)
        if d >= _REANCHOR_MS or d < 0:
            # move the anchor forward by whole seconds: still no allocation
            s = d // 1000
            self._t += s
            self._tk = ticks_add(self._tk, s * 1000)
            d -= s * 1000
        return self._t + d // 1000
