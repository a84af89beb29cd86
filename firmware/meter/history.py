# Day, week and month history of electricity imported, and its cost: today
# and 8 days before, this week and 5 before, this month and 13 before (local
# days, Monday weeks, calendar months: meter/localtime.py).
#
# Own figures come from the summation register at local midnights: a day
# is ours only when we saw it whole (a reading on each side of both of its
# midnights, less than _GAP_S apart, the register not going back); then its
# cost is the tariff's figure for the same energy (meter/price.py, exact
# integers). A week or month is ours when all of its days so far are. The
# meter's history attributes (Metering 0x0401/0x0403, 0x0420+ days, 0x0430+
# weeks, 0x0440+ months; meter() here) fill the periods we did not see
# whole, energy only: a cost we did not follow would be a guess. Anything
# else is None ("—" on the screen), never an estimate.
#
# Closed periods are kept across reboots in one small file (FILE), written
# whole to a temporary name and renamed: either the old or the new file
# survives a power cut. A file that fails its CRC, its layout, or names
# another device or a later day than the clock is set aside: history
# starts empty, `damaged` counts it and faults.HISTORY_LOST is raised.
#
# Hot path: reading() runs for every reading and allocates nothing unless
# the local day changes (once a day). tick() (display/status cadence)
# refreshes the UTC offset and writes the file when a day closed.
import os
import sys
from array import array

import micropython
from micropython import const

_ND = const(9)  # today + 8 days
_NW = const(6)  # this week + 5
_NM = const(14)  # this month + 13
_N = const(29)
_W0 = const(9)
_M0 = const(15)
_DAY = const(86400)
_GAP_S = const(3600)  # a midnight seen only across a longer silence: not ours
# (an hour: meters that report the summation half-hourly still close days)
_MAX_DAY_WH = const(1_000_000)  # more in a day: a register replaced, not a home
_F_NEED = const(37)  # F_SUMMATION | F_TIME_VALID | F_GAS
_F_WANT = const(5)  # F_SUMMATION | F_TIME_VALID
FILE = "history"  # in the state directory; layout in store/history_file.py


def _ymd(day):
    # Day number (days since 2024-01-01, a Monday) -> (year, month, day);
    # Howard Hinnant's civil_from_days.
    z = day + 19723 + 719468  # days since 0000-03-01
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (m <= 2), m, doy - (153 * mp + 2) // 5 + 1


def _month(day):
    # Months since January 2024.
    y, m, d = _ymd(day)
    return (y - 2024) * 12 + m - 1


def _mdays(mon):
    # Days in month number `mon` (months since January 2024).
    y = 2024 + mon // 12
    m = mon % 12 + 1
    if m == 2:
        return 29 if y % 4 == 0 and (y % 100 != 0 or y % 400 == 0) else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _drop():
    # the file's code leaves the heap until the next day closes
    sys.modules.pop("store.history_file", None)
    m = sys.modules.get("store")
    if m is not None and hasattr(m, "history_file"):
        delattr(m, "history_file")


class History:
    def __init__(self, path=None, device=0, zone=None, tariff=None):
        self.path = path
        self.device = device & 0xFFFFFFFF
        if zone is None:
            from meter.localtime import Zone

            zone = Zone()
        self.zone = zone
        self.tariff = tariff  # meter.price.Tariff (closed-day cost), or None
        self.off = 0  # UTC offset used by reading(); tick() refreshes it
        self.day = -1  # local day of slot 0
        self._start = -1  # register at the start of self.day, Wh
        self._last = -1  # last register seen, Wh, and its time
        self._t = 0
        # per slot s: v[s] own energy, Wh (the n[s] days counted); v[_N+s]
        # own cost, minor units (n[_N+s] days costed); v[2*_N+s] the
        # meter's figure, Wh (-1 none). Two blocks, not five: heap.
        self.v = array("i", [0] * (2 * _N) + [-1] * _N)
        self.n = bytearray(2 * _N)
        self.damaged = 0  # history files set aside (torn, corrupt, foreign)
        self.why = None  # why the last one was
        self.back = 0  # readings out of day order: an earlier day (clock back), a lone jump ahead
        self._ahead = -1  # a day more than one ahead, seen once: taken when seen again
        self.closed = 0  # days closed
        self.writes = 0
        self._dirty = False
        self._load()

    # -- readings (hot path) -----------------------------------------------------
    @micropython.native  # per reading: no heap frame
    def reading(self, t_s, delivered_wh, flags):
        if flags & _F_NEED != _F_WANT:
            return
        day = (t_s + self.off) // _DAY
        if day != self.day:
            if day < self.day:
                self.back += 1
                return
            if day > self.day + 1 and self.day >= 0 and day != self._ahead:
                # days ahead at once: a reboot after days off, or one
                # reading stamped far in the future, which would shift every
                # period out; taken when the next reading confirms it
                self._ahead = day
                self.back += 1
                return
            self._roll(day, t_s)
        self._ahead = -1
        self._last = delivered_wh
        self._t = t_s

    def _roll(self, day, t_s):
        # The local day changed (rare: allocation allowed). A midnight seen
        # closely on both sides closes the day and starts the next one.
        prev = self.day
        seen = prev >= 0 and day == prev + 1 and self._last >= 0 and t_s - self._t <= _GAP_S
        if prev >= 0:
            wh = self._last - self._start
            if seen and self._start >= 0 and 0 <= wh <= _MAX_DAY_WH:
                self._fold(prev, wh)
            self._dirty = True
        self._shift(day)
        self._start = self._last if seen else -1

    def _fold(self, day, wh):
        # Day `day` (slot 0 now) closed with wh of our own: into its week
        # and month, with its cost when the tariff charged the same energy.
        t = self.tariff
        c = -1
        if t is not None and t.closed_day == day and t.closed_wh == wh and t.closed_cost is not None:
            c = t.closed_cost
        self.closed += 1
        for i in (0, _W0, _M0):
            self.v[i] += wh
            self.n[i] += 1
            if c >= 0:
                self.v[_N + i] += c
                self.n[_N + i] += 1

    def _shift(self, day):
        # Slot 0 becomes `day`; older periods move down, new ones start empty.
        prev = self.day
        if prev < 0 or day - prev > 500:
            k = (_ND, _NW, _NM)
        else:
            k = (day - prev, day // 7 - prev // 7, _month(day) - _month(prev))
        self.day = day
        for base, n, s in ((0, _ND, k[0]), (_W0, _NW, k[1]), (_M0, _NM, k[2])):
            if s <= 0:
                continue
            for a, o, e in ((self.v, 0, 0), (self.v, _N, 0), (self.v, 2 * _N, -1), (self.n, 0, 0), (self.n, _N, 0)):
                o += base
                for i in range(n - 1, -1, -1):
                    a[o + i] = a[o + i - s] if i >= s else e
            if s < n:
                # the meter's figure for the period that just ended was read
                # before its end: partial, not the period's total
                self.v[2 * _N + base + s] = -1

    def resume(self, store):
        # After a boot: the store's newest reading with a summation (taken
        # before this boot) is the last one seen, so a midnight passed
        # during a short reboot still closes its day.
        r = store.latest()
        seq = r[0] if r is not None else 0
        for _ in range(64):
            if r is None or r[0] != seq:
                return
            if r[5] & _F_NEED == _F_WANT:
                self.reading(r[1], r[3], r[5])
                return
            seq -= 1
            r = store.get(seq)

    # -- the meter's own history -----------------------------------------------------
    @staticmethod
    def slot(attr):
        # Metering history attribute id (meter/zcl_hist.py READS) -> slot
        # (0 today ... _N-1), or -1.
        if attr == 0x0401 or attr == 0x0403:
            return (attr - 0x0401) // 2
        if 0x0420 <= attr <= 0x045A and not attr & 1:
            if attr <= 0x042C:
                return 2 + (attr - 0x0420) // 2
            if 0x0430 <= attr <= 0x043A:
                return _W0 + (attr - 0x0430) // 2
            if attr >= 0x0440:
                return _M0 + (attr - 0x0440) // 2
        return -1

    def meter(self, attr, wh):
        # One history attribute, scaled to Wh by the link (None: invalid).
        # Aligned with our slots: the link reads them away from midnight.
        s = self.slot(attr)
        if s >= 0 and self.day >= 0:
            # beyond the array's int32 (2 TWh: no household's period) the
            # value would wrap to a plausible wrong figure: unknown instead
            self.v[2 * _N + s] = -1 if wh is None or not 0 <= wh <= 0x7FFFFFFF else wh

    # -- slow path ---------------------------------------------------------------------
    def tick(self, now_s):
        # now_s: device seconds (valid clock). The offset for the next
        # readings; the file when a day closed; a clock gone back by more
        # than a day empties the history (its days would be misplaced).
        self.off = self.zone.offset(now_s)
        day = (now_s + self.off) // _DAY
        if self.day >= 0 and day < self.day - 1:
            self._set_aside("clock went back %d days" % (self.day - day))
        if self._dirty:
            self._dirty = False
            self.save()

    def today_wh(self):
        if self._start < 0 or self._last < self._start:
            return None
        wh = self._last - self._start
        return wh if wh <= _MAX_DAY_WH else None

    def figures(self):
        # The snapshot's "history": energy (Wh) and cost (minor units) per
        # period, oldest first, None when unknown; weekday (0 Monday) and
        # month (1-12) of the newest slot for the labels.
        if self.day < 0:
            return None
        today = self.today_wh()
        tc = None
        t = self.tariff
        if today is not None and t is not None and t.day == self.day:
            f = t.figures()
            if f["cost_wh"] == today:
                tc = f["cost_today"]
        d = self.day
        y, m, dom = _ymd(d)
        out = {"weekday": d % 7, "month": m}
        for name, base, n, full in (
            ("days", 0, _ND, 1),
            ("weeks", _W0, _NW, 7),
            ("months", _M0, _NM, 0),
        ):
            whs: list = []
            costs: list = []
            mon = _month(d)
            for i in range(n - 1, -1, -1):
                s = base + i
                need = full
                if name == "months":
                    need = _mdays(mon - i)
                own = self.v[s]
                nown = self.n[s]
                cost = self.v[_N + s]
                ncost = self.n[_N + s]
                if i == 0:
                    need = 1 if name == "days" else (d % 7 + 1 if name == "weeks" else dom)
                    if today is not None:
                        own += today
                        nown += 1
                        if tc is not None:
                            cost += tc
                            ncost += 1
                if nown == need:
                    whs.append(own)
                    costs.append(cost if ncost == need else None)
                else:
                    mw = self.v[2 * _N + s]
                    whs.append(mw if mw >= 0 else None)
                    costs.append(None)
            out[name] = whs
            out[name + "_cost"] = costs
        return out

    # -- the file (store/history_file.py, imported only to read or write it) --
    def save(self):
        if self.path is not None and self.day >= 0:
            from store import history_file

            history_file.save(self)
            _drop()

    def _load(self):
        if self.path is not None:
            from store import history_file

            why = history_file.load(self)
            _drop()
            if why is not None:
                self._set_aside(why)

    def _set_aside(self, why):
        # History we cannot trust: dropped, counted, named; the app raises
        # faults.HISTORY_LOST while `damaged` is non-zero.
        self.damaged += 1
        self.why = why
        self.day = -1
        self._start = -1
        for i in range(3 * _N):
            self.v[i] = 0 if i < 2 * _N else -1
        for i in range(2 * _N):
            self.n[i] = 0
        self._dirty = False
        if self.path is not None:
            try:
                os.remove(self.path)
            except OSError:
                pass
