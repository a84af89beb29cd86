# Read-only towards the meter: the firmware cannot send anything but a ZCL
# Read Attributes over the air, and cannot build any EZSP frame outside its
# whitelist (no broadcasts, replies, raw MAC frames, leave/permit-join ...).
# Exhaustive over every ZCL frame-control byte and command id, and every
# one-byte EZSP frame id. That these builders are the only way bytes reach
# the UART is checked on the source of every non-RAVEn meter module by
# test_readonly_static.py.
from meter import ezsp, zcl

HEAP = "64k"


def _try_send(ez, payload):
    try:
        ez.send_unicast(0, ezsp.PROFILE_SE, zcl.METERING, 1, 9, 1, payload, len(payload))
        return True
    except ezsp.NotAllowed:
        return False


def test_only_read_attributes_can_be_sent():
    ez = ezsp.Ezsp()
    ez.ext = True
    accepted = []
    for fc in range(256):
        for cmd in range(256):
            # header (+ manufacturer code when flagged) + one attribute id
            if fc & 0x04:
                payload = bytes([fc, 0x34, 0x12, 1, cmd, 0x00, 0x00])
            else:
                payload = bytes([fc, 1, cmd, 0x00, 0x00])
            if _try_send(ez, payload):
                accepted.append((fc, cmd))
    assert accepted == [(0x00, 0x00)], accepted
    # Write Attributes, Configure Reporting and friends by name, for the record.
    for cmd in (0x02, 0x03, 0x05, 0x06, 0x0B, 0x0C, 0x11, 0x13, 0x15):
        assert not _try_send(ez, bytes([0x00, 1, cmd, 0x00, 0x00]))
    # Cluster-specific commands (e.g. Metering Get Profile, Time sync): refused.
    assert not _try_send(ez, bytes([0x01, 1, 0x00, 0x00, 0x00]))
    assert not _try_send(ez, bytes([0x11, 1, 0x00, 0x00, 0x00]))
    # Malformed reads (no attribute, odd attribute bytes) are refused too.
    assert not _try_send(ez, bytes([0x00, 1, 0x00]))
    assert not _try_send(ez, bytes([0x00, 1, 0x00, 0x00]))
    assert ez.refused > 65000


def test_read_attributes_built_by_zcl_is_accepted():
    ez = ezsp.Ezsp()
    buf = bytearray(40)
    for attrs in (zcl.VALUE_ATTRS, zcl.SETUP_ATTRS, zcl.TIME_ATTRS):
        n = zcl.build_read(buf, 7, attrs)
        m = ez.send_unicast(0, ezsp.PROFILE_SE, zcl.METERING, 1, 9, 7, buf, n)
        assert ez.tx[2] == ezsp.SEND_UNICAST and ez.tx[m - n - 1] == n


def test_ezsp_frame_whitelist():
    ez = ezsp.Ezsp()
    built = []
    for fid in range(256):
        try:
            ez.cmd(fid)
            built.append(fid)
        except ezsp.NotAllowed:
            pass
    assert built == sorted(ezsp.CMD_ALLOWED), built
    # None of the whitelisted ids sends anything over the air except
    # sendUnicast (guarded above): broadcast 0x36, multicast 0x38, reply
    # 0x39, raw 0x96, leave 0x20, permit joining 0x22 are all refused.
    for fid in (0x36, 0x38, 0x39, 0x96, 0x20, 0x22, 0xAB, 0x68 + 1):
        assert fid not in built


def test_zcl_module_builds_no_other_frame():
    # The module's only frame builder is build_read.
    builders = [n for n in dir(zcl) if n.startswith("build")]
    assert builders == ["build_read"], builders
