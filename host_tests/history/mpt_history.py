# Day, week and month history (meter/history.py) on MicroPython: days
# closed from our own readings with the tariff's exact cost, kept across a
# reboot in the history file, a torn / corrupt / foreign file set aside
# ("—" and counted), local midnight across DST from the Time cluster's
# attributes (byte-level frames), the meter's history attributes filling
# what we did not see, and no allocation per reading.
import os

import micropython

import hal
from meter import history, localtime, price, zcl, zcl_hist
from meter.reading import F_GAS, F_SUMMATION, F_TIME_VALID

HEAP = "160k"  # code compiled from source at import (the wheel) sits in this heap too
OK = F_SUMMATION | F_TIME_VALID
DAY = 86400
MON = 882 * DAY  # 2026-06-01, a Monday, in device seconds (UTC midnight)
RAW, DIGITS, STANDING = 2735, 4, 5322  # 27.35p/kWh, 53.22p a day


def _path():
    return hal.state_dir() + "/history"


def _tariff():
    t = price.Tariff()
    t.set_price(RAW, DIGITS, 826, 1)
    t.set_standing(STANDING)
    return t


def _pence(wh):
    # one day at one price, standing charge included, half up (exact ints)
    n = wh * RAW + STANDING * 1000  # 10**-5 minor units
    return (2 * n + 100000) // 200000


class Link:
    # what meter/zcl_hist.py uses of the EZSP link
    def __init__(self, zone, meter):
        self.zone = zone
        self.meter = meter
        self.history = None


class Feed:
    # Readings every `step` s, `per` Wh each, through the tariff then the
    # history, as the links and the app pass them.
    def __init__(self, h, t, t0, reg=5_000_000, step=300):
        self.h, self.t, self.ts, self.reg, self.step = h, t, t0, reg, step

    def run(self, until, per=25, tick_every=600):
        h, t = self.h, self.t
        while self.ts < until:
            self.ts += self.step
            self.reg += per + (self.ts // self.step) % 7  # uneven steps
            t.reading(self.ts, self.reg, OK)
            h.reading(self.ts, self.reg, OK)
            if self.ts % tick_every == 0:
                h.tick(self.ts)
                t.off = h.off


def _day_energy(t0, step, reg, days):
    # expected Wh of each day: register after the last reading before each
    # midnight (the reading after it carries the step over midnight)
    out = []
    ts, r = t0, reg
    marks = []
    for d in range(days + 1):
        m = t0 + d * DAY
        while ts + step < m:
            ts += step
            r += 25 + (ts // step) % 7
        marks.append(r)
    for d in range(days):
        out.append(marks[d + 1] - marks[d])
    return out


def test_eight_days_of_history_from_our_own_readings():
    t = _tariff()
    h = history.History(_path(), device=77, tariff=t)
    f = Feed(h, t, MON)  # the first reading at 00:05: day 1 is not ours
    f.run(MON + 9 * DAY + 3600)  # into the 10th day (Wednesday 10 June)
    fig = h.figures()
    days = fig["days"]
    assert len(days) == 9 and fig["weekday"] == 2 and fig["month"] == 6
    want = _day_energy(MON, 300, 5_000_000, 9)
    # days[0] is 2 June (8 days ago): ours, like every day after the first
    assert days[:8] == want[1:9], (days, want)
    assert fig["days_cost"][:8] == [_pence(w) for w in want[1:9]]
    assert days[8] is not None and fig["days_cost"][8] is not None  # today so far
    # weeks: this one (Mon 8 - Wed 10 June) ours; the one before lacks 1 June
    assert fig["weeks"][-1] == sum(want[7:9]) + days[8]
    assert fig["weeks"][-2] is None and fig["weeks"][:4] == [None] * 4
    assert fig["months"] == [None] * 14  # June lacks its 1st day
    assert h.closed == 8 and h.writes == 9 and h.damaged == 0  # a write a midnight


def _exists(p):
    try:
        os.stat(p)
        return True
    except OSError:
        return False


def test_daily_totals_survive_a_reboot():
    t = _tariff()
    h = history.History(_path(), device=77, tariff=t)
    f = Feed(h, t, MON)
    f.run(MON + 9 * DAY + 3600)
    h.tick(f.ts)  # the day closed at midnight is written
    before = h.figures()
    assert h.writes >= 1 and _exists(_path())
    # reboot: a new History from the file; the last reading from the store
    t2 = _tariff()
    h2 = history.History(_path(), device=77, tariff=t2)
    assert h2.damaged == 0
    h2.reading(f.ts, f.reg, OK)  # what resume() passes from the store
    t2.reading(f.ts, f.reg, OK)
    after = h2.figures()
    assert after["days"][:8] == before["days"][:8] and after["days_cost"][:8] == before["days_cost"][:8]
    assert after["days"][8] == before["days"][8]  # today: the day's start register was kept
    # and it goes on: the next midnight closes today, costed (seeded tariff)
    t2.seed(t2.day, after["days"][8])
    f2 = Feed(h2, t2, f.ts, f.reg)
    f2.run(MON + 10 * DAY + 600)
    fig = h2.figures()
    assert fig["days"][:7] == before["days"][1:8]
    assert fig["days"][7] == _day_energy(MON, 300, 5_000_000, 10)[9]
    assert fig["days_cost"][7] == _pence(fig["days"][7])


def _damaged(mutate, why):
    t = _tariff()
    h = history.History(_path(), device=77, tariff=t)
    Feed(h, t, MON).run(MON + 3 * DAY)
    h.tick(MON + 3 * DAY)
    with open(_path(), "rb") as fh:
        b = bytearray(fh.read())
    with open(_path(), "wb") as fh:
        fh.write(mutate(b))
    h2 = history.History(_path(), device=77, tariff=_tariff())
    assert h2.damaged == 1 and why in h2.why, h2.why
    assert h2.figures() is None  # the snapshot's history: unknown, drawn "—"
    assert not _exists(_path())  # set aside: the next day writes a clean one
    return h2


def test_torn_history_file_is_set_aside():
    _damaged(lambda b: b[:100], "torn")


def test_corrupt_history_file_is_set_aside():
    def flip(b):
        b[60] ^= 0x10
        return b

    _damaged(flip, "CRC")


def test_history_file_of_another_device_is_set_aside():
    h = history.History(_path(), device=77, tariff=_tariff())
    Feed(h, h.tariff, MON).run(MON + 2 * DAY)
    h.tick(MON + 2 * DAY)
    h2 = history.History(_path(), device=78)
    assert h2.damaged == 1 and "another device" in h2.why and h2.figures() is None


def test_clock_gone_back_sets_history_aside():
    h = history.History(_path(), device=77, tariff=_tariff())
    Feed(h, h.tariff, MON).run(MON + 3 * DAY)
    h.tick(MON - 5 * DAY)
    assert h.damaged == 1 and "clock went back" in h.why and h.figures() is None


def _time_rsp(tz, start, end, shift):
    # Read Attributes Response, Time cluster: TimeZone int32, DstStart
    # uint32, DstEnd uint32, DstShift int32
    def rec(attr, t, v):
        return bytes((attr, 0, 0, t)) + bytes(((v >> s) & 0xFF for s in (0, 8, 16, 24)))

    return (
        bytes((0x18, 9, 0x01))
        + rec(2, 0x2B, tz & 0xFFFFFFFF)
        + rec(3, 0x23, start)
        + rec(4, 0x23, end)
        + rec(5, 0x2B, shift & 0xFFFFFFFF)
    )


def test_local_midnight_across_dst_from_the_time_cluster():
    # UK 2026: BST from 29 March 01:00 UTC to 25 October 01:00 UTC. The
    # 29th is 23 hours long, 25 October 25 hours; a reading every minute,
    # 1 Wh each.
    z = localtime.Zone()
    link = Link(z, None)
    f = _time_rsp(0, 828061200, 846205200, 3600)
    assert zcl_hist.handle(link, 0x000A, f, 0, len(f))
    assert (z.source, z.tz, z.dst_shift) == ("meter", 0, 3600)
    for d0, lens in ((817, (24, 23, 24)), (1027, (24, 25, 24))):  # 28 March, 24 October 2026
        h = history.History(None, zone=z)
        ts = d0 * DAY - 7200  # two hours before the first UTC midnight
        reg = 1000
        h.tick(ts)
        end = (d0 + 3) * DAY + 2 * 3600
        while ts < end:
            ts += 60
            reg += 1
            h.reading(ts, reg, OK)
            if ts % 600 == 0:
                h.tick(ts)
        days = h.figures()["days"]
        # the three whole local days before today: 60 readings an hour
        assert days[-4:-1] == [60 * n for n in lens], (d0, days)
        assert z.midnight(d0 + 2) == (d0 + 2) * DAY - (3600 if d0 == 817 else 0)


def test_southern_hemisphere_dst_from_the_time_cluster():
    # Sydney 2026: the Time cluster gives this year's dates, so the end
    # (5 April 03:00 AEDT = 4 April 16:00 UTC) comes before the start
    # (4 October 02:00 AEST = 3 October 16:00 UTC). UTC+10, DST +1 h: 5 April
    # is 25 hours long, 4 October 23. Before: no DST at all (start >= end).
    z = localtime.Zone()
    f = _time_rsp(36000, 844358400, 828633600, 3600)
    assert zcl_hist.handle(Link(z, None), 0x000A, f, 0, len(f))
    assert z.offset(745 * DAY) == 39600 and z.offset(882 * DAY) == 36000 and z.offset(1065 * DAY) == 39600
    for first, start, lens in ((823, 11, (24, 25, 24)), (1005, 12, (24, 23, 24))):
        h = history.History(None, zone=z)
        ts = first * DAY + start * 3600  # two hours before the first local midnight
        reg = 1000
        h.tick(ts)
        end = ts + 3 * DAY + 4 * 3600
        while ts < end:
            ts += 60
            reg += 1
            h.reading(ts, reg, OK)
            if ts % 600 == 0:
                h.tick(ts)
        days = h.figures()["days"]
        assert days[-4:-1] == [60 * n for n in lens], (first, days)
    assert z.midnight(825) == 824 * DAY + 13 * 3600  # 5 April 00:00 AEDT


def test_one_reading_stamped_far_ahead_does_not_wipe_the_history():
    t = _tariff()
    h = history.History(None, device=77, tariff=t)
    f = Feed(h, t, MON)
    f.run(MON + 9 * DAY + 3600)
    before = h.figures()
    h.reading(f.ts + 400 * DAY, f.reg + 10, OK)  # a year ahead, once
    f.run(MON + 9 * DAY + 7200)  # the next readings are on time again
    after = h.figures()
    assert after["days"][:8] == before["days"][:8] and after["weeks"][:-1] == before["weeks"][:-1], (before, after)
    assert h.back == 1
    # a real jump (a device off for a week) is taken at its second reading
    f.ts += 7 * DAY
    f.run(f.ts + 600)
    fig = h.figures()
    assert fig["days"][-8:-1] == [None] * 7 and h.back == 2 and h.day == (f.ts + h.off) // DAY, fig


def test_the_meter_fills_what_we_did_not_see():
    t = _tariff()
    h = history.History(None, device=1, tariff=t)
    Feed(h, t, MON).run(MON + 3 * DAY + 3600)  # 1 June is not ours, 2 and 3 are
    m = zcl.Meter(lambda *a: None, None)
    m.unit, m.multiplier, m.divisor, m._known = 0, 1, 1000, 0x1C
    m._rescale()
    link = Link(localtime.Zone(), m)
    link.history = h

    def rsp(attrs):
        b = bytes((0x18, 5, 0x01))
        for a, v in attrs:
            b += bytes((a & 0xFF, a >> 8, 0, 0x22)) + bytes(((v >> s) & 0xFF for s in (0, 8, 16)))
        return b

    # the meter: today 1.234 kWh, yesterday 9.999, 2 days ago 8.888, 3 days ago 7.5, then invalid
    f = rsp(((0x0401, 1234), (0x0403, 9999), (0x0420, 8888), (0x0422, 7500), (0x0424, 0xFFFFFF)))
    assert zcl_hist.handle(link, 0x0702, f, 0, len(f))
    fig = h.figures()
    own = _day_energy(MON, 300, 5_000_000, 3)
    # ours where we saw the day (with cost), the meter's for 1 June (no cost)
    assert fig["days"][-4:] == [7500, own[1], own[2], fig["days"][-1]]
    assert fig["days_cost"][-4] is None and fig["days_cost"][-3] == _pence(own[1])
    assert fig["days"][-5] is None  # invalid: unknown
    # a malformed frame changes nothing and is counted
    bad = f[:-2]
    assert not zcl_hist.handle(link, 0x0702, bad, 0, len(bad))


def test_a_meter_figure_beyond_int32_is_unknown_not_wrapped():
    # The history's slots are an int32 array: MicroPython wraps a larger
    # value silently (5e9 became 705,032,704 on mp32, a plausible figure).
    t = _tariff()
    h = history.History(None, device=1, tariff=t)
    Feed(h, t, MON).run(MON + 3 * DAY + 3600)
    for wh, want in ((5_000_000_000, None), (0x80000000, None), (0x7FFFFFFF, 0x7FFFFFFF), (12_345, 12_345)):
        h.meter(0x0440, wh)  # the meter's month figure (we did not see that month whole)
        got = h.figures()["months"][-1]
        assert got == want, (wh, got)


def test_a_file_written_on_plain_utc_leaves_the_zone_to_the_configuration():
    # Before: the file saved tz 0 from a device on UTC (no zone from any
    # source), the next boot took that as a "saved" zone, and the app's
    # configured utc_offset_min (applied only while the zone is "utc") never
    # took effect: 'today' and the days were off by the offset.
    t = _tariff()
    h = history.History(_path(), device=78, tariff=t)
    Feed(h, t, MON).run(MON + 2 * DAY + 3600)
    h.tick(MON + 2 * DAY + 3600)
    h2 = history.History(_path(), device=78, tariff=_tariff())
    assert h2.damaged == 0 and h2.zone.source == "utc", h2.zone.source
    # a zone a source gave is kept as saved
    h2.zone.set(-300 * 60, -1, -1, 0, "config")
    h2._dirty = True
    h2.tick(MON + 2 * DAY + 7200)
    h3 = history.History(_path(), device=78, tariff=_tariff())
    assert h3.zone.source == "saved" and h3.zone.tz == -300 * 60, (h3.zone.source, h3.zone.tz)


def test_a_zone_out_of_range_is_refused():
    z = localtime.Zone()
    f = _time_rsp(20 * 3600, 828061200, 846205200, 3600)
    assert zcl_hist.handle(Link(z, None), 0x000A, f, 0, len(f))
    assert (z.source, z.tz, z.rejected) == ("utc", 0, 1)
    f = _time_rsp(-5 * 3600, 0xFFFFFFFF, 0xFFFFFFFF, 3600)  # no DST
    zcl_hist.handle(Link(z, None), 0x000A, f, 0, len(f))
    assert (z.source, z.tz, z.dst_start, z.offset(MON)) == ("meter", -18000, -1, -18000)


def test_gas_and_invalid_readings_do_not_count():
    h = history.History(None)
    h.reading(MON + 10, 100, OK | F_GAS)
    h.reading(MON + 10, 100, F_SUMMATION)  # no valid time
    assert h.day == -1


def test_no_allocation_per_reading():
    h = history.History(None, tariff=_tariff())
    h.reading(MON + 60, 1000, OK)
    ts, reg = MON + 60, 1000
    micropython.heap_lock()
    try:
        for _ in range(500):
            ts += 5
            reg += 1
            h.reading(ts, reg, OK)
    finally:
        micropython.heap_unlock()
    assert h.today_wh() is None  # the first day is not ours
