"""Prepayment, supplier messages, ambient indication and the meter's identity
over EZSP, end to end: the firmware's link (meter/ezsp_link.py with
meter/zcl_prepay.py, meter/zcl_messaging.py, meter/message.py) against the
NCP emulator in prepay mode with a message script (tools/ihd/emulators/supplier.py,
tools/ihd/emulators/ncp_extras.py).

The emulator's figures are the oracle: the credit, emergency credit,
CreditStatus and supply it answered last; the message it displayed, then
cancelled; a second, hostile one (250 bytes, not UTF-8) shown cleaned and
capped, then expired. Read-only: the emulator saw only Read Attributes,
GetCurrentPrice and GetLastMessage (anything else is a violation), and every
frame the firmware sent parses in zigpy.
"""

from __future__ import annotations

import json

from ncp_server import START, NcpServer

from ihd.emulators.supplier import Supplier  # noqa: E402

HEAP = "256k"
FIRMWARE = """
import asyncio, faults, json, hal, meter
from meter.reading import ZIGBEE_EPOCH
F = faults.Faults()
link = meter.make_link("ezsp", None, lambda *a: None, F, supplier=True)
async def watch():
    while True:
        await asyncio.sleep_ms(hal.clock.real_ms(20_000))
        if hal.clock.valid():
            zb = hal.clock.utc() - ZIGBEE_EPOCH
            m = link.messages and link.messages.current(zb)  # None until a message came
            print("W", zb + ZIGBEE_EPOCH - START, json.dumps({"m": m, "p": link.prepay(),
                  "a": link.ambient.figures(), "id": link.identity()}))
async def main():
    w = asyncio.create_task(watch())
    await link.run()
    w.cancel()
asyncio.run(main())
x = link.extras
print("X", json.dumps({"credit": x.credit, "emergency": x.emergency, "status": x.credit_status, "debt": x.debt,
      "supply": x.supply, "refused": link.ez.refused, "msg": [link.messaging.frames, link.messaging.bad],
      "shown": link.messages.shown, "cancelled": link.messages.cancelled, "expired": link.messages.expired,
      "cut": link.messages.cut}))
"""
HOSTILE = b"\xff\xfe\xc3(" + b"Top\x07up now!! " * 6  # 82 bytes, not UTF-8, above the 80 kept


def test_prepay_messages_identity_over_ezsp(mpy):
    # Before this change: no Prepayment/Messaging client (link.prepay and
    # link.messages did not exist: AttributeError in the firmware).
    sup = Supplier(
        credit=2000,  # £0.20 at 4 digits: low credit from the start, falling
        low=20000,
        emergency=50000,
        debt=1520,
        ambient=True,
        script=[
            (100, "display", 7, None, "Planned work on 3 May: your supply may be off 10:00-12:00."),
            (300, "cancel", 7),
            (400, "display", 8, 5, HOSTILE),  # expires at 700
        ],
    )
    speed = 80
    with NcpServer(speed=speed, duration=900, supplier=sup) as srv:
        out = mpy.run(
            FIRMWARE.replace("START", str(START)),
            heap=HEAP,
            env={"IHD_UART": f"tcp:127.0.0.1:{srv.port}", "IHD_CLOCK": f"utc={START},speed={speed},invalid"},
            timeout=300,
        ).stdout
    lines = out.splitlines()
    watch = [(int(ln.split()[1]), json.loads(ln.split(" ", 2)[2])) for ln in lines if ln.startswith("W ")]
    x = json.loads(next(ln for ln in lines if ln.startswith("X "))[2:])
    ncp = srv.ncp
    # read-only: nothing refused in the firmware, no violation at the emulator
    assert x["refused"] == 0 and ncp.violations == 0
    sent = {(c, h.frame_control.is_cluster, h.command_id, len(p)) for c, h, p in ncp.sent_zcl}
    assert (0x0703, True, 0x00, 0) in sent  # GetLastMessage, parsed by zigpy
    assert not [s for s in sent if s[0] == 0x0703 and s[2] != 0]  # never MessageConfirmation (0x01)
    assert {s[0] for s in sent if not s[1]} >= {0x0702, 0x0705, 0x0708}  # reads of the new clusters
    # prepayment: the firmware holds what the emulator answered last
    last = [p for p in srv.polls if p["kind"] == "prepay"][-1]
    assert (x["credit"], x["emergency"], x["status"], x["debt"], x["supply"]) == (
        last["credit"],
        last["emergency"],
        last["status"],
        last["debt"],
        last["supply"],
    ), (x, last)
    p = watch[-1][1]["p"]
    assert p["credit"] == round(last["credit"] / 100) and p["debt"] == 15 and p["low"] is True
    assert p["ec_available"] == bool(last["status"] & 0x08) and p["supply"] == "on"
    # identity and the meter's ambient indicator
    assert watch[-1][1]["id"] == {"status": 0, "site_id": sup.site_id, "serial": sup.serial, "supplier": sup.name}
    assert watch[-1][1]["a"][1] == "meter"
    # the message: shown from 100 to 300 exactly as sent, then cancelled
    msgs = [(t, w["m"]) for t, w in watch]
    shown = [t for t, m in msgs if m and m["id"] == 7]
    assert shown and min(shown) >= 100 and max(shown) <= 300 + 25, msgs
    assert all(
        m["text"] == "Planned work on 3 May: your supply may be off 10:00-12:00." for t, m in msgs if m and m["id"] == 7
    )
    assert all(m is None for t, m in msgs if 330 <= t < 400)
    # the hostile one: cleaned, capped, shown until it expired at 700
    hostile = [m for t, m in msgs if m and m["id"] == 8]
    assert hostile and all(t < 700 + 25 for t, m in msgs if m and m["id"] == 8)
    text = hostile[0]["text"]
    assert text.startswith("???(Top up now!! Top up now!!") and text.endswith("\u2026") and len(text.encode()) <= 83
    assert all(m is None for t, m in msgs if t >= 725)
    assert (x["shown"], x["cancelled"], x["expired"], x["cut"]) == (2, 1, 1, 1), x
    print("EZSP prepay", last, "messages", x["msg"])
