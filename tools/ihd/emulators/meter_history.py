"""The emulated meter's history and local time, derived from its load profile.

The meter (ihd.emulators.loadprofile.Meter) integrates the household's power into its
delivered register; this module notes that register at every local midnight
the meter passes (advance_to() moves the meter exactly to each midnight
first) and serves, as SE 1.4 Metering attributes in the meter's units:

    0x0401 CurrentDayConsumptionDelivered     0x0403 PreviousDay...
    0x0420, 0x0422 ... 0x042C PreviousDay2..8ConsumptionDelivered  (uint24)
    0x0430 CurrentWeek..., 0x0432 PreviousWeek..., 0x0434..0x043A PreviousWeek2..5 (uint24)
    0x0440 CurrentMonth..., 0x0442 PreviousMonth..., 0x0444..0x045A PreviousMonth2..13 (uint32)

A period the meter did not run through from its start (before the emulator
started, or the first day when it did not start at a midnight) is the
invalid value (all ones): the meter does not make one up. Weeks start on
Monday, months are calendar months, local time is the Time cluster's:

    0x0002 TimeZone (s), 0x0003 DstStart, 0x0004 DstEnd (UTC, ZigBee
    seconds), 0x0005 DstShift (s): UK rules (GMT; BST from the last Sunday of
    March to the last Sunday of October, 01:00 UTC), or none (dst=False).

`uk_offset(t)` gives the RAVEn emulator's LocalTime the same rules.

`history.marks` ({local day: delivered W*s at its midnight}) is kept on the
meter object so the emulator's --meter-state file can carry it across restarts.
"""

from __future__ import annotations

import datetime as dt

DAY = 86400
ZIGBEE_EPOCH = 946684800
A_DAYS = (0x0401, 0x0403) + tuple(range(0x0420, 0x042D, 2))
A_WEEKS = tuple(range(0x0430, 0x043B, 2))
A_MONTHS = tuple(range(0x0440, 0x045B, 2))


def _last_sunday(year: int, month: int) -> int:
    """01:00 UTC on the last Sunday of the month, Unix seconds."""
    d = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    d -= dt.timedelta(days=(d.weekday() + 1) % 7)
    return int(dt.datetime(d.year, d.month, d.day, 1, tzinfo=dt.timezone.utc).timestamp())


def uk_offset(t: int) -> int:
    """UTC offset at Unix second t under UK rules (the RAVEn stick's LocalTime)."""
    y = dt.datetime.fromtimestamp(t, dt.timezone.utc).year
    return 3600 if _last_sunday(y, 3) <= t < _last_sunday(y, 10) else 0


class MeterHistory:
    def __init__(self, meter, tz_s: int = 0, dst: bool = True):
        self.meter = meter
        self.tz = tz_s
        self.dst = dst
        self.marks: dict[int, int] = getattr(meter, "marks", None) or {}
        meter.marks = self.marks
        if int(meter.t) == self.midnight(self.day(int(meter.t))):
            self.marks.setdefault(self.day(int(meter.t)), meter.delivered_ws)
        self.next_mid = self.midnight(self.day(int(meter.t)) + 1)

    # -- local time --------------------------------------------------------------
    def dst_window(self, t: int) -> tuple[int, int] | None:
        if not self.dst:
            return None
        y = dt.datetime.fromtimestamp(t, dt.timezone.utc).year
        return _last_sunday(y, 3), _last_sunday(y, 10)

    def offset(self, t: int) -> int:
        w = self.dst_window(t)
        return self.tz + (3600 if w and w[0] <= t < w[1] else 0)

    def day(self, t: int) -> int:
        """Local day number (days since 1970-01-01 local)."""
        return (t + self.offset(t)) // DAY

    def midnight(self, d: int) -> int:
        m = d * DAY - self.offset(d * DAY)
        return d * DAY - self.offset(m)

    def time_attrs(self, t: int) -> dict[int, int]:
        w = self.dst_window(t)
        return {
            0x0002: self.tz,
            0x0003: (w[0] - ZIGBEE_EPOCH) if w else 0xFFFFFFFF,
            0x0004: (w[1] - ZIGBEE_EPOCH) if w else 0xFFFFFFFF,
            0x0005: 3600 if w else 0,
        }

    # -- the register at midnights ---------------------------------------------------
    def advance_to(self, t: int) -> None:
        """Call before meter.advance_to(t): notes each midnight on the way."""
        while self.next_mid <= t:
            self.meter.advance_to(self.next_mid)
            d = self.day(self.next_mid)
            self.marks[d] = self.meter.delivered_ws
            self.next_mid = self.midnight(d + 1)

    def _ws(self, d0: int, d1: int) -> int | None:
        """W*s delivered from local day d0's midnight to d1's (d1 may be the running day: now)."""
        a = self.marks.get(d0)
        if a is None:
            return None
        b = self.meter.delivered_ws if d1 > self.day(int(self.meter.t)) else self.marks.get(d1)
        return None if b is None else b - a

    def periods(self, t: int) -> dict[int, int | None]:
        """{attribute: energy in Wh or None} at simulated time t (the meter at t)."""
        today = self.day(t)
        out: dict[int, int | None] = {}
        for i, a in enumerate(A_DAYS):
            ws = self._ws(today - i, today - i + 1)
            out[a] = None if ws is None else ws // 3600
        monday = today - (today + 3) % 7  # 1970-01-01 was a Thursday
        for i, a in enumerate(A_WEEKS):
            ws = self._ws(monday - 7 * i, monday - 7 * i + 7)
            out[a] = None if ws is None else ws // 3600
        first = dt.date.fromordinal(dt.date(1970, 1, 1).toordinal() + today).replace(day=1)
        for i, a in enumerate(A_MONTHS):
            y, m = divmod(first.year * 12 + first.month - 1 - i, 12)
            s = dt.date(y, m + 1, 1)
            e = dt.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
            o = dt.date(1970, 1, 1).toordinal()
            ws = self._ws(s.toordinal() - o, e.toordinal() - o)
            out[a] = None if ws is None else ws // 3600
        return out
