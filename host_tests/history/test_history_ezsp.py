"""History and local time over EZSP, end to end: the firmware's link
(meter/ezsp_link.py with meter/zcl_hist.py, meter/localtime.py and
meter/history.py) against the NCP emulator, whose meter has run for three
days before the firmware starts (tools/ihd/emulators/meter_history.py notes its
register at every local midnight).

The emulator's own figures are the oracle: each day, week and month the
firmware shows came from the meter is the one the emulator served, scaled
from the meter's units, and periods the meter does not know stay unknown
(None: "—"). The Time cluster's zone (UK rules) is the emulator's. Read-only:
every frame the firmware sent over the air was Read Attributes or
GetCurrentPrice (the emulator counts anything else as a violation), and the
history and zone reads are among them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "meter_ezsp"))
from ncp_server import START, NcpServer  # noqa: E402

HEAP = "256k"
DAY = 86400
FIRMWARE = """
import asyncio, faults, json, meter
from meter import history
F = faults.Faults()
link = meter.make_link("ezsp", None, lambda *a: h.reading(a[0], a[2], a[4]), F)
h = history.History(None, zone=link.zone, tariff=link.tariff)
link.history = h
asyncio.run(link.run())
z = link.zone
print("HIST", json.dumps({"fig": h.figures(), "zone": [z.source, z.tz, z.dst_start, z.dst_end, z.dst_shift],
      "bad": link.hist_bad, "refused": link.ez.refused}))
"""


def test_the_meters_history_and_time_zone(mpy):
    speed = 100
    # the meter ran from 29 December 2025 (a Monday); the firmware starts
    # at 1 January 00:00 and reads history once past 00:10 (not near midnight)
    with NcpServer(speed=speed, duration=780, meter_start=START - 3 * DAY) as srv:
        out = mpy.run(
            FIRMWARE,
            heap=HEAP,
            env={"IHD_UART": f"tcp:127.0.0.1:{srv.port}", "IHD_CLOCK": f"utc={START},speed={speed},invalid"},
            timeout=300,
        ).stdout
    got = json.loads(next(ln for ln in out.splitlines() if ln.startswith("HIST "))[5:])
    ncp = srv.ncp
    assert ncp.violations == 0 and got["refused"] == 0 and got["bad"] == 0
    # what was asked: the zone and every history attribute, by Read Attributes
    asked = set()
    for cluster, hdr, payload in ncp.sent_zcl:
        if hdr.frame_control.is_general and hdr.command_id == 0:
            asked |= {(cluster, payload[i] | payload[i + 1] << 8) for i in range(0, len(payload), 2)}
    assert {(0x000A, a) for a in (2, 3, 4, 5)} <= asked
    assert {(0x0702, a) for a in (0x0401, 0x0403, 0x042C, 0x0430, 0x043A, 0x0440, 0x045A)} <= asked
    # the zone: GMT, BST from 29 March 2026 01:00 UTC to 25 October (device seconds)
    assert got["zone"] == ["meter", 0, 818 * DAY + 3600, 1028 * DAY + 3600, 3600], got["zone"]
    # the meter's closed days as the emulator serves them (Wh: divisor 1000)
    per = ncp.history.periods(START + 700)
    fig = got["fig"]
    assert fig["days"][-4:-1] == [per[0x0422], per[0x0420], per[0x0403]], (fig["days"], per)
    assert all(v and v > 1000 for v in fig["days"][-4:-1])  # a household's day
    assert fig["days"][:-4] == [None] * 5  # before the meter ran: unknown, not 0
    assert fig["days_cost"] == [None] * 9  # the meter's energy has no cost of ours
    # this week (Monday 29 December on) and this month (since midnight):
    # the meter's figure at the time it was read; earlier ones unknown
    assert fig["weeks"][:-1] == [None] * 5 and fig["weeks"][-1] >= sum(fig["days"][-4:-1])
    assert fig["months"][:-1] == [None] * 13 and 0 < fig["months"][-1] <= per[0x0440]
    assert (fig["weekday"], fig["month"]) == (3, 1)  # Thursday 1 January
    print("history over EZSP:", fig)
