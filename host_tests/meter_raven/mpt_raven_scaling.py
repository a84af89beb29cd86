# Scaling and formatting tables for RAVEn values, on the Unix port. Every
# expected value was worked out by hand from the RAVEn XML API definition
# (kW or kWh = raw * Multiplier / Divisor; 0 means 1; Demand signed at its
# hex width; TimeStamp seconds since 2000-01-01 UTC) - the comment on each row
# shows the arithmetic - never by running the code under test.
from meter import raven, raven_cmd, reading

HEAP = "128k"

# (Demand text, Multiplier, Divisor, expected W)
DEMAND = (
    ("0x000004d2", 1, 1000, 1234),  # 1234/1000 kW
    ("0x04d2", 1, 1000, 1234),  # 16-bit, positive
    ("0x0003b2", 1, 1000, 946),  # EMU-2 24-bit: 0x3b2 = 946
    ("0xfffc18", 1, 1000, -1000),  # 24-bit: 0xfffc18 - 2^24 = -1000 (export)
    ("0xfffffc18", 1, 1000, -1000),  # 32-bit two's complement of -1000
    ("0x00fffc18", 1, 1000, 16776216),  # 32-bit positive: 16776216
    ("0x800000", 1, 1000, -8388608),  # 24-bit most negative
    ("0x7fffff", 1, 1000, 8388607),  # 24-bit most positive
    ("0x80000000", 1, 1000, -2147483648),  # 32-bit most negative
    ("0xff", 1, 1000, -1),  # 8-bit: 0xff = -1
    ("0x0ff", 1, 1000, 255),  # 12 bits: 0x0ff = 255
    ("0x00000001", 0, 0, 1000),  # 0 means 1: 1 kW
    ("0x00000005", 1, 0, 5000),  # divisor 0 -> 5 kW
    ("0x00000005", 0, 1000, 5),  # multiplier 0 -> 0.005 kW
    ("0x00000002", 1, 3, 667),  # 2/3 kW = 666.67 W -> 667
    ("0xfffffffe", 1, 3, -667),  # -2/3 kW -> -667 (half away from zero)
    ("0x00000001", 1, 2000, 1),  # 0.5 W -> 1
    ("0xffffffff", 1, 2000, -1),  # -0.5 W -> -1
    ("0x00000001", 1, 3000, 0),  # 0.333 W -> 0
    ("0x0000000c", 10, 1, 120000),  # 12 * 10 kW
    ("0x00000fa0", 3, 1000, 12000),  # 4000 * 3 / 1000 kW = 12 kW
)

# (SummationDelivered text, Multiplier, Divisor, expected Wh)
SUMMATION = (
    ("0x00bc614e", 1, 1000, 12345678),  # 12345678 / 1000 kWh
    ("0x0000000001321a5f", 1, 1000, 20060767),  # EMU-2 64-bit: 0x1321a5f = 20060767
    ("0x0000000101321a5f", 1, 1000, 4315028063),  # 0x101321a5f = 2^32 + 20060767
    ("0xffffffff", 1, 1000, 4294967295),  # unsigned: never sign-extended
    ("0x00000bb8", 1, 100, 30000),  # 3000 / 100 kWh = 30 kWh
    ("0x00000007", 0, 0, 7000),  # 7 kWh
    ("0x0000000b", 1, 4, 2750),  # 11/4 kWh = 2.75 kWh
    ("0x00000001", 1, 3600000, 0),  # 1/3600 Wh -> 0
)

# (TimeStamp text, expected utc_s, flags)
TIMES = (
    ("0x00000000", 946684800, reading.F_TIME_VALID),  # the ZigBee epoch itself
    ("0x30c8e7a1", 1765157665, reading.F_TIME_VALID),  # 818472865 + 946684800
    ("0xffffffff", 0, 0),  # "no time"
    ("0xFFFFFFFF", 0, 0),  # hex case does not matter
)

# (raw, mult, div, DigitsRight, DigitsLeft, SuppressLeadingZero, text)
FORMAT = (
    (1234, 1, 1000, 3, 6, 1, "1.234"),
    (1234, 1, 1000, 1, 6, 1, "1.2"),  # 1.234 -> 1.2
    (1250, 1, 1000, 1, 6, 1, "1.3"),  # 1.25 -> 1.3, half away from zero
    (-1250, 1, 1000, 1, 6, 1, "-1.3"),
    (1234, 1, 1000, 3, 6, 0, "000001.234"),  # zero-padded to 6 left digits
    (5, 1, 1000, 3, 2, 1, "0.005"),
    (1051, 1, 100000, 3, 6, 1, "0.011"),  # 0.01051 -> 0.011 (aioraven: 0.10)
    (7, 0, 0, 2, 6, 1, "7.00"),
    (9999, 1, 1000, 2, 6, 1, "10.00"),  # 9.999 rounds up a whole unit
    (12, 1, 1000, 0, 6, 1, "0"),  # 0.012 with no decimals
    (-4, 1, 1000, 2, 6, 1, "0.00"),  # -0.004 rounds to zero: no "-0.00"
)


def _frag(tag, field, text, mult, div, ts="0x30c8e7a1"):
    return (
        "<%s><TimeStamp>%s</TimeStamp><%s>%s</%s><Multiplier>0x%08x</Multiplier>"
        "<Divisor>0x%08x</Divisor></%s>" % (tag, ts, field, text, field, mult, div, tag)
    ).encode()


class _Last:
    def __init__(self):
        self.r = None

    def __call__(self, *a):
        self.r = a


def test_demand_table():
    last = _Last()
    p = raven.Parser(last)
    for text, mult, div, want in DEMAND:
        last.r = None
        p.feed(_frag("InstantaneousDemand", "Demand", text, mult, div))
        assert last.r is not None, text
        assert last.r[1] == want, (text, mult, div, last.r[1], want)
        assert last.r[4] == reading.F_TIME_VALID | reading.F_DEMAND


def test_summation_table():
    last = _Last()
    p = raven.Parser(last)
    for text, mult, div, want in SUMMATION:
        last.r = None
        p.feed(_frag("CurrentSummationDelivered", "SummationDelivered", text, mult, div))
        assert last.r is not None, text
        assert last.r[2] == want, (text, last.r[2], want)
        assert last.r[4] == reading.F_TIME_VALID | reading.F_SUMMATION  # no SummationReceived


def test_timestamps():
    last = _Last()
    p = raven.Parser(last)
    for ts, utc, flags in TIMES:
        p.feed(_frag("InstantaneousDemand", "Demand", "0x01", 1, 1, ts))
        # readings carry device seconds; "no time" is Unix 0 in them too
        assert last.r[0] + reading.DEV_EPOCH == utc and last.r[4] == flags | reading.F_DEMAND, (ts, last.r)


def test_format_table():
    for raw, mult, div, right, left, slz, want in FORMAT:
        got = raven_cmd.format_value(raw, mult, div, right, left, slz)
        assert got == want, (raw, mult, div, right, got, want)


def test_formatting_fields_kept_for_display():
    p = raven.Parser(_Last())
    frag = _frag("InstantaneousDemand", "Demand", "0x01", 1, 1).replace(
        b"</Divisor>",
        b"</Divisor><DigitsRight>0x02</DigitsRight><DigitsLeft>0x05</DigitsLeft>"
        b"<SuppressLeadingZero>N</SuppressLeadingZero>",
    )
    p.feed(frag)
    assert (p.digits_right, p.digits_left, p.suppress_zero) == (2, 5, 0)
