"""A year of readings through meter/price.py and meter/history.py on
MicroPython: every day's, week's and month's pence equal exact arithmetic
done here in Python fractions, on mp32 (32-bit, single-precision floats,
31-bit small ints) as on the wheel.

The year is test_price_year.py's (half-hourly summations, Economy 7 prices
with 4-5 trailing digits, the supplier changing prices and the standing
charge every 23 days; every other day ending on or just under half a
penny). Its oracle gives each day's exact cost; a week's or month's is the
sum of its days' pence as shown, and its energy the sum of the register
steps. The first day is not one the history saw whole: unknown, so is every
week and month that contains it.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "meter_ezsp"))
from test_price_year import year  # noqa: E402

HEAP = "96k"
FIRMWARE = """
import json
from meter import history, price
from meter.reading import F_SUMMATION, F_TIME_VALID
t = price.Tariff()
h = history.History(None, tariff=t)
OK = F_SUMMATION | F_TIME_VALID
first = True
with open(PATH) as f:
    for line in f:
        p = line.split()
        if p[0] == "R":
            ts, wh = int(p[1]), int(p[2])
            t.reading(ts, wh, OK)
            h.reading(ts, wh, OK)
            if first:
                t.seed(t.day, 0)
                first = False
        elif p[0] == "P":
            t.set_price(int(p[1]), int(p[2]), 826, int(p[3]))
        elif p[0] == "S":
            t.set_standing(int(p[1]))
print("FIG", json.dumps(h.figures()))
"""
EPOCH = dt.date(2024, 1, 1)


def test_a_year_of_days_weeks_and_months_exact(mpy, tmp_path):
    lines, expect = year()
    path = tmp_path / "year.txt"
    path.write_text("\n".join(lines) + "\n")
    out = mpy.run(FIRMWARE.replace("PATH", repr(str(path))), heap=HEAP, timeout=600).stdout
    fig = json.loads(next(ln for ln in out.splitlines() if ln.startswith("FIG "))[4:])
    # the oracle's days: pence (exact, rounded half up) and energy (steps)
    pence = dict(expect)
    regs = [(int(p[1]), int(p[2])) for p in (ln.split() for ln in lines) if p[0] == "R"]
    energy: dict[int, int] = {}
    for (_, a), (ts, b) in zip(regs, regs[1:], strict=False):
        energy[ts // 86400] = energy.get(ts // 86400, 0) + b - a
    first, last = min(pence), max(pence)
    ours = set(range(first + 1, last + 1))  # the first day was not seen whole

    def period(days):
        if not set(days) <= ours:
            return None, None
        return sum(energy[d] for d in days), sum(pence[d] for d in days)

    want_days = [period([d]) for d in range(last - 8, last + 1)]
    assert list(zip(fig["days"], fig["days_cost"], strict=True)) == want_days
    monday = last - last % 7  # day 0 (2024-01-01) was a Monday
    want_weeks = [period(range(monday - 7 * i, min(monday - 7 * i + 7, last + 1))) for i in range(5, -1, -1)]
    assert list(zip(fig["weeks"], fig["weeks_cost"], strict=True)) == want_weeks
    months: dict[tuple, list] = {}
    for d in range(last - 450, last + 1):
        x = EPOCH + dt.timedelta(days=d)
        months.setdefault((x.year, x.month), []).append(d)
    keys = sorted(months)[-14:]
    want_months = [period(months[k]) for k in keys]
    assert list(zip(fig["months"], fig["months_cost"], strict=True)) == want_months
    assert fig["month"] == keys[-1][1] and fig["weekday"] == last % 7
    known = [c for c in fig["months_cost"] if c is not None]
    assert len(known) >= 11 and sum(known) > 100_000  # pounds' worth of pence summed per month
    print("a year: months", fig["months"], "pence", fig["months_cost"])
