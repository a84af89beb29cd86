"""Tariff and cost over EZSP, end to end: the firmware's link (meter/ezsp_link.py
with meter/zcl_price.py and meter/price.py) against the NCP emulator, whose
meter is also the ESI's Price server (tools/ihd/emulators/ezsp_ncp.py, tools/ihd/emulators/tariff.py).

The emulator's tariff is the oracle: the price, currency, tier and standing
charge the firmware reports are the ones the emulator published, and today's
cost is computed here in exact Python fractions from the firmware's own
summation readings (each checked against the emulator's log by the other
end-to-end tests), each register step charged at the price the emulator had
in force when it made that reading (ihd.emulators.tariff.Tariff.at), plus the
standing charge. Read-only: everything sent over the air was Read Attributes
or GetCurrentPrice (the emulator counts anything else as a violation).

zigpy 2.4.0 defines the Price cluster's id but none of its commands or
attributes, so there is no third-party decoder for PublishPrice here: the
emulator lays it out from the SE specification with zigpy's field types.
"""

from __future__ import annotations

import json
from fractions import Fraction

from ncp_server import START, NcpServer

from ihd.emulators.tariff import Tariff, rounded  # noqa: E402

HEAP = "256k"
FIRMWARE = """
import asyncio, faults, json, meter
import meter.reading
F = faults.Faults()
def on_reading(u, d, dw, rw, fl):
    print("R", u - meter.reading.NO_TIME, d, dw, rw, fl)
link = meter.make_link("ezsp", None, on_reading, F)
asyncio.run(link.run())
t = link.tariff
t.seed(t.day, 0)  # no store here: the link's first reading starts the day
print("TARIFF", json.dumps({"raw": t.raw, "digits": t.digits, "currency": t.currency, "tier": t.tier,
      "standing": t.standing, "updates": t.updates, "changes": t.changes, "cost": t.cost_today(),
      "exact": t.cost_exact(), "fig": t.figures(1000)}))
p = link.price
print("PRICE", p.frames, p.bad, p.ignored, p.scheduled, link.ez.refused)
"""


def run(mpy, srv, speed):
    out = mpy.run(
        FIRMWARE,
        heap=HEAP,
        env={"IHD_UART": f"tcp:127.0.0.1:{srv.port}", "IHD_CLOCK": f"utc={START},speed={speed},invalid"},
        timeout=300,
    ).stdout
    readings = [tuple(int(x) for x in ln.split()[1:]) for ln in out.splitlines() if ln.startswith("R ")]
    tariff = json.loads(next(ln for ln in out.splitlines() if ln.startswith("TARIFF "))[7:])
    price = [int(x) for x in next(ln for ln in out.splitlines() if ln.startswith("PRICE ")).split()[1:]]
    return readings, tariff, price


def oracle(tf: Tariff, events: list[dict], readings: list[tuple]) -> Fraction:
    """Exact cost (minor units) of the firmware's summation readings with a
    valid time: each step charged at the emulator's price when the emulator
    made the reading that shows the new register value, plus the standing
    charge."""
    made = {}
    for e in sorted((e for e in events if "delivered_wh" in e), key=lambda e: e["t"]):
        made.setdefault(e["delivered_wh"], e["t"])
    summ = [r for r in readings if r[4] & 5 == 5]
    segments = []
    for a, b in zip(summ, summ[1:], strict=False):
        d = b[2] - a[2]
        if d > 0:
            segments.append((d, tf.at(made[b[2]])[0]))
    return tf.cost_minor(segments)


def test_tariff_with_a_price_change_and_standing_charge(mpy):
    # 27.35p/kWh, 53.22p/day; at 10 simulated minutes a new price, tier 2.
    # Before the change: the old price. Prints of this test before the Price
    # client existed: TARIFF raw None (no price), cost None, 0 price frames.
    tf = Tariff(START, price=2735, digits=4, currency=826, standing=5322, changes=[(600, 1450, 2)])
    speed = 40
    with NcpServer(speed=speed, duration=1500, tariff=tf) as srv:
        readings, got, price = run(mpy, srv, speed)
    events = srv.reports + srv.polls
    sent = [e for e in srv.polls if e["kind"] == "price"]
    assert [e["why"] for e in sent][:1] == ["answer"] and any(e["why"] == "change" for e in sent), sent
    assert srv.ncp.violations == 0 and price[4] == 0, price  # read-only: nothing refused, nothing else sent
    asks = [h for c, h, _ in srv.ncp.sent_zcl if c == 0x0700 and h.frame_control.is_cluster]
    assert asks and all(h.command_id == 0 for h in asks)
    # the firmware holds what the emulator published last
    last = sent[-1]
    assert (got["raw"], got["digits"], got["currency"], got["tier"]) == (1450, 4, 826, 2), got
    assert last["raw"] == 1450 and got["standing"] == 5322
    assert got["changes"] == 1 and price[1] == 0  # one change, no bad frame
    # figures: minor units per kWh and per day, the symbol, cost per hour at 1 kW
    fig = got["fig"]
    assert fig["price"] == 14.5 and fig["currency"] == "\u00a3" and fig["currency_iso"] == 826
    assert fig["standing_charge"] == 53.22 and fig["price_tier"] == 2
    assert fig["cost_per_hour"] == 15  # 1 kWh at 14.5p, rounded half up
    # today's cost: exactly the oracle's, standing charge included
    want = oracle(tf, events, readings)
    n, k = got["exact"]
    assert Fraction(n, 10**k) == want, (Fraction(n, 10**k), want)
    assert got["cost"] == rounded(want) and got["cost"] == fig["cost_today"]
    assert want > tf.standing_minor()  # some energy was costed
    print("EZSP cost", float(want), "p ->", got["cost"], "p; price frames", price[0])


def test_no_standing_charge_and_an_unknown_currency(mpy):
    # The meter has no StandingCharge (UNSUPPORTED_ATTRIBUTE): cost is the
    # energy alone. Then a currency we have no symbol for: no money figure.
    tf = Tariff(START, price=3012, digits=3, currency=978, standing=None)
    speed = 40
    with NcpServer(speed=speed, duration=400, tariff=tf) as srv:
        readings, got, _ = run(mpy, srv, speed)
    assert got["standing"] == -1 and got["fig"]["standing_charge"] is None
    assert got["fig"]["currency"] == "\u20ac" and got["fig"]["price"] == 301.2
    want = oracle(tf, srv.reports + srv.polls, readings)
    assert got["cost"] == rounded(want)
    tf = Tariff(START, price=3012, digits=3, currency=999, standing=None)
    with NcpServer(speed=speed, duration=150, tariff=tf) as srv:
        readings, got, _ = run(mpy, srv, speed)
    assert got["raw"] == 3012 and got["currency"] == 999
    assert got["cost"] is None and got["fig"]["price"] is None and got["fig"]["currency"] is None
