"""Gas apart from electricity over EZSP, end to end (issue 14 item 2).

The firmware's link (meter/ezsp_link.py, meter/gas.py) against the NCP
emulator with a mirrored gas meter on a second endpoint (tools/ihd/
emulators/gas_meter.py: device type 128, m3 / 1000, a report every 30 simulated
minutes, ConversionFactor 1.02264 and CalorificValue 39.5 MJ/m3 on its
Price cluster), three simulated hours across a midnight at 600x: found at
23:00, today is first the meter's CurrentDayConsumptionDelivered, then
from the first reading after midnight.

The emulator's own figures are the oracle: today's gas is its register
at the last gas reading less the one at the day's first, converted with
exact fractions; no electricity reading carries the gas flag or comes from
the gas endpoint; the gas meter's 30-minute cadence raises no electricity
fault (no gap, no meter silence).
"""

from __future__ import annotations

import json

from ncp_server import START, NcpServer

from ihd.emulators.gas_meter import GAS_EP, GasMeter  # noqa: E402

FIRMWARE = """
import asyncio, faults, json, hal, meter
F = faults.Faults()
E = [0, 0, 0]  # electricity readings, of them flagged gas, summations
def on_reading(t, d, dl, rc, fl):
    E[0] += 1
    E[1] += 1 if fl & 32 else 0
    E[2] += 1 if fl & 4 else 0
link = meter.make_link("ezsp", None, on_reading, F)
async def watch():
    while True:
        await asyncio.sleep_ms(hal.clock.real_ms(300_000))
        g = link.gas and link.gas.gas  # link.gas: None until another endpoint is heard
        if g is not None and hal.clock.valid():
            print("W", json.dumps([hal.clock.utc(), g.register, g.figures()["today_l"]]))
async def main():
    w = asyncio.create_task(watch())
    await link.run()
    w.cancel()
asyncio.run(main())
g = link.gas.gas
print("X", json.dumps({"e": E, "ep": link.meter_ep, "gas": link.gas.figures(), "gas_ep": g and g.ep,
      "register": g and g.register, "base": g and g.base, "gas_readings": g and g.readings, "gaps": link.status.gaps,
      "faults": F.active(), "silent": faults.METER_SILENT, "violations": 0}))
"""


def test_gas_apart_from_electricity_over_ezsp(mpy):
    start = START - 3600  # 23:00 UTC (the zone): midnight in the run
    speed = 600
    gm = GasMeter(start)
    with NcpServer(speed=speed, duration=3 * 3600, start=start, gas=gm) as srv:
        out = mpy.run(
            FIRMWARE,
            heap="256k",
            env={"IHD_UART": f"tcp:127.0.0.1:{srv.port}", "IHD_CLOCK": f"utc={start},speed={speed},invalid"},
            timeout=300,
        ).stdout
    x = json.loads(next(ln for ln in out.splitlines() if ln.startswith("X "))[2:])
    watch = [json.loads(ln[2:]) for ln in out.splitlines() if ln.startswith("W ")]
    # before midnight (found at 23:00, mid-day for this display): today from the meter's
    # CurrentDayConsumptionDelivered, so the day starts at the emulator's register at
    # the previous local midnight
    before = [(reg, today) for utc, reg, today in watch if utc < START - 60 and today is not None]
    assert before, watch
    assert all(reg - today == gm.register(START - 86400) for reg, today in before)
    gas = sorted([(r["t"], r["litres"]) for r in srv.reports if r["kind"] == "gas"])
    gas += [(p["t"], p["litres"]) for p in srv.polls if p["kind"] == "gas_poll"]
    gas.sort()
    assert len([r for r in srv.reports if r["kind"] == "gas"]) == 5  # 23:30 .. 01:30
    today = [litres for t, litres in gas if t >= START]
    # the oracle: the emulator's register, first and last reading of the day
    assert x["gas_ep"] == GAS_EP and x["ep"] == 9
    assert x["base"] == today[0] and x["register"] == today[-1]
    want = GasMeter.wh(today[-1] - today[0])
    assert want > 500 and x["gas"]["today_wh"] == want
    assert abs(x["gas"]["today_kwh"] - want / 1000) < 0.01
    assert x["gas"]["today_l"] == today[-1] - today[0]
    assert x["gas"]["age_s"] is not None and x["gas"]["age_s"] <= 1800 + 120
    assert x["gas_readings"] == len(gas)
    # electricity: every summation report and poll, none of them gas; no fault from the gas cadence
    e_reports = [r for r in srv.reports if r["kind"] in ("demand", "summation")]
    e_polls = [p for p in srv.polls if p["kind"] == "poll"]
    # (one sent in the run's last simulated seconds may not have arrived on a loaded host)
    sent = len(e_reports) + len(e_polls)
    assert x["e"][1] == 0 and sent - 2 <= x["e"][0] <= sent
    assert x["gaps"] == 0 and x["silent"] not in x["faults"]
    # read-only: the firmware asked the gas endpoint, never wrote to it
    assert srv.ncp.violations == 0
