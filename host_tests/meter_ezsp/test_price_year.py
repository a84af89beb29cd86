"""A year of readings through meter/price.py on MicroPython: the pence it
shows each day equal exact arithmetic done here in Python fractions.

The year: a summation every 30 minutes from a household's load (0..9 kW,
seeded), an Economy 7-style tariff (night 00:30-07:30 UTC at one price, day
at another, both with 4-5 trailing digits as meters send them), the supplier
changing both prices and the standing charge every few weeks. The firmware
prints today's cost just before each midnight; this test computes the same
day's cost exactly (Fraction) and rounds half up. On the mp32 runtime (32-bit,
single-precision floats, 31-bit small ints) the figures must be the same
pence as on the wheel and as here: money never passes through a float.
Every other day ends on, or just under, half a penny (its last step chosen
so): a single-precision float accumulator (step x price / 10**digits, summed
in float32) gets 61 of these 365 days wrong by a penny.
"""

from __future__ import annotations

import random
from fractions import Fraction

HEAP = "64k"
DAY = 86400
FIRMWARE = """
from meter import price
from meter.reading import F_SUMMATION, F_TIME_VALID
t = price.Tariff()
OK = F_SUMMATION | F_TIME_VALID
first = True
with open(PATH) as f:
    for line in f:
        p = line.split()
        if p[0] == "R":
            t.reading(int(p[1]), int(p[2]), OK)
            if first:
                t.seed(t.day, 0)
                first = False
        elif p[0] == "P":
            t.set_price(int(p[1]), int(p[2]), 826, int(p[3]))
        elif p[0] == "S":
            t.set_standing(int(p[1]))
        else:
            print("C", t.day, t.cost_today())
"""


def year(seed=11):
    rng = random.Random(seed)
    t0 = 800 * DAY  # device seconds, a UTC midnight
    wh = 12_345_678  # a register well into its life
    night, day, digits, standing = 1325, 2950, 4, 5322
    lines = [f"S {standing}"]
    expect = []  # (day, pence)
    cur = None
    cost = Fraction(0)
    for d in range(365):
        if d and d % 23 == 0:  # the supplier changes the tariff
            digits = rng.choice((4, 5))
            scale = 10 ** (digits - 4)
            night = rng.randrange(900, 2000) * scale + rng.randrange(scale or 1)
            day = rng.randrange(2200, 4200) * scale + rng.randrange(scale or 1)
            standing = rng.randrange(3000, 7000) * scale + rng.randrange(scale or 1)
            lines.append(f"S {standing}")
        cost = Fraction(standing * 100, 10**digits)
        for h in range(48):
            ts = t0 + d * DAY + h * 1800
            s = h * 1800
            want = (night if 1800 <= s < 27000 else day, 1 if 1800 <= s < 27000 else 2)
            if want != cur:
                cur = want
                lines.append(f"P {want[0]} {digits} {want[1]}")
            if d == 0 and h == 0:
                lines.append(f"R {ts} {wh}")
                continue
            step = rng.randrange(0, 4500)  # 0..9 kW for half an hour
            if h == 47 and d % 2 == 0:
                # the day's last step chosen so that the day ends on, or just
                # under, half a penny: where rounding a float goes wrong
                per = Fraction(cur[0] * 100, 1000 * 10**digits)
                best = min(range(4500), key=lambda k: abs(((cost + k * per) % 1) - Fraction(1, 2)))
                step = best
            wh += step
            lines.append(f"R {ts} {wh}")
            if h or d:
                # the step up to this reading is charged at the price in force at it
                cost += Fraction(step * cur[0] * 100, 1000 * 10**digits)
            if h == 47:
                lines.append("C")
                expect.append((800 + d, (2 * cost.numerator + cost.denominator) // (2 * cost.denominator)))
    return lines, expect


def test_a_year_of_pence_exact(mpy, tmp_path):
    lines, expect = year()
    # the tariff changed prices at every 00:30 and 07:30 and every 23 days
    path = tmp_path / "year.txt"
    path.write_text("\n".join(lines) + "\n")
    out = mpy.run(FIRMWARE.replace("PATH", repr(str(path))), heap=HEAP, timeout=600).stdout
    got = [(int(a), None if b == "None" else int(b)) for _, a, b in (ln.split() for ln in out.splitlines())]
    assert len(got) == 365
    assert got == expect, next((g, e) for g, e in zip(got, expect, strict=True) if g != e)
    total = sum(p for _, p in expect)
    assert total > 100_000  # pounds' worth over the year: large sums exercised
    print("a year:", len(lines), "lines,", total, "p over 365 days")
