# Read-only towards the meter: the firmware cannot send anything but a ZCL
# Read Attributes over the air (and, to the Price cluster only, the
# GetCurrentPrice request: it only asks), and cannot build any EZSP frame outside its
# whitelist (no broadcasts, replies, raw MAC frames, leave/permit-join ...).
# Exhaustive over every ZCL frame-control byte and command id, and every
# one-byte EZSP frame id. That these builders are the only way bytes reach
# the UART is checked on the source of every non-RAVEn meter module by
# test_readonly_static.py.
from meter import ezsp, zcl, zcl_messaging, zcl_prepay, zcl_price

HEAP = "96k"  # the wheel compiles the meter modules into the heap


def _try_send(ez, payload, cluster=zcl.METERING):
    try:
        ez.send_unicast(0, ezsp.PROFILE_SE, cluster, 1, 9, 1, payload, len(payload))
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


def test_price_cluster_only_read_and_get_current_price():
    # Price 0x0700: Read Attributes and GetCurrentPrice (cluster-specific,
    # client to server, command 0x00, options 0/1) and nothing else. Every
    # frame-control byte and command id, with 0..2 payload bytes after the
    # header: writes, GetScheduledPrices' siblings that confirm
    # (PriceAcknowledgement 0x02), manufacturer-specific and server-to-client
    # frames are all refused.
    ez = ezsp.Ezsp()
    ez.ext = True
    accepted = []
    for fc in range(256):
        for cmd in range(256):
            for tail in (b"", b"\x00", b"\x01", b"\x02", b"\x00\x00"):
                hdr = bytes([fc, 0x34, 0x12, 1, cmd]) if fc & 0x04 else bytes([fc, 1, cmd])
                if _try_send(ez, hdr + tail, zcl_price.PRICE):
                    accepted.append((fc, cmd, tail))
    assert accepted == [(0x00, 0x00, b"\x00\x00"), (0x01, 0x00, b"\x00"), (0x01, 0x00, b"\x01")], accepted
    # PriceAcknowledgement (0x02) and GetCurrentPrice with a bad option: refused
    assert not _try_send(ez, bytes([0x01, 1, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), zcl_price.PRICE)
    # GetCurrentPrice is refused on any other cluster (Metering, Time, Messaging, Prepayment)
    for cluster in (zcl.METERING, zcl.TIME, 0x0703, 0x0705, 0x0701):
        assert not _try_send(ez, bytes([0x01, 1, 0x00, 0x01]), cluster)


def test_get_current_price_built_by_zcl_price_is_accepted():
    ez = ezsp.Ezsp()
    buf = bytearray(40)
    n = zcl_price.build_get_current_price(buf, 9)
    assert bytes(buf[:n]) == b"\x01\x09\x00\x01", bytes(buf[:n])
    m = ez.send_unicast(0, ezsp.PROFILE_SE, zcl_price.PRICE, 1, 9, 9, buf, n)
    assert ez.tx[m - n - 1] == n
    n = zcl.build_read(buf, 10, zcl_price.PRICE_ATTRS)
    ez.send_unicast(0, ezsp.PROFILE_SE, zcl_price.PRICE, 1, 9, 10, buf, n)


def test_zcl_price_module_builds_only_get_current_price():
    builders = [n for n in dir(zcl_price) if n.startswith("build")]
    assert builders == ["build_get_current_price"], builders


def test_messaging_only_read_and_get_last_message():
    # Messaging 0x0703: Read Attributes and GetLastMessage (cluster-specific,
    # client to server, command 0x00, no payload) only. MessageConfirmation
    # (0x01), GetMessageCancellation (0x02), any payload after
    # GetLastMessage, server-to-client and manufacturer-specific frames:
    # refused. Prepayment 0x0705 and Device Management 0x0708: Read
    # Attributes only (no SelectAvailableEmergencyCredit, ChangeDebt,
    # EmergencyCreditSetup, ConsumerTopUp ..., no ReportEventConfiguration).
    ez = ezsp.Ezsp()
    ez.ext = True
    for cluster, want in (
        (zcl_prepay.MESSAGING, [(0x00, 0x00, b"\x00\x00"), (0x01, 0x00, b"")]),
        (zcl_prepay.PREPAYMENT, [(0x00, 0x00, b"\x00\x00")]),
        (zcl_prepay.DEVICE_MGMT, [(0x00, 0x00, b"\x00\x00")]),
    ):
        accepted = []
        for fc in range(256):
            for cmd in range(256):
                for tail in (b"", b"\x00", b"\x01", b"\x00\x00"):
                    hdr = bytes([fc, 0x34, 0x12, 1, cmd]) if fc & 0x04 else bytes([fc, 1, cmd])
                    if _try_send(ez, hdr + tail, cluster):
                        accepted.append((fc, cmd, tail))
        assert accepted == want, (cluster, accepted)
    # MessageConfirmation as the SE spec lays it out (id, time, control, reply): refused
    conf = bytes([0x01, 5, 0x01, 7, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00])
    assert not _try_send(ez, conf, zcl_prepay.MESSAGING)
    # GetLastMessage is refused on any other cluster
    for cluster in (zcl.METERING, zcl.TIME, zcl_prepay.PREPAYMENT, zcl_prepay.DEVICE_MGMT, 0x0701):
        assert not _try_send(ez, bytes([0x01, 1, 0x00]), cluster)


def test_new_modules_build_only_asks():
    # GetLastMessage is built in zcl_prepay (always loaded); zcl_messaging builds nothing
    assert [n for n in dir(zcl_messaging) if n.startswith("build")] == []
    assert [n for n in dir(zcl_prepay) if n.startswith("build")] == ["build_get_last_message"]
    ez = ezsp.Ezsp()
    buf = bytearray(40)
    n = zcl_prepay.build_get_last_message(buf, 3)
    assert bytes(buf[:n]) == b"\x01\x03\x00"
    ez.send_unicast(0, ezsp.PROFILE_SE, zcl_prepay.MESSAGING, 1, 9, 3, buf, n)
    for cluster, attrs in (
        (zcl_prepay.PREPAYMENT, zcl_prepay.PREPAY_ATTRS),
        (zcl.METERING, zcl_prepay.STATE_ATTRS),
        (zcl.METERING, zcl_prepay.IDENTITY_ATTRS),
        (zcl_prepay.DEVICE_MGMT, zcl_prepay.PROVIDER_ATTRS),
    ):
        n = zcl.build_read(buf, 4, attrs)
        ez.send_unicast(0, ezsp.PROFILE_SE, cluster, 1, 9, 4, buf, n)
