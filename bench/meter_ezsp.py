#!/usr/bin/env python3
"""EZSP meter-link parser benchmark on the MicroPython Unix port.

Builds a realistic co-processor byte stream with bellows and zigpy (ASH DATA
frames carrying EZSP incomingMessageHandler callbacks with ZCL Report
Attributes: InstantaneousDemand, and every sixth one the two summations),
then on MicroPython feeds it through the firmware's own ASH -> EZSP -> ZCL
pipeline (meter/ash.py, meter/ezsp.py, meter/zcl.py, ACKs written to a null
sink) in 256-byte reads, best of N runs. Reported:

  * bytes_per_s and line_rate_multiple: throughput against the 115200-baud
    line rate (11,520 bytes/s with 8N1 framing);
  * us_per_reading and cpu_share_at_line_rate: CPU per reading, and the
    share of one host core the link would need with the line saturated;
  * link_*: the same stream through the whole EzspLink receive path
    (plus the link's callbacks, supervision and dropout check, and an
    application sink that is a bound method, as on the device);
  * the baseline measured in the same run: a bare byte loop over the same
    data (`for b in buf: x ^= b`), and the ratio of the parser to it, so
    the figure transfers to other hosts (an ESP32-S3 runs MicroPython some
    20-40x slower than a desktop core).

"baselines" pairs them for ihd bench: parser_us and link_us (the whole
stream) with line_us (the same bytes on the line), us_per_reading and
link_us_per_reading with byte_loop_us_per_reading (same run).

    .venv/bin/python bench/meter_ezsp.py [--reports 3000] [--runs 5] [--firmware DIR]
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import bellows.types as t
import zigpy.types as zt
from bellows import ash
from bellows.ezsp import EZSP
from zigpy.zcl import foundation as f

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (IHD_MICROPYTHON: mp32 or the wheel)

LINE_RATE = 11520

SNIPPET = r"""
import gc, time
from meter import ash, ezsp, zcl

class Clock:
    # meter/devclock.py's interface: device seconds, a small int
    def now(self): return 0
    def utc(self): return 0
    def valid(self): return True
    def sync(self): pass

data = open(PATH, "rb").read()
n_readings = [0]
def on_reading(*a):
    n_readings[0] += 1

def once():
    m = zcl.Meter(on_reading, Clock())
    ez = ezsp.Ezsp()
    ez.ext = True
    ez.on_incoming = lambda c, e, s, q, r, b, o, n: m.handle(c, b, o, n)
    a = ash.Ash(lambda b, n: None, ez.frame, lambda k, c: None)
    a.state = ash.CONNECTED
    buf = bytearray(256)
    mv = memoryview(data)
    i = 0
    n_readings[0] = 0
    gc.collect()
    t0 = time.ticks_us()
    while i < len(data):
        k = min(256, len(data) - i)
        buf[:k] = mv[i:i + k]
        a.feed(buf, k)
        i += k
    us = time.ticks_diff(time.ticks_us(), t0)
    return us, n_readings[0], a.rx_good, a.rx_bad

def baseline():
    buf = bytearray(256)
    mv = memoryview(data)
    gc.collect()
    t0 = time.ticks_us()
    i = 0
    x = 0
    while i < len(data):
        k = min(256, len(data) - i)
        buf[:k] = mv[i:i + k]
        for j in range(k):
            x ^= buf[j]
        i += k
    return time.ticks_diff(time.ticks_us(), t0)

import faults
from meter import ezsp_link

class App:
    # the application's sink: a bound method, as app.App.on_reading is
    def __init__(self):
        self.n = 0
    def on_reading(self, u, d, dw, rw, fl):
        self.n += 1

def once_link():
    # the link's whole receive path as the device runs it: ASH (ACKs to a
    # closed UART), EZSP, the link's callbacks, ZCL, supervision and
    # dropout check, the application's bound-method sink
    app = App()
    link = ezsp_link.EzspLink(None, app.on_reading, faults.Faults())
    link.ez.set_version(13)
    link.ash.state = ash.CONNECTED
    buf = bytearray(256)
    mv = memoryview(data)
    i = 0
    gc.collect()
    t0 = time.ticks_us()
    while i < len(data):
        k = min(256, len(data) - i)
        buf[:k] = mv[i:i + k]
        link.ash.feed(buf, k)
        i += k
    return time.ticks_diff(time.ticks_us(), t0), app.n

best = None
for _ in range(RUNS):
    r = once()
    if best is None or r[0] < best[0]:
        best = r
link = min(once_link() for _ in range(RUNS))
base = min(baseline() for _ in range(RUNS))
print(best[0], best[1], best[2], best[3], base, len(data), link[0], link[1])
"""


def stream(reports: int, seed: int = 1) -> bytes:
    # frame 0: the meter's answer to the link's setup read (unit kWh,
    # multiplier 1, divisor 1000): no reading leaves before the scaling is
    # known (meter/zcl.py); then `reports` attribute reports
    rng = random.Random(seed)
    cmds = EZSP._BY_VERSION[13].COMMANDS
    cmd_id, _tx, rx_schema = cmds["incomingMessageHandler"]
    out = bytearray()
    for i in range(-1, reports):
        if i < 0:
            recs = [
                f.ReadAttributeRecord(0x0300, f.Status.SUCCESS, f.TypeValue(0x30, t.uint8_t(0))),
                f.ReadAttributeRecord(0x0301, f.Status.SUCCESS, f.TypeValue(0x22, zt.uint24_t(1))),
                f.ReadAttributeRecord(0x0302, f.Status.SUCCESS, f.TypeValue(0x22, zt.uint24_t(1000))),
            ]
            cmd = f.GeneralCommand.Read_Attributes_rsp
            hdr = f.ZCLHeader.general(1, cmd, direction=f.Direction.Server_to_Client)
            zcl = hdr.serialize() + f.GENERAL_COMMANDS[cmd].schema(status_records=recs).serialize()
        elif i % 6 == 5:
            recs = [
                f.Attribute(0x0000, f.TypeValue(0x25, zt.uint48_t(rng.randrange(10**9)))),
                f.Attribute(0x0001, f.TypeValue(0x25, zt.uint48_t(rng.randrange(10**7)))),
            ]
        else:
            recs = [f.Attribute(0x0400, f.TypeValue(0x2A, zt.int24s(rng.randint(-5000, 12000))))]
        if i >= 0:
            cmd = f.GeneralCommand.Report_Attributes
            hdr = f.ZCLHeader.general(i & 0xFF, cmd, direction=f.Direction.Server_to_Client)
            zcl = hdr.serialize() + f.GENERAL_COMMANDS[cmd].schema(attribute_reports=recs).serialize()
        aps = t.EmberApsFrame(
            profileId=0x0109,
            clusterId=0x0702,
            sourceEndpoint=9,
            destinationEndpoint=1,
            options=t.EmberApsOption(0x0140),
            groupId=0,
            sequence=i & 0xFF,
        )
        fields = dict(
            type=t.EmberIncomingMessageType.INCOMING_UNICAST,
            apsFrame=aps,
            lastHopLqi=rng.randint(150, 255),
            lastHopRssi=rng.randint(-80, -40),
            sender=0,
            bindingIndex=0xFF,
            addressIndex=0xFF,
            messageContents=zcl,
        )
        ezsp = bytes([i & 0xFF, 0x82, 0x01]) + t.uint16_t(cmd_id).serialize() + t.serialize_dict((), fields, rx_schema)
        frame = ash.DataFrame(frm_num=(i + 1) % 8, re_tx=False, ack_num=0, ezsp_frame=ezsp)
        out += bytes(ash.AshProtocol._stuff_bytes(frame.to_bytes())) + b"\x7e"
    return bytes(out)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reports", type=int, default=3000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--firmware", type=Path, default=ROOT / "firmware", help="firmware tree to measure (before/after)")
    args = p.parse_args()
    data = stream(args.reports)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.bin"
        path.write_bytes(data)
        code = SNIPPET.replace("PATH", repr(str(path))).replace("RUNS", str(args.runs))
        script = Path(tmp) / "bench.py"
        script.write_text(code)
        env = {"MICROPYPATH": f"{args.firmware}:{ROOT / 'boards' / 'unix'}:.frozen", "IHD_STATE": tmp}
        proc = subprocess.run(
            [str(mpruntime.binary()), "-X", "heapsize=256k", str(script)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"micropython failed:\n{proc.stdout}{proc.stderr}")
    us, readings, good, bad, base_us, n, link_us, link_readings = (int(x) for x in proc.stdout.split())
    if readings != args.reports or bad or link_readings != args.reports:
        raise SystemExit(f"pipeline lost data: {readings}/{link_readings} readings of {args.reports}, {bad} bad frames")
    bps = n * 1e6 / us
    line_us = n * 1e6 / LINE_RATE  # the same bytes at 115200 baud, 8N1
    print(
        json.dumps(
            {
                "bytes": n,
                "frames": good,
                "readings": readings,
                "bytes_per_s": round(bps),
                "line_rate_bytes_per_s": LINE_RATE,
                "line_rate_multiple": round(bps / LINE_RATE, 1),
                "us_per_reading": round(us / readings, 1),
                "cpu_share_at_line_rate": round(LINE_RATE / bps, 4),
                "baseline_byte_loop_bytes_per_s": round(n * 1e6 / base_us),
                "parser_vs_byte_loop": round(us / base_us, 2),
                "link_us_per_reading": round(link_us / readings, 1),
                "link_line_rate_multiple": round(n * 1e6 / link_us / LINE_RATE, 1),
                "link_vs_byte_loop": round(link_us / base_us, 2),
                # Times for the whole stream and per reading, so ihd bench
                # can put each beside its baseline (its ratio: baseline / figure).
                "parser_us": us,
                "link_us": link_us,
                "line_us": round(line_us),
                "line_us_per_reading": round(line_us / readings, 1),
                "byte_loop_us": base_us,
                "byte_loop_us_per_reading": round(base_us / readings, 2),
                # Throughput against the wire (ratio = multiple of the line
                # rate: the margin), CPU per reading against the bare byte
                # loop over the same bytes in the same run (ratio < 1: the
                # parser costs 1/ratio byte loops; carries over between hosts).
                "baselines": {
                    "parser_us": "line_us",
                    "link_us": "line_us",
                    "us_per_reading": "byte_loop_us_per_reading",
                    "link_us_per_reading": "byte_loop_us_per_reading",
                },
                "host": "MicroPython Unix port (64-bit), best of %d runs" % args.runs,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
