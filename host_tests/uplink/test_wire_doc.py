"""docs/wire-format.md and the code agree: every worked example decodes to what the
document says, its tag verifies, and the firmware builds the device-side ones byte
for byte."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

DOC = ROOT / "docs" / "wire-format.md"
KEY = bytes(range(32))
NONCE = 0x0BADCAFE  # the boot nonce of the examples' device (its HELLO says so)
EPOCH = 0x5EED0001  # and its reading epoch


def examples() -> dict[str, dict]:
    out = {}
    for block in re.findall(r"```wire-example\n(.*?)```", DOC.read_text(), re.S):
        ex: dict = {"hex": "", "readings": [], "commands": []}
        key = None
        for line in block.splitlines():
            m = re.match(r"\s*(\w+):\s*(.*)", line)
            if m:
                key, val = m.groups()
            else:
                val = line.strip()
            if key == "hex":
                ex["hex"] += val.replace(" ", "")
            elif key == "name":
                ex["name"] = val
            elif key == "health":
                ex["health"] = dict(kv.split("=") for kv in val.split())
            elif key == "expect":
                ex["expect"] = dict(kv.split("=") for kv in val.split())
            elif key == "reading":
                ex["readings"].append(tuple(int(x) for x in val.split(",")))
            elif key == "command":
                c = dict(kv.split("=") for kv in val.split())
                ex["commands"].append((int(c["kind"]), int(c["cmd_id"]), bytes.fromhex(c["payload"])))
        out[ex["name"]] = ex
    return out


def test_document_has_the_examples():
    assert set(examples()) == {"hello", "data", "keepalive", "done", "health", "ack", "realtime", "refuse"}


def test_examples_decode_as_documented():
    for name, ex in examples().items():
        raw = bytes.fromhex(ex["hex"])
        d = wire.parse(raw)
        exp = ex["expect"]
        assert d.type == int(exp.pop("type"), 16), name
        if d.type == wire.T_KEEPALIVE:
            assert raw == wire.build_keepalive(KEY, int(exp["device_id"]), int(exp["seq"])), name
            continue
        to_device = d.type in (wire.T_REPLY, wire.T_REFUSE)
        assert wire.verify(d, KEY, NONCE if to_device else None), f"{name}: tag does not verify"
        if to_device:
            assert not wire.verify(d, KEY, NONCE + 1), f"{name}: tag not bound to the nonce"
        for field, val in exp.items():
            assert getattr(d, field) == int(val, 0), (name, field, getattr(d, field), val)
        if d.type == wire.T_DATA:
            assert uc.decode(d.payload) == ex["readings"], name
            assert uc.encode(ex["readings"], 1170) == (d.payload, len(ex["readings"]))
        assert d.commands == ex["commands"], name
        if d.type == wire.T_HEALTH:
            got = {k: ",".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in d.health.items()}
            assert got == ex["health"], name
            h = dict(d.health)
            assert wire.build_health(KEY, d.device_id, d.key_id, d.seq, h) == raw, name


def test_health_codes_match_the_firmware_and_the_doc():
    """The reset-cause and OTA-state tables: firmware/uplink/health.py = tools/ihd/uplink/wire.py = the document's
    code table (store health, 0 ok 1 degraded 2 failing, is spelt out in both)."""
    fw = (ROOT / "firmware" / "uplink" / "health.py").read_text()
    for name in ("RESET_CAUSES", "OTA_STATES"):
        m = re.search(name + r" = \((.*?)\)\n", fw, re.S)
        assert m, name
        assert tuple(re.findall(r'"([^"]+)"', m.group(1))) == getattr(wire, name), name
    rows = re.findall(r"^\| (\d+) \| ([\w-]+)[^|]*\| ([\w-]+) \|$", DOC.read_text(), re.M)
    assert [r[1] for r in rows] == list(wire.RESET_CAUSES)
    assert [r[2] for r in rows] == list(wire.OTA_STATES)


FIRMWARE = """
import os
from uplink.session import Session, SeqSource
from uplink.codec import Encoder
from meter.reading import DEV_EPOCH
from uplink import datagram as dg
d = os.getenv("IHD_STATE")
try:
    os.mkdir(d)
except OSError:
    pass
with open(d + "/seq", "w") as f:
    f.write("4096")
ses = Session(4097, 0, bytes(range(32)), SeqSource(d + "/seq", None), epoch=bytearray(b"\\x5e\\xed\\x00\\x01"),
              nonce=b"\\x0b\\xad\\xca\\xfe")
buf = bytearray(dg.MAX_DGRAM)
print("hello", bytes(buf[: ses.hello(buf, 100, 103)[0]]).hex())
enc = Encoder(dg.DATA_CAP)
for r in READINGS:
    enc.add(r[0] - DEV_EPOCH, r[1], r[2], r[3], r[4])  # device seconds in, Unix on the wire
print("data", bytes(buf[: ses.data(buf, 101, enc.count(), 0, enc)[0]]).hex())
print("keepalive", bytes(buf[: ses.keepalive(buf)[0]]).hex())
print("done", bytes(buf[: ses.done(buf, 7, 0)[0]]).hex())
from uplink import health
class Up:
    pass
up = Up()
up.session = ses
up.h_boots = 7
up.h_src = lambda: {"version": "1.1.0", "build": "esp32-s3", "reset_cause": "watchdog", "meter": {"lqi": 180},
    "wifi": {"rssi": -67}, "store": {"fill_pct": 12, "health": "ok"}, "heap_min": 20607,
    "ota": {"state": "confirmed"}, "faults": [14, 21]}
print("health", bytes(buf[: health.send(up, buf)[0]]).hex())
"""


def test_firmware_builds_the_documented_bytes(mpy):
    ex = examples()
    code = FIRMWARE.replace("READINGS", repr(ex["data"]["readings"]))
    out = dict(line.split() for line in mpy.run(code, heap="96k").stdout.splitlines())
    for name in ("hello", "data", "keepalive", "done", "health"):
        assert out[name] == ex[name]["hex"], name
