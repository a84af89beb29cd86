"""EZSP capture decoding (firmware/meter/ezsp_capture.py via tools/ihd/capture/capture_mpy.py).

A capture is built with bellows (ASH, EZSP schemas) and zigpy (ZCL): an NCP
restart, the legacy-header version answer, extended-header callbacks with
metering reports, a retransmitted duplicate, line noise and a frame with a
broken CRC. Decoded with every chunking, the readings, times and rejected
frames must be exactly the expected ones.
"""

from __future__ import annotations

import bellows.types as t
import pytest
import zigpy.types as zt
from bellows import ash
from bellows.ezsp import EZSP
from zigpy.zcl import foundation as f

import mpy as mpylib

CAPTURE_MPY = mpylib.ROOT / "tools" / "ihd" / "capture" / "capture_mpy.py"


def stuffed(frame) -> bytes:
    return bytes(ash.AshProtocol._stuff_bytes(frame.to_bytes())) + b"\x7e"


def incoming(version: int, cluster: int, zcl: bytes) -> bytes:
    cmd_id, _tx, rx = EZSP._BY_VERSION[version].COMMANDS["incomingMessageHandler"]
    aps = t.EmberApsFrame(
        profileId=0x0109, clusterId=cluster, sourceEndpoint=1, destinationEndpoint=1,
        options=t.EmberApsOption(0x0140), groupId=0, sequence=1,
    )  # fmt: skip
    if version >= 14:
        values = (0, aps, 0, t.EUI64(bytes(8)), 0xFF, 0xFF, 200, -50, 0, zcl)
    else:
        values = (0, aps, 200, -50, 0, 0xFF, 0xFF, zcl)
    data = t.serialize_dict((), dict(zip(rx, values, strict=True)), rx)
    return bytes([0, 0x82, 0x01]) + t.uint16_t(cmd_id).serialize() + data


def report(cluster, attrs) -> bytes:
    hdr = f.ZCLHeader.general(1, f.GeneralCommand.Report_Attributes, direction=f.Direction.Server_to_Client)
    recs = [f.Attribute(a, f.TypeValue(typ, v)) for a, typ, v in attrs]
    return (
        hdr.serialize()
        + f.GENERAL_COMMANDS[f.GeneralCommand.Report_Attributes].schema(attribute_reports=recs).serialize()
    )


def read_rsp(attrs) -> bytes:
    # the meter's answer to the link's setup read (UnitofMeasure, Multiplier, Divisor)
    hdr = f.ZCLHeader.general(3, f.GeneralCommand.Read_Attributes_rsp, direction=f.Direction.Server_to_Client)
    recs = [f.ReadAttributeRecord(a, f.Status.SUCCESS, f.TypeValue(typ, v)) for a, typ, v in attrs]
    return (
        hdr.serialize()
        + f.GENERAL_COMMANDS[f.GeneralCommand.Read_Attributes_rsp].schema(status_records=recs).serialize()
    )


SCALING = [(0x0300, 0x30, zt.enum8(0)), (0x0301, 0x22, zt.uint24_t(1)), (0x0302, 0x22, zt.uint24_t(1000))]


def build(version: int, from_start: bool = True, scaling: bool = True) -> bytes:
    out = b""
    if from_start:  # else the capture begins mid-session, after the version answer
        out += stuffed(ash.RStackFrame(version=2, reset_code=t.NcpResetCode.RESET_POWER_ON))
        version_rsp = bytes([0, 0x80, 0, version, 2, 0x40, 0x74])
        out += stuffed(ash.DataFrame(frm_num=0, re_tx=False, ack_num=1, ezsp_frame=version_rsp))
    frames = [
        incoming(version, 0x000A, report(0x000A, [(0x0000, 0xE2, zt.uint32_t(820540800))])),
        # without the setup answer (capture started after it), nothing can be scaled
        incoming(version, 0x0702, read_rsp(SCALING) if scaling else report(0x0702, [(0x0300, 0x30, zt.enum8(0))])),
        incoming(version, 0x0702, report(0x0702, [(0x0400, 0x2A, zt.int24s(-1500))])),
        incoming(version, 0x0702, report(0x0702, [(0x0000, 0x25, zt.uint48_t(123456))])),
    ]
    for i, fr in enumerate(frames, start=1):
        out += stuffed(ash.DataFrame(frm_num=i % 8, re_tx=False, ack_num=1, ezsp_frame=fr))
        if i == 3:  # the NCP sent the demand report again (our ACK was lost)
            out += stuffed(ash.DataFrame(frm_num=i % 8, re_tx=True, ack_num=1, ezsp_frame=fr))
    # Line noise, then a frame whose CRC was damaged on the wire.
    out += b"\x55\x7d\x31\xaa\x7e"
    bad = bytearray(ash.DataFrame(frm_num=5, re_tx=False, ack_num=1, ezsp_frame=frames[2]).to_bytes())
    bad[-1] ^= 0x01
    out += bytes(ash.AshProtocol._stuff_bytes(bytes(bad))) + b"\x7e"
    return out


@pytest.mark.parametrize("from_start", [True, False])
@pytest.mark.parametrize("version", [8, 13, 16])
@pytest.mark.parametrize("chunk", [1, 7, 256, 0])
def test_capture_decoded(mpy, tmp_path, version, chunk, from_start):
    cap = tmp_path / "cap.bin"
    cap.write_bytes(build(version, from_start))
    out = mpy.run(path=CAPTURE_MPY, args=("ezsp", cap, chunk, 3), heap="128k").stdout.splitlines()
    utc = 1767225600  # 820540800 s after 2000-01-01
    assert [ln for ln in out if ln.startswith("T ")] == [f"T {utc}"]
    readings = [ln for ln in out if ln.startswith("R ")]
    # demand -1500 * 1/1000 kW = -1.5 kW (export); then summation 123.456 kWh
    assert readings == [f"R {utc} -1500 0 0 3", f"R {utc} 0 123456 0 5"]
    bad = [ln for ln in out if ln.startswith("B ")]
    assert [b.split("|")[0] for b in bad] == ["B CRC", "B CRC"], bad  # the noise, and the damaged frame
    good, nbad, ignored, skipped = (int(x) for x in out[-1].split()[1:])
    # RSTACK + version answer + 4 reports + the duplicate; 1 duplicate skipped
    assert (good, nbad, skipped) == ((7 if from_start else 5), 2, 1)


@pytest.mark.parametrize("version", [8, 16])
def test_capture_without_scaling_holds_values_back(mpy, tmp_path, version):
    # A capture started after the setup read: unit known from a report, but
    # not Multiplier/Divisor. The decoder must not guess them: no reading on
    # stdout, and stderr says how many values were held back and why.
    cap = tmp_path / "cap.bin"
    cap.write_bytes(build(version, from_start=False, scaling=False))
    res = mpy.run(path=CAPTURE_MPY, args=("ezsp", cap, 256), heap="128k")
    out = res.stdout.splitlines()
    assert [ln for ln in out if ln.startswith("R ")] == []
    assert "capture_mpy: 2 values held back: the meter's scaling" in res.stderr, res.stderr
    good, nbad, ignored, skipped = (int(x) for x in out[-1].split()[1:])
    assert (good, nbad, skipped) == (5, 2, 1)
