"""Tariff and cost over RAVEn, end to end: the firmware's link asks
get_current_price and reads the PriceCluster fragments the emulated stick
answers and pushes on a tariff change (tools/ihd/emulators/raven_session.py,
tools/ihd/emulators/tariff.py). The emulator's tariff is the oracle: today's cost is
computed here in exact fractions from the firmware's summation readings,
each register step at the price the stick had in force when the meter made
that reading. The RAVEn API has no standing charge: cost is the energy's.
aioraven's own PriceCluster parsing is checked against the firmware's in
test_raven_oracle.py; its currency table against the firmware's here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

from aioraven.data import convert_currency
from ravenlib import ROOT

from ihd.emulators.tariff import Tariff, rounded  # noqa: E402
from mpy import link_heap

START = 1767225600  # 2026-01-01T00:00:00Z


def run(mpy, tmp_path, speed, duration, *emu_args):
    log = tmp_path / "emu.jsonl"
    emu = subprocess.Popen(
        [sys.executable, "-m", "ihd.emulators", "serve", "--protocol", "raven", "--port", "0",
         "--speed", str(speed), "--duration", str(duration), "--start", str(START), "--log", str(log), *emu_args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(emu.stdout.readline().strip().rsplit(":", 1)[1])
        out = mpy.run(
            path=ROOT / "host_tests" / "meter_raven" / "run_link.py",
            args=("raven",),
            heap=link_heap(),
            env={"IHD_UART": f"tcp:127.0.0.1:{port}", "IHD_CLOCK": f"utc={START},speed={speed}"},
            timeout=duration / speed + 120,
        ).stdout
    finally:
        emu.wait(60)
    readings = [tuple(int(x) for x in ln.split()[1:]) for ln in out.splitlines() if ln.startswith("R ")]
    tariff = json.loads(next(ln for ln in out.splitlines() if ln.startswith("T "))[2:])
    events = [json.loads(x) for x in log.read_text().splitlines()]
    return readings, tariff, events


def test_tariff_and_cost_over_raven(mpy, tmp_path):
    # 27.35p/kWh, then 14.50p/kWh (tier 2) from 10 simulated minutes. Before
    # this change the link never asked for a price and had no tariff.
    tf = Tariff(START, price=2735, digits=4, currency=826, standing=None, changes=[(600, 1450, 2)])
    readings, got, events = run(mpy, tmp_path, 120, 1800, "--price-at", "600:1450:2", "--seed", "4")
    prices = [e for e in events if e["kind"] == "price"]
    assert [e["why"] for e in prices][:1] == ["answer"] and any(e["why"] == "change" for e in prices), prices
    assert any(e["kind"] == "cmd" and e["name"] == "get_current_price" for e in events)
    assert (got["raw"], got["digits"], got["currency"], got["tier"]) == (1450, 4, 826, 2), got
    assert got["standing"] == -1 and got["changes"] == 1
    fig = got["fig"]
    assert (fig["price"], fig["currency"], fig["standing_charge"], fig["price_tier"]) == (14.5, "\u00a3", None, 2)
    made = {}
    for e in events:
        if e["kind"] == "summation":
            made.setdefault(e["delivered_wh"], e["t"])
    summ = [r for r in readings if r[4] & 5 == 5]
    segments = [(b[2] - a[2], tf.at(made[b[2]])[0]) for a, b in zip(summ, summ[1:], strict=False) if b[2] > a[2]]
    want = tf.cost_minor(segments)
    assert len(segments) > 10 and {p for _, p in segments} == {2735, 1450}
    n, k = got["exact"]
    assert Fraction(n, 10**k) == want, (Fraction(n, 10**k), want)
    assert got["cost"] == rounded(want) == fig["cost_today"]
    print("RAVEn cost", float(want), "p ->", got["cost"], "p")


def test_currency_table_agrees_with_aioraven(mpy):
    # every currency the firmware has a symbol for has 2 minor digits (ISO 4217, as aioraven's table says)
    out = mpy.run("from meter import price\nprint(sorted(price.CURRENCIES))", heap="64k").stdout
    nums = eval(out.strip())
    assert {826, 978, 840} <= set(nums)
    for n in nums:
        assert convert_currency(hex(n)).exponent == 2, n
