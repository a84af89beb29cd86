# Fuzz: >= 1,000,000 random and >= 1,000,000 mutated bytes through the
# firmware's ASH -> EZSP -> ZCL pipeline on the Unix port, plus random
# frames straight into the EZSP and ZCL parsers. Checks: no exception
# escapes; resynchronisation within one frame (a frame is delivered whenever
# it and the frame before it arrive intact); no reading from a corrupted
# frame (every reading carries exactly a value some frame was sent with,
# each at most once); the heap stays bounded (runs under HEAP).
import random

from meter import ash, ezsp, zcl

HEAP = "192k"  # the 80 KB bookkeeping buffer plus code compiled from source
TIMEOUT = 600
N_BYTES = 1_000_000


class Clock:
    # a meter.devclock.DevClock without a valid time
    def now(self):
        return 0

    def valid(self):
        return False


class Pipeline:
    def __init__(self):
        self.readings = []
        self.meter = zcl.Meter(self._reading, Clock())
        # The scaling is read first (no reading leaves before it): kW, 1/1.
        setup = bytes([0x18, 0, 0x0A, 0x00, 0x03, 0x30, 0, 0x01, 0x03, 0x22, 1, 0, 0, 0x02, 0x03, 0x22, 1, 0, 0])
        assert self.meter.handle(zcl.METERING, setup, 0, len(setup)) == zcl.OK
        self.ez = ezsp.Ezsp()
        self.ez.ext = True
        self.ez.on_incoming = self._incoming
        self.ash = ash.Ash(lambda b, n: None, self.ez.frame, lambda k, c: None)
        self.ash.state = ash.CONNECTED

    def _incoming(self, cluster, ep, sender, lqi, rssi, buf, off, n):
        self.meter.handle(cluster, buf, off, n)

    def _reading(self, utc, demand, d, r, flags):
        self.readings.append(demand)


def ezsp_report(i):
    # incomingMessageHandler (extended header) carrying a ZCL Report
    # Attributes of InstantaneousDemand = i + 1 (unique per frame).
    v = i + 1
    zcl_frame = bytes([0x18, i & 0xFF, 0x0A, 0x00, 0x04, 0x2A, v & 0xFF, (v >> 8) & 0xFF, v >> 16])
    aps = bytes([0x09, 0x01, 0x02, 0x07, 9, 1, 0x40, 0x01, 0, 0, i & 0xFF])
    return (
        bytes([0, 0x82, 0x01, 0x45, 0x00, 0]) + aps + bytes([200, 0xC8, 0, 0, 0xFF, 0xFF, len(zcl_frame)]) + zcl_frame
    )


class Ncp:
    # Frames NCP->host: the DATA format is the same in both directions, so
    # a second Ash instance builds them (frame numbers as the receiver
    # expects next, as a retransmitting NCP would end up sending).
    def __init__(self):
        self.out = bytearray()
        self.a = ash.Ash(self._w, None, None)
        self.a.state = ash.CONNECTED

    def _w(self, b, n):
        self.out.extend(b[:n])

    def frame(self, payload, frm):
        self.out = bytearray()
        self.a._pending = False
        self.a._frm = frm
        self.a.send(payload, len(payload))
        return bytes(self.out)


def feed_chunked(p, data, rnd):
    i = 0
    while i < len(data):
        k = rnd.randint(1, 64)
        chunk = data[i : i + k]
        p.ash.feed(chunk, len(chunk))
        i += k


def test_random_bytes():
    rnd = random.Random(11) if hasattr(random, "Random") else None
    random.seed(11)
    p = Pipeline()
    buf = bytearray(4096)
    done = 0
    while done < N_BYTES:
        for j in range(len(buf)):
            buf[j] = random.getrandbits(8)
        # Sprinkle flags so the deframer sees many candidate frames.
        for _ in range(20):
            buf[random.getrandbits(12)] = 0x7E
        p.ash.feed(buf, len(buf))
        done += len(buf)
    del rnd
    assert p.readings == [], p.readings  # CRC-16 + sequence + EZSP + ZCL checks
    assert p.ash.rx_bad > 1000


def mutate(frame, rnd_bits):
    if not frame:
        return frame
    b = bytearray(frame)
    kind = rnd_bits(3)
    pos = rnd_bits(16) % len(b)
    if kind == 0:
        b[pos] ^= 1 << rnd_bits(3)  # bit flip
    elif kind == 1:
        b = b[:pos] + b[pos + 1 :]  # dropped byte (may be the flag)
    elif kind == 2:
        b = b[:pos] + bytes([rnd_bits(8)]) + b[pos:]  # inserted noise
    elif kind == 3:
        b[pos] = rnd_bits(8)  # replaced byte
    elif kind == 4:
        b = b[:pos] + b"\x7d" + b[pos:]  # stray escape
    elif kind == 5:
        b = b[:pos]  # cut short (no flag)
    elif kind == 6:
        b = b[:pos] + b"\x18" + b[pos:]  # substitute byte: rest of frame discarded
    else:
        b = b[:pos] + b"\x1a" + b[pos:]  # cancel byte: frame so far discarded
    return bytes(b)


class Bits:
    def __call__(self, n):
        return random.getrandbits(n)


def test_mutated_frames_resync_and_no_false_readings():
    random.seed(12)
    bits = Bits()
    p = Pipeline()
    ncp = Ncp()
    sent = 0
    i = 0
    intact_prev = True
    must = 0  # frames that had to be delivered
    seen = bytearray(80_000)
    while sent < N_BYTES:
        value = i + 1
        f = ncp.frame(ezsp_report(i), p.ash._ack)
        mutated = bits(2) == 0  # a quarter of the frames are damaged
        if mutated:
            g = f
            for _ in range(1 + bits(1)):
                g = mutate(g, bits)
            intact = g == f
            f = g
        else:
            intact = True
        p.readings = []
        k = 0
        while k < len(f):
            n = 1 + bits(6)
            chunk = f[k : k + n]
            p.ash.feed(chunk, len(chunk))
            k += n
        got = p.readings
        if intact and intact_prev:
            must += 1
            assert got == [value * 1000], (i, got)  # resynchronised within one frame
        for g in got:
            assert g % 1000 == 0 and 1 <= g // 1000 <= value, (i, g)
            assert not seen[g // 1000], (i, g)  # each frame's value at most once
            seen[g // 1000] = 1
        intact_prev = intact
        sent += len(f)
        i += 1
    assert i < len(seen)
    assert must > 10_000 and p.ash.rx_bad > 1000


def test_random_ezsp_frames():
    # The EZSP parser sees >= 1M bytes of arbitrary, CRC-valid content; half
    # of the frames look like Smart Energy incoming messages, so the ZCL
    # parser behind it is reached too.
    random.seed(13)
    p = Pipeline()
    buf = bytearray(256)
    total = 0
    while total < N_BYTES:
        n = 1 + random.getrandbits(7)
        for j in range(n):
            buf[j] = random.getrandbits(8)
        if random.getrandbits(1):
            buf[1] = 0x82
            buf[2] = 0x01
            buf[3] = 0x45
            buf[4] = 0x00
            buf[7] = 0x01
            buf[8] = 0x02
            buf[9] = 0x07 if random.getrandbits(1) else 0x00
            buf[6] = 0x09
        p.ez.frame(buf, 0, n)
        total += n
    assert p.ez.bad > 1000 and p.ez.callbacks > 1000 and p.meter.frames > 1000


def test_random_and_mutated_zcl_frames():
    # The ZCL parser directly: >= 1M bytes of random frames, and of valid
    # reports/read responses with random damage. Nothing may escape; the
    # decoded state must stay within what the types allow.
    random.seed(14)
    out = []
    m = zcl.Meter(lambda *r: out.append(r[1]), Clock())
    buf = bytearray(96)
    total = 0
    base = bytes([0x18, 0x01, 0x0A, 0x00, 0x04, 0x2A, 0x10, 0x00, 0x00, 0x00, 0x00, 0x25, 1, 2, 3, 4, 5, 0])
    base += bytes([0x01, 0x03, 0x22, 7, 0, 0, 0x00, 0x03, 0x30, 0x00])
    while total < N_BYTES:
        if random.getrandbits(1):
            n = random.getrandbits(6)
            for j in range(n):
                buf[j] = random.getrandbits(8)
            buf[0] = 0x18 if random.getrandbits(1) else buf[0]
            buf[2] = (0x01, 0x0A)[random.getrandbits(1)] if n > 2 else 0
        else:
            n = len(base)
            buf[:n] = base
            for _ in range(1 + random.getrandbits(2)):
                buf[random.getrandbits(16) % n] = random.getrandbits(8)
            n -= random.getrandbits(2)
        m.handle(zcl.METERING if random.getrandbits(2) else zcl.TIME, buf, 0, n)
        total += n
        if len(out) > 100:
            out.clear()
    assert m.frames > 10000 and m.bad > 1000 and m.readings > 1000
    assert -(1 << 23) <= m.multiplier < (1 << 48) and m.divisor >= 0
