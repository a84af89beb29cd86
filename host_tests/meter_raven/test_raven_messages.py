"""Supplier messages over RAVEn, end to end: the firmware's link asks
get_message at initialisation and takes the MessageCluster fragments the
emulated stick pushes (tools/ihd/emulators/raven_session.py, tools/ihd/emulators/supplier.py):
a message shown, then cancelled (Queue "Cancel Pending"), a second one with
XML entities, then cancel-all (an empty Text). The emulator's log is the
oracle, and aioraven (RAVEnReaderProtocol and its get_message conversion)
decodes the emulator's fragments to the id and text the firmware showed.
Read-only: only get_* commands, never confirm_message.
"""

from __future__ import annotations

import json
import subprocess
import sys

from ravenlib import TOOLS, aioraven_elements, convert

from mpy import link_heap

sys.path.insert(0, str(TOOLS))
from ihd.emulators.raven_xml import Stick  # noqa: E402

START = 1767225600
FIRMWARE = """
import asyncio, json, board, faults, hal
from meter import make_link
from meter.reading import ZIGBEE_EPOCH
link = make_link("raven", hal.Uart(board.METER_UART), lambda *a: None, faults.Faults(), supplier=True)
async def watch():
    while True:
        await asyncio.sleep_ms(hal.clock.real_ms(10_000))
        if hal.clock.valid():
            u = hal.clock.utc()
            print("W", u - START, json.dumps(link.messages and link.messages.current(u - ZIGBEE_EPOCH)))
async def main():
    w = asyncio.create_task(watch())
    await link.run()
    w.cancel()
asyncio.run(main())
print("X", json.dumps({"shown": link.messages.shown, "cancelled": link.messages.cancelled, "bad": link.bad_messages,
      "id": link.identity(), "prepay": link.prepay()}))
"""
FIRST = "Planned work on 3 May: your supply may be off 10:00-12:00."
SECOND = "Bills & <payments> are changing"


def test_message_shown_then_cancelled_over_raven(mpy, tmp_path):
    # Before this change: MessageCluster was parsed and ignored (no
    # link.messages: AttributeError), get_message was never sent.
    speed, duration = 120, 600
    log = tmp_path / "emu.jsonl"
    emu = subprocess.Popen(
        [sys.executable, "-m", "ihd.emulators", "serve", "--protocol", "raven", "--port", "0",
         "--speed", str(speed), "--duration", str(duration), "--start", str(START), "--log", str(log),
         "--message", f"60:7:-:{FIRST}", "--cancel-message", "240:7", "--message", f"300:9:-:{SECOND}",
         "--cancel-message", "420:all"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(emu.stdout.readline().strip().rsplit(":", 1)[1])
        out = mpy.run(
            FIRMWARE.replace("START", str(START)),
            heap=link_heap(),
            env={"IHD_UART": f"tcp:127.0.0.1:{port}", "IHD_CLOCK": f"utc={START},speed={speed}"},
            timeout=duration / speed + 120,
        ).stdout
    finally:
        emu.wait(60)
    events = [json.loads(x) for x in log.read_text().splitlines()]
    lines = out.splitlines()
    watch = [(int(ln.split()[1]), json.loads(ln.split(" ", 2)[2])) for ln in lines if ln.startswith("W ")]
    x = json.loads(next(ln for ln in lines if ln.startswith("X "))[2:])
    cmds = [e["name"] for e in events if e["kind"] == "cmd"]
    assert "get_message" in cmds and all(c.startswith("get_") for c in cmds), cmds
    sent = [e for e in events if e["kind"] == "message"]
    assert [(e["why"], e["id"]) for e in sent] == [
        ("answer", None),
        ("display", 7),
        ("cancel", 7),
        ("display", 9),
        ("cancel_all", None),
    ], sent
    # aioraven decodes the emulator's fragments to what the firmware shows
    for e in sent[1:]:
        frag = Stick().message(e["t"], e["id"], e["text"], e["queue"])
        tag, raw = aioraven_elements(frag)[0][-1]  # children first, then the fragment
        mc = convert("get_message", raw)
        mid = None if mc.message_id is None else int.from_bytes(mc.message_id, "big")
        assert tag == "MessageCluster" and mid == e["id"]
        assert (mc.text or "") == e["text"] and mc.confirmation_required is False
    shown = {}
    for t, m in watch:
        shown.setdefault(m and (m["id"], m["text"]), []).append(t)
    assert min(shown[(7, FIRST)]) >= 60 and max(shown[(7, FIRST)]) <= 240 + 15, shown
    assert min(shown[(9, SECOND)]) >= 300 and max(shown[(9, SECOND)]) <= 420 + 15, shown
    assert all(m is None for t, m in watch if 255 <= t < 300 or t >= 435)
    assert (x["shown"], x["cancelled"], x["bad"]) == (2, 2, 0), x
    assert x["prepay"] is None and x["id"]["meter_mac"] == "0x00135003001c2d3e"
