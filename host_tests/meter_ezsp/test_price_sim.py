"""A simulated day and a bit of the whole device (ihd sim: emulator,
collector, firmware on this test's runtime under its heap cap), over EZSP and
RAVEn: the status snapshot (the dict the display draws and the status line
prints) carries the emulator's tariff and today's cost.

Oracle: the emulator's tariff (tools/ihd/emulators/tariff.py defaults: 27.35p/kWh,
GBP, 53.22p a day on EZSP, none on RAVEn) and its log of the registers it
reported. Each status line's cost_today must be exactly the standing charge
plus cost_wh at the price, rounded half up (Fractions here), and cost_wh the
meter's own register movement since midnight as the emulator logged it
(within the readings in flight when the line was printed). At midnight the
day's cost starts again. The live screen's final image is in DIR/display.png.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction

import pytest

import mpy as mpymod
from ihd.emulators.tariff import Tariff, rounded  # noqa: E402

START = 1767225600  # tools/simproc.START_UTC, a UTC midnight
DAY = 86400


@pytest.mark.parametrize("protocol", ["ezsp", "raven"])
def test_a_simulated_day_shows_the_tariff_and_cost(runtime, protocol, tmp_path):
    out = tmp_path / "sim"
    cmd = mpymod.sim_command(runtime) + ["--protocol", protocol, "--hours", "25", "--speed", "2000"]
    cmd += ["--out", str(out), "--preview-every", "1000"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=mpymod.ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    tf = Tariff(START, standing=5322 if protocol == "ezsp" else None)
    price = Fraction(tf.price * 100, 1000 * 10**tf.digits)  # minor units per Wh
    lines = [json.loads(ln[7:]) for ln in (out / "firmware.log").read_text().splitlines() if ln.startswith("status ")]
    regs = []  # (t, delivered_wh) the meter reported, in time order
    for ln in (out / "emulator.jsonl").read_text().splitlines():
        e = json.loads(ln)
        if e.get("kind") in ("summation", "poll"):
            regs.append((e["t"], e["delivered_wh"]))
    regs.sort()

    def register_at(t):
        before = [w for u, w in regs if u <= t]
        return before[-1] if before else None

    costed = [s for s in lines if s.get("cost_today") is not None]
    assert len(costed) >= len(lines) - 2 and len(costed) > 100, [s.get("cost_today") for s in lines[:5]]
    for s in costed:
        if s["utc"] % DAY < 900:
            continue  # the day rolls at its first reading: on a loaded host, after the status line's clock
        assert (s["price"], s["currency"], s["currency_iso"], s["price_tier"]) == (27.35, "\u00a3", 826, 1), s
        assert s["standing_charge"] == (53.22 if protocol == "ezsp" else None)
        # exact: standing charge + the energy at the price, half up
        assert s["cost_today"] == rounded(tf.standing_minor() + s["cost_wh"] * price), s
        # the energy: the meter's register since midnight (the last one
        # reported before midnight, or the day's first), up to now
        # (EZSP readings are stamped on arrival, a few hundred ms of real
        # time after the emulator logs them: up to 15 simulated minutes at
        # 2000x on a busy host, at midnight as at the status line)
        midnight = s["utc"] - s["utc"] % DAY
        first = next(w for u, w in regs if u >= midnight)
        base_lo, base_hi = register_at(midnight - 900) or first, register_at(midnight + 900) or first
        lo, hi = register_at(s["utc"] - 900) or base_hi, register_at(s["utc"] + 900)
        assert lo - base_hi <= s["cost_wh"] <= hi - base_lo, (s["utc"], s["cost_wh"], lo - base_hi, hi - base_lo)
    # midnight: a new day's cost
    day2 = [s for s in costed if s["utc"] >= START + DAY + 900]
    day1 = [s for s in costed if s["utc"] < START + DAY]
    assert day2 and day1 and day2[0]["cost_wh"] < day1[-1]["cost_wh"]
    assert max(s["cost_today"] for s in day1) > 100  # a household's day: pounds, not pence
    assert (out / "display.png").exists()
    last = costed[-1]
    print(
        protocol,
        runtime,
        "status lines",
        len(lines),
        "last cost_today",
        last["cost_today"],
        "p for",
        last["cost_wh"],
        "Wh",
    )
