"""Prepayment, Metering state/identity and Messaging bytes against zigpy.

* Read Attributes Responses serialised by zigpy.zcl.foundation, with the
  Metering cluster's own attribute types (SupplyStatus, MeteringStatus,
  AmbientConsumptionIndicator, SiteId, MeterSerialNumber) and zigpy field
  types for Prepayment (zigpy 2.4.0 defines Prepayment and Messaging by id
  only), must decode in the firmware to the values zigpy put in.
* The emulator's DisplayMessage / CancelMessage (tools/ihd/emulators/ncp_extras.py,
  zigpy field types) decode in the firmware to the emulator's message.
* The firmware's GetLastMessage parses in zigpy as a cluster-specific,
  client-to-server command 0x00 with no payload.
"""

from __future__ import annotations

import json
import random

import zigpy.types as zt
from zigpy.zcl import foundation as f
from zigpy.zcl.clusters.smartenergy import Metering

from ihd.emulators import ncp_extras  # noqa: E402

M = Metering


def read_rsp(tsn: int, records) -> bytes:
    hdr = f.ZCLHeader.general(tsn, f.GeneralCommand.Read_Attributes_rsp, direction=f.Direction.Server_to_Client)
    recs = [
        f.ReadAttributeRecord(a, f.Status.SUCCESS, f.TypeValue(f.DataType.from_python_type(t).type_id, t(v)))
        for a, t, v in records
    ]
    return (
        hdr.serialize()
        + f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes_rsp].schema(status_records=recs).serialize()
    )


FIRMWARE = """
import json
from meter import message, zcl_messaging, zcl_prepay
for cl, h in FRAMES:
    x = zcl_prepay.Extras()
    d = bytes.fromhex(h)
    r = x.handle(cl, d, 0, len(d))
    print(json.dumps([r, x.credit, x.emergency, x.credit_status, x.debt, x.ihd_low, x.supply, x.status, x.ambient,
                      x.site_id, x.serial, x.provider]))
m = message.Messages()
c = zcl_messaging.MessagingClient(m)
for h in MSGS:
    d = bytes.fromhex(h)
    print(json.dumps([c.handle(d, 0, len(d)), m.current(START)]))
buf = bytearray(8)
print(bytes(buf[:zcl_prepay.build_get_last_message(buf, 0x5A)]).hex())
"""


def test_prepay_metering_messaging_against_zigpy(mpy):
    rng = random.Random(7)
    frames, want = [], []
    for i in range(40):
        credit, ec, debt = (rng.randint(-(2**31) + 1, 2**31 - 1) for _ in range(3))
        cs, low = rng.randrange(256), rng.randrange(2**32 - 1)
        frames.append(
            (
                0x0705,
                read_rsp(
                    i,
                    [
                        (0x0001, zt.int32s, credit),
                        (0x0002, zt.int32s, ec),
                        (0x0003, zt.bitmap8, cs),
                        (0x0005, zt.int32s, debt),
                        (0x0032, zt.uint32_t, low),
                    ],
                ),
            )
        )
        want.append([0, credit, ec, cs, debt, low, None, None, None, None, None, None])
        supply, status, amb = rng.randrange(3), rng.randrange(256), rng.randrange(3)
        site = "".join(rng.choice("0123456789") for _ in range(13))
        serial = "".join(rng.choice("ABCDEFZ0123456789") for _ in range(rng.randint(1, 16)))
        frames.append(
            (
                0x0702,
                read_rsp(
                    i,
                    [
                        (0x0014, M.attributes[0x0014].type, supply),
                        (0x0200, M.attributes[0x0200].type, status),
                        (0x0207, M.attributes[0x0207].type, amb),
                        (0x0307, M.attributes[0x0307].type, site.encode()),
                        (0x0308, M.attributes[0x0308].type, serial.encode()),
                    ],
                ),
            )
        )
        want.append([0, None, None, None, None, None, supply, status, amb, site, serial, None])
    start = 1767225600
    msgs = []
    m = {"id": 77, "minutes": 30, "text": "Your bill is ready: \u00a312.30", "start": start}
    for cmd, body in ((0x00, ncp_extras.display_message(m)), (0x01, ncp_extras.cancel_message(77))):
        hdr = f.ZCLHeader.cluster(5, cmd, direction=f.Direction.Server_to_Client)
        msgs.append((hdr.serialize() + body).hex())
    code = f"FRAMES = {[(c, b.hex()) for c, b in frames]!r}\nMSGS = {msgs!r}\nSTART = {start - 946684800}\n" + FIRMWARE
    out = mpy.run(code, heap="96k").stdout.splitlines()
    got = [json.loads(x) for x in out[: len(frames)]]
    assert got == want
    shown, cancelled = (json.loads(x) for x in out[len(frames) : len(frames) + 2])
    assert shown == [0, {"id": 77, "text": m["text"], "importance": 1, "left_min": 30}], shown
    assert cancelled == [0, None]
    hdr, rest = f.ZCLHeader.deserialize(bytes.fromhex(out[-1]))
    assert hdr.frame_control.is_cluster and hdr.direction == f.Direction.Client_to_Server
    assert not hdr.frame_control.is_manufacturer_specific and hdr.command_id == 0x00 and hdr.tsn == 0x5A and rest == b""
