"""Dropout detection (firmware meter/supervise.py) against what the meter did.

The household and its meter are tools/ihd/emulators/loadprofile.py, the emulator's own
model, integrated second by second; reports are made on the emulators'
schedules (demand every 4-10 s, summation every 60 s, EZSP polls every
30 s). The test knows which reports it withheld: that is the oracle. The
firmware's Dropout runs on the Unix port, fed the readings on stdin.

* A clean day gives no F_GAP: RAVEn-style (meter timestamps) and EZSP-style
  (stamped on arrival, up to the jitter late, in bursts), with solar export
  and a 1 Wh register.
* Reports withheld: every hole longer than gap_s + jitter is flagged on the
  first demand reading after it, and nothing is flagged except the first
  demand or summation reading after a withheld stretch.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from ihd.emulators.loadprofile import LoadProfile, Meter  # noqa: E402

START = 1767225600  # 2026-01-01T00:00:00Z
TV, D, S, R, GAP = 1, 2, 4, 8, 16

FEED = """
import sys
from meter import supervise
d = supervise.Dropout(jitter_s=JITTER)
n = 0
while True:
    ln = sys.stdin.readline()
    if not ln:
        break
    i, u, dw, s, r, f = [int(x) for x in ln.split()]
    if d.check(u, dw, s, r, f) & 16:
        print(i)
    n += 1
print("n", n)
"""


def readings(hours: float, *, seed=1, solar=0, style="raven", late=0, lost=()):
    """(index, stamp, demand, delivered, received, flags) as a link passes them,
    plus the meter times of the withheld reports. lost: [(a, b)] meter times."""
    m = Meter(LoadProfile(seed, solar), START)
    rng = random.Random(seed)
    out, withheld = [], []
    next_d, next_s, next_p = START + 3, START + 30, START + 15
    stamp = START
    end = START + int(hours * 3600)
    while True:
        t = min(next_d, next_s, next_p if style == "ezsp" else end)
        if t >= end:
            break
        m.advance_to(t)
        kinds = []
        if t == next_d:
            kinds.append(D)
            next_d += rng.randint(4, 10)
        if t == next_s:
            kinds.append(S)
            next_s += 60
        if style == "ezsp" and t == next_p:
            kinds.append(D | S)  # a poll answer carries both
            next_p += 30
        for k in kinds:
            if any(a <= t < b for a, b in lost):
                withheld.append((t, k))
                continue
            if late:  # stamped on arrival: late by 0..late s, never before the last
                stamp = max(stamp, t + rng.randint(0, late))
            else:
                stamp = t
            dw = m.demand_w() if k & D else 0
            dl = m.delivered_ws // 3600 if k & S else 0
            rc = m.received_ws // 3600 if k & S else 0
            out.append((len(out), stamp, dw, dl, rc, TV | k | (R if k & S else 0), t))
    return out, withheld


def flagged(mpy, rows, jitter: int) -> set[int]:
    feed = "".join(" ".join(str(x) for x in r[:6]) + "\n" for r in rows)
    out = mpy.run(FEED.replace("JITTER", str(jitter)), heap="192k", input=feed.encode()).stdout.split()
    assert out[-2:] == ["n", str(len(rows))]
    return {int(x) for x in out[:-2]}


@pytest.mark.parametrize(
    ("style", "late", "jitter", "solar"),
    [("raven", 0, 1, 0), ("raven", 0, 1, 4000), ("ezsp", 0, 1, 0), ("ezsp", 40, 40, 3000), ("ezsp", 400, 400, 0)],
)
def test_clean_day_has_no_gap(mpy, style, late, jitter, solar):
    rows, _ = readings(24, style=style, late=late, solar=solar, seed=3)
    assert flagged(mpy, rows, jitter) == set()


def test_exact_stamps_assumed_with_late_arrivals_would_flag(mpy):
    # the same late EZSP day judged as if stamps were exact: false gaps
    # (what the soak saw); proves the clean-day test can fail
    rows, _ = readings(24, style="ezsp", late=40, seed=3)
    assert len(flagged(mpy, rows, 1)) > 10


@pytest.mark.parametrize(("style", "late", "jitter"), [("raven", 0, 1), ("ezsp", 40, 40)])
def test_withheld_reports_are_the_gaps(mpy, style, late, jitter):
    rng = random.Random(7)
    lost = []
    t = START + 1800
    while t < START + 12 * 3600:
        dur = rng.choice((5, 12, 200, 600, 1500))  # single reports .. 25 min
        lost.append((t, t + dur))
        t += dur + rng.randint(900, 2400)
    rows, withheld = readings(12, style=style, late=late, lost=lost, solar=2000, seed=5)
    assert withheld
    got = flagged(mpy, rows, jitter)
    meter_t = [r[6] for r in rows]
    allowed = set()
    must = set()
    for a, b in lost:
        after = [i for i, mt in enumerate(meter_t) if mt >= b]
        if not after:
            continue
        first_d = next(i for i in after if rows[i][5] & D)
        first_s = next((i for i in after if rows[i][5] & S), None)
        allowed |= {first_d, first_s}
        before = max((mt for mt in meter_t if mt < a), default=None)
        if before is not None and meter_t[first_d] - before - late > 45 + jitter:
            must.add(first_d)
    assert must and got >= must, sorted(must - got)
    assert got <= allowed, [rows[i] for i in sorted(got - allowed)]
