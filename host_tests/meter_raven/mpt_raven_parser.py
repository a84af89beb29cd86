# MicroPython tests of meter/raven.py: splitting, resync, bounds, text,
# warnings, and that the byte path allocates nothing (heap locked).
import micropython

from meter import raven, raven_cmd, reading

HEAP = "128k"

DEMAND = (
    b"<InstantaneousDemand>\r\n  <DeviceMacId>0xd8d5b9000000a1b2</DeviceMacId>\r\n"
    b"  <MeterMacId>0x00135003001c2d3e</MeterMacId>\r\n  <TimeStamp>0x30c8e7a1</TimeStamp>\r\n"
    b"  <Demand>0x000004d2</Demand>\r\n  <Multiplier>0x00000001</Multiplier>\r\n"
    b"  <Divisor>0x000003e8</Divisor>\r\n  <DigitsRight>0x03</DigitsRight>\r\n"
    b"  <DigitsLeft>0x06</DigitsLeft>\r\n  <SuppressLeadingZero>Y</SuppressLeadingZero>\r\n"
    b"</InstantaneousDemand>\r\n"
)
# 0x30c8e7a1 = 818472865 s after 2000-01-01 -> 1765157665; 0x4d2 = 1234 W
# values a fragment does not carry are 0 with their flag clear (never -1)
WANT = (1765157665, 1234, 0, 0, reading.F_TIME_VALID | reading.F_DEMAND)


class Sink:
    def __init__(self):
        self.readings = []
        self.events = []

    def reading(self, t_s, *a):
        # device seconds back to Unix seconds, as the expectations are written
        self.readings.append((t_s + reading.DEV_EPOCH,) + a)

    def event(self, k, a, b):
        self.events.append((k, a, b))


def parse(data, chunk=0):
    s = Sink()
    p = raven.Parser(s.reading, s.event)
    if chunk:
        for i in range(0, len(data), chunk):
            p.feed(data[i : i + chunk])
    else:
        p.feed(data)
    return p, s


def test_every_split_gives_the_same_reading():
    for chunk in (0, 1, 2, 3, 7, 64):
        p, s = parse(DEMAND * 3, chunk)
        assert s.readings == [WANT] * 3, (chunk, s.readings)
        assert p.good == 3 and p.bad == 0


def test_feed_with_length_uses_only_that_prefix():
    s = Sink()
    p = raven.Parser(s.reading, s.event)
    buf = bytearray(DEMAND + b"<Instant")
    p.feed(buf, len(DEMAND))
    assert s.readings == [WANT]


def test_no_line_endings_and_lf_only():
    flat = DEMAND.replace(b"\r\n", b"").replace(b"  ", b"")
    assert parse(flat + flat)[1].readings == [WANT, WANT]
    assert parse(DEMAND.replace(b"\r\n", b"\n"))[1].readings == [WANT]


def test_resync_after_cut_fragment_and_garbage():
    cut = DEMAND[:150]
    p, s = parse(b"\x00\xff<<>>garbage" + cut + b"\x13\x11" + DEMAND + DEMAND[:40] + DEMAND)
    assert s.readings == [WANT, WANT], s.readings
    assert p.bad == 2, p.bad  # the two cut fragments, each counted once
    bads = [e for e in s.events if e[0] == raven.EV_BAD]
    # the first cut ends inside a tag name ("\x13" is no name character)
    assert bads == [
        (raven.EV_BAD, "bad tag name", b"InstantaneousDemand"),
        (raven.EV_BAD, "fragment cut short", b"InstantaneousDemand"),
    ], bads


def test_defects_give_no_reading():
    cases = (
        (DEMAND.replace(b"0x000004d2", b"0x00004g2"), "bad number"),
        (DEMAND.replace(b"0x000004d2", b"1234"), "bad number"),
        (DEMAND.replace(b"0x000004d2", b"0x"), "bad number"),
        (DEMAND.replace(b"0x000004d2", b"0x" + b"0" * 17), "bad number"),
        (DEMAND.replace(b"<Divisor>0x000003e8</Divisor>", b""), "missing element"),
        (DEMAND.replace(b"<Multiplier>0x00000001</Multiplier>", b""), "missing element"),
        (DEMAND.replace(b"<TimeStamp>0x30c8e7a1</TimeStamp>", b""), "missing element"),
        (DEMAND.replace(b"</Demand>", b"</Demand><Demand>0x1</Demand>"), "duplicate element"),
        (DEMAND.replace(b"</Demand>", b"</Demandx>"), "mismatched close tag"),
        (DEMAND.replace(b"\r\n  <Multiplier>", b"x<Multiplier>"), "text outside element"),
        (DEMAND.replace(b"0x000004d2", b"0x000004d2" + b" " * 70), "value too long"),
        (DEMAND.replace(b"<Demand>", b"<Demand><Tier>"), "nested element"),
    )
    for data, why in cases:
        p, s = parse(data)
        assert s.readings == [], (why, s.readings)
        assert s.events == [(raven.EV_BAD, why, b"InstantaneousDemand")], (why, s.events)
        # and the next fragment is read
        p.feed(DEMAND)
        assert s.readings == [WANT], why


def test_summation_time_status_and_unknown_fragments():
    data = (
        b"<CurrentSummationDelivered><TimeStamp>0xffffffff</TimeStamp>"
        b"<SummationDelivered>0x0000000000bc614e</SummationDelivered>"
        b"<SummationReceived>0x00000000000003e8</SummationReceived>"
        b"<Multiplier>0x00000000</Multiplier><Divisor>0x00000000</Divisor>"
        b"</CurrentSummationDelivered>"
        b"<TimeCluster><UTCTime>0xffffffff</UTCTime><LocalTime>0xffffffff</LocalTime></TimeCluster>"
        b"<TimeCluster><UTCTime>0x00000000</UTCTime></TimeCluster>"
        b"<ScheduleInfo><Event>demand</Event><Frequency>0x0008</Frequency></ScheduleInfo>"
        b"<ConnectionStatus><Status>Join: Success</Status><LinkStrength>0x4b</LinkStrength>"
        b"<Unknown/><Extra>x</Extra></ConnectionStatus>"
        b"<Warning><Text>Unknown command</Text></Warning>"
        b"<MeterList><DeviceMacId>0x1</DeviceMacId><MeterMacId>0xa</MeterMacId>"
        b"<MeterMacId>0xb</MeterMacId></MeterList>"
        b"<NotARAVEnFragment><x>1</x></NotARAVEnFragment>"
    )
    p, s = parse(data, 5)
    # 0xbc614e = 12345678 with Multiplier/Divisor 0 (= 1): 12345678 kWh
    f = reading.F_SUMMATION | reading.F_RECEIVED
    assert s.readings == [(0, 0, 12345678000, 1000000, f)], s.readings
    assert s.events == [
        (raven.EV_TIME, None, None),
        (raven.EV_TIME, 946684800, None),
        (raven.EV_IGNORED, b"ScheduleInfo", None),
        (raven.EV_STATUS, b"Join: Success", 75),
        (raven.EV_WARNING, b"Unknown command", None),
        (raven.EV_METERS, [b"0xa", b"0xb"], None),
    ], s.events
    assert p.bad == 0 and p.good == 6 and p.ignored == 1


def test_windows_1252_text():
    frag = b"<PriceCluster><Price>0x00000b2f</Price><TrailingDigits>0x02</TrailingDigits>"
    frag += b"<RateLabel>Nacht \x80 &amp; \x93Eco\x94</RateLabel></PriceCluster>"
    p, s = parse(frag)
    assert s.events == [(raven.EV_PRICE, 2863, 2)], s.events
    assert raven_cmd.text(b"Nacht \x80 &amp; \x93Eco\x94 caf\xe9") == "Nacht \u20ac & \u201cEco\u201d caf\u00e9"


def test_byte_path_allocates_nothing():
    # After a warm-up, a whole demand fragment (and its reading) is parsed
    # with the heap locked: no allocation per byte or per reading.
    # (a plain function: calling a closure with 5 arguments allocates)
    p = raven.Parser(_on_reading)
    p.feed(DEMAND)
    buf = bytearray(DEMAND)
    micropython.heap_lock()
    try:
        for _ in range(3):
            p.feed(buf)
        p.feed(b"\x00garbage<<Inst>>", 16)
    finally:
        micropython.heap_unlock()
    assert _GOT[0] == 1234 and p.good == 4


_GOT = [0]


def _on_reading(utc, d, dl, r, f):
    _GOT[0] = d


def test_layouts_seen_from_real_sticks():
    # Layouts published from real EMU-2 / RAVEn units (values are ours):
    # 6-digit Demand, 16-digit summations, indented top tags, empty
    # elements, and children newer firmware adds (UnitOfMeasure, StartTime,
    # Duration) that must be skipped.
    data = (
        b"   <InstantaneousDemand>\n     <DeviceMacId>0xd8d5b90000001234</DeviceMacId>\n"
        b"     <MeterMacId>0x0007810000123456</MeterMacId>\n     <TimeStamp>0x1c531d48</TimeStamp>\n"
        b"     <Demand>0x00032d</Demand>\n     <Multiplier>0x00000001</Multiplier>\n"
        b"     <Divisor>0x000003e8</Divisor>\n     <DigitsRight>0x03</DigitsRight>\n"
        b"     <DigitsLeft>0x06</DigitsLeft>\n     <SuppressLeadingZero>Y</SuppressLeadingZero>\n"
        b"   </InstantaneousDemand>\n"
        b"<CurrentSummationDelivered><DeviceMacId>0xd8d5b90000001234</DeviceMacId>"
        b"<MeterMacId>0x0007810000123456</MeterMacId><TimeStamp>0x1c531d50</TimeStamp>"
        b"<SummationDelivered>0x0000000002cb3ad7</SummationDelivered>"
        b"<SummationReceived>0x0000000000000000</SummationReceived>"
        b"<Multiplier>0x00000001</Multiplier><Divisor>0x000003e8</Divisor>"
        b"<UnitOfMeasure>0x00</UnitOfMeasure><DigitsRight>0x01</DigitsRight>"
        b"<DigitsLeft>0x06</DigitsLeft><SuppressLeadingZero>Y</SuppressLeadingZero>"
        b"</CurrentSummationDelivered>"
        b"<PriceCluster>\r\n  <DeviceMacId>0xd8d5b90000001234</DeviceMacId>\r\n"
        b"  <MeterMacId>0x0007810000123456</MeterMacId>\r\n  <TimeStamp>0x234e56bd</TimeStamp>\r\n"
        b"  <Price>0x0000025b</Price>\r\n  <Currency>0x0348</Currency>\r\n"
        b"  <TrailingDigits>0x04</TrailingDigits>\r\n  <Tier>0x00</Tier>\r\n"
        b"  <StartTime>0x234da0d0</StartTime>\r\n  <Duration>0x05a0</Duration>\r\n"
        b"  <RateLabel></RateLabel>\r\n</PriceCluster>\r\n"
    )
    p, s = parse(data, 13)
    # 0x1c531d48 = 475209032 s after 2000 -> 1421893832; 0x32d = 813 W;
    # 0x2cb3ad7 = 46873303 -> 46873303 Wh
    assert s.readings == [
        (1421893832, 813, 0, 0, reading.F_TIME_VALID | reading.F_DEMAND),
        # the summation reading does not repeat the last demand
        (1421893840, 0, 46873303, 0, reading.F_TIME_VALID | reading.F_SUMMATION | reading.F_RECEIVED),
    ], s.readings
    assert s.events == [(raven.EV_PRICE, 0x25B, 4)], s.events  # 0.0603 per kWh
    assert p.bad == 0 and (p.digits_right, p.digits_left) == (1, 6)


def test_only_the_chosen_meter_is_read():
    other = DEMAND.replace(b"0x00135003001c2d3e", b"0x00135003001C2D3F").replace(b"0x000004d2", b"0x00000007")
    p, s = parse(other + DEMAND)
    assert s.readings == [(1765157665, 7, 0, 0, WANT[4]), WANT]  # no filter: both
    p, s = parse(b"")
    p.meter = b"0x00135003001C2D3E"  # hex case does not matter
    p.feed(other + DEMAND + DEMAND.replace(b"<MeterMacId>0x00135003001c2d3e</MeterMacId>", b""))
    assert s.readings == [WANT, WANT] and p.ignored == 1
    assert s.events == [(raven.EV_IGNORED, b"InstantaneousDemand", None)]
