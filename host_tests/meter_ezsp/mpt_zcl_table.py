# Scaling and formatting table tests for meter/zcl.py. Every expected value
# below was worked out by hand from the ZCL/SE definitions (stated per row),
# not by running the code: multiplier/divisor with 0 meaning 1, unit
# conversions, int24 sign, BCD units, gas volumes, formatting bytes.
from meter import reading, zcl
from meter.reading import F_DEMAND, F_ESTIMATED, F_GAS, F_RECEIVED, F_SUMMATION, F_TIME_VALID

HEAP = "64k"


class Clock:
    # a meter.devclock.DevClock: device seconds (2026-01-01T00:00:00Z)
    def now(self):
        return 1767225600 - reading.DEV_EPOCH

    def valid(self):
        return True


def meter():
    out = []
    times = []
    # readings recorded with Unix seconds, as the tables below are written
    m = zcl.Meter(lambda t, *r: out.append((t + reading.DEV_EPOCH,) + r), Clock(), times.append)
    return m, out, times


def rec(attr, typ, value, width):
    b = bytearray([attr & 0xFF, attr >> 8, typ])
    for i in range(width):
        b.append((value >> (8 * i)) & 0xFF)
    return bytes(b)


def report(m, *records, cluster=zcl.METERING):
    frame = bytes([0x18, 0x01, 0x0A]) + b"".join(records)
    return m.handle(cluster, frame, 0, len(frame))


def setup(m, unit, mult, div, dev=0):
    assert report(m, rec(0x0300, 0x30, unit, 1), rec(0x0301, 0x22, mult, 3), rec(0x0302, 0x22, div, 3),
                  rec(0x0306, 0x18, dev, 1)) == zcl.OK  # fmt: skip


def test_summation_table():
    # (unit, multiplier, divisor, raw uint48, expected Wh or litres, why)
    rows = (
        (0x00, 1, 1000, 123456, 123456, "123.456 kWh = 123456 Wh"),
        (0x00, 0, 0, 5, 5000, "0 means 1: 5 kWh"),
        (0x00, 10, 3, 1, 3333, "10/3 kWh = 3333.33 Wh, rounded"),
        (0x00, 1, 3, 2, 667, "2/3 kWh = 666.67 Wh, rounded up"),
        (0x00, 1, 100000, 281474976710654, 2814749767107, "largest valid uint48 (2^48-2) / 1e5 kWh"),
        (0x01, 1, 1000, 12345, 12345, "12.345 m3 = 12345 l"),
        (0x02, 1, 1, 100, 2832, "100 ft3 = 2831.6846592 l"),
        (0x03, 1, 100, 1, 28, "0.01 ccf = 1 ft3 = 28.3168 l"),
        (0x04, 1, 1, 10, 38, "10 US gal = 37.854 l"),
        (0x05, 1, 1, 10, 45, "10 imperial gal = 45.4609 l"),
        (0x06, 1, 1, 3412, 1000, "3412 BTU = 999.96 Wh"),
        (0x07, 1, 1, 42, 42, "litres"),
        (0x0A, 1, 1000, 1, 28, "0.001 mcf = 1 ft3"),
        (0x0C, 1, 1, 9, 2500, "9 MJ = 2500 Wh"),
    )
    for unit, mult, div, raw, exp, why in rows:
        m, out, _ = meter()
        setup(m, unit, mult, div)
        assert report(m, rec(0x0000, 0x25, raw, 6)) == zcl.OK
        assert len(out) == 1, why
        assert out[0][2] == exp, (why, out[0])
        assert out[0][4] & F_SUMMATION and not out[0][4] & F_DEMAND, why


def test_demand_sign_and_export():
    rows = (
        (1, 1000, 0x0004D2, 1234, "1.234 kW"),
        (1, 1000, 0xFFFF38, -200, "int24 -200 = exporting 0.2 kW"),
        (1, 1000, 0x7FFFFF, 8388607, "largest int24"),
        (1, 1000, 0x800001, -8388607, "most negative valid int24"),
        (5, 2, 0xFFFFFF, -2500, "-1 * 5/2 kW = -2.5 kW"),
        (0, 0, 0x000003, 3000, "0 means 1: 3 kW"),
    )
    for mult, div, raw, exp, why in rows:
        m, out, _ = meter()
        setup(m, 0, mult, div)
        assert report(m, rec(0x0400, 0x2A, raw, 3)) == zcl.OK
        assert out[-1][1] == exp and out[-1][4] & F_DEMAND, (why, out)
    # The meter labelling demand uint24 still means int24 (spec type).
    m, out, _ = meter()
    setup(m, 0, 1, 1000)
    report(m, rec(0x0400, 0x22, 0xFFFF38, 3))
    assert out[-1][1] == -200


def test_demand_in_mj_per_second():
    m, out, _ = meter()
    setup(m, 0x0C, 1, 1000)
    report(m, rec(0x0400, 0x2A, 1, 3))
    assert out[-1][1] == 1000  # 0.001 MJ/s = 1 kW


def test_bcd_units():
    m, out, _ = meter()
    setup(m, 0x80, 1, 1000)  # kWh in BCD
    report(m, rec(0x0000, 0x25, 0x001234567890, 6), rec(0x0400, 0x2A, 0x000150, 3))
    assert out[-1][2] == 1234567890  # 1234567.890 kWh
    assert out[-1][1] == 150  # BCD 000150 -> 0.150 kW
    n = len(out)
    report(m, rec(0x0000, 0x25, 0x00000000001A, 6))  # 'A' is not a decimal digit
    assert len(out) == n and m.invalid_values == 1
    m, out, _ = meter()
    setup(m, 0x81, 1, 100, dev=1)  # m3 in BCD, gas meter
    report(m, rec(0x0000, 0x25, 0x000000012345, 6))
    assert out[-1][2] == 123450 and out[-1][4] & F_GAS  # 123.45 m3


def test_gas_flags_and_no_reading_before_scaling_is_known():
    m, out, _ = meter()
    setup(m, 0x00, 1, 1000, dev=1)  # gas meter reporting kWh (calorific) -> still gas
    report(m, rec(0x0000, 0x25, 5, 6))
    assert out[-1][4] & F_GAS
    # Unit, multiplier and divisor not read yet: a value would be a guess
    # (127 with divisor 1000 unread reads as 127 kW), so nothing leaves; the
    # report waits, raw, and leaves scaled once the scaling is read.
    m, out, _ = meter()
    report(m, rec(0x0000, 0x25, 7, 6), rec(0x0400, 0x2A, 127, 3))
    assert out == [] and m.held == 1 and m.unscaled == 0
    setup(m, 0x00, 1, 1000)
    assert len(out) == 1 and out[0][1:3] == (127, 7) and m.held == 0  # 0.127 kW, 0.007 kWh
    report(m, rec(0x0000, 0x25, 8, 6), rec(0x0400, 0x2A, 128, 3))
    assert out[-1][1] == 128 and out[-1][2] == 8
    assert not out[-1][4] & F_ESTIMATED and out[-1][4] & F_TIME_VALID
    # BCD: held raw, decoded with the unit read later
    m, out, _ = meter()
    report(m, rec(0x0400, 0x2A, 0x000127, 3))
    setup(m, 0x80, 1, 1000)
    assert out[0][1] == 127
    # at most 8 wait; more are counted as dropped, never guessed
    m, out, _ = meter()
    for i in range(10):
        report(m, rec(0x0400, 0x2A, i, 3))
    assert m.held == 8 and m.unscaled == 2
    setup(m, 0x00, 1, 1000)
    assert [r[1] for r in out] == list(range(8))


def test_invalid_markers_and_unsupported_units():
    m, out, _ = meter()
    setup(m, 0, 1, 1)
    report(m, rec(0x0000, 0x25, 0xFFFFFFFFFFFF, 6))  # uint48 invalid
    report(m, rec(0x0400, 0x2A, 0x800000, 3))  # int24 invalid
    assert out == [] and m.invalid_values == 2
    m, out, _ = meter()
    setup(m, 0x08, 1, 1)  # kPa is not energy: no reading
    report(m, rec(0x0000, 0x25, 1, 6))
    assert out == []


def test_received_and_delivered_together():
    m, out, _ = meter()
    setup(m, 0, 1, 1000)
    report(m, rec(0x0000, 0x25, 1500, 6), rec(0x0001, 0x25, 250, 6))
    r = out[-1]
    assert r[2] == 1500 and r[3] == 250 and r[4] & F_RECEIVED and r[4] & F_SUMMATION


def test_time_cluster_epoch_and_invalid():
    m, out, times = meter()
    report(m, rec(0x0000, 0xE2, 0xFFFFFFFF, 4), cluster=zcl.TIME)
    assert times == [] and m.invalid_values == 1
    report(m, rec(0x0000, 0xE2, 820540800, 4), rec(0x0001, 0x18, 2, 1), cluster=zcl.TIME)
    # 2026-01-01T00:00:00Z is 820540800 s after 2000-01-01.
    assert times == [1767225600] and m.time_status == 2


def test_formatting_table():
    # (raw, multiplier, divisor, formatting byte, text): bits 0-2 digits
    # right of the point, 3-6 left of it, bit 7 suppress leading zeros.
    rows = (
        (123456, 1, 1000, 0x2B, "00123.456"),  # 5 left, 3 right
        (123456, 1, 1000, 0xAB, "123.456"),  # same, leading zeros suppressed
        (-1500, 1, 1000, 0x13, "-01.500"),  # 2 left, 3 right, negative
        (123456, 1, 1000, 0x30, "000123"),  # 6 left, 0 right, truncated
        (1999, 1, 1000, 0x0A, "1.99"),  # 1 left, 2 right: truncated, not rounded
        (7, 0, 0, 0x22, "0007.00"),  # multiplier/divisor 0 mean 1
        (1234567, 1, 1, 0x18, "1234567"),  # wider than 3 left digits: nothing cut
        (0, 1, 1000, 0x8A, "0.00"),
    )
    for raw, mult, div, fmt, text in rows:
        assert zcl.format_value(raw, mult, div, fmt) == text, (raw, fmt, zcl.format_value(raw, mult, div, fmt))


def test_malformed_frames_change_nothing():
    m, out, _ = meter()
    setup(m, 0, 1, 1000)
    good = bytes([0x18, 0x01, 0x0A]) + rec(0x0000, 0x25, 1000, 6) + rec(0x0301, 0x22, 7, 3)
    for cut in range(1, len(good)):
        r = m.handle(zcl.METERING, good, 0, cut)
        assert r in (zcl.BAD, zcl.OK), cut
    # A truncated record rejects the whole frame: the multiplier is untouched.
    assert m.multiplier == 1
    manuf = bytes([0x1C, 0x34, 0x12, 0x01, 0x0A]) + rec(0x0000, 0x25, 9, 6)
    assert m.handle(zcl.METERING, manuf, 0, len(manuf)) == zcl.IGNORED
    cluster_specific = bytes([0x19, 0x01, 0x00, 0x00])
    assert m.handle(zcl.METERING, cluster_specific, 0, 4) == zcl.IGNORED


def test_unsupported_multiplier_and_divisor_mean_one():
    # Read Attributes Response: unit kWh; Multiplier and Divisor answered
    # UNSUPPORTED_ATTRIBUTE (0x86), so the spec's default of 1 applies.
    m, out, _ = meter()
    rsp = bytes([0x18, 0x02, 0x01, 0x00, 0x03, 0x00, 0x30, 0x00, 0x01, 0x03, 0x86, 0x02, 0x03, 0x86])
    assert m.handle(zcl.METERING, rsp, 0, len(rsp)) == zcl.OK
    report(m, rec(0x0000, 0x25, 5, 6))
    assert out[-1][2] == 5000  # 5 kWh
