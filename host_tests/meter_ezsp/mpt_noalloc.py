# The receive path allocates nothing per byte, frame or reading: with the
# heap locked (micropython.heap_lock: any allocation raises MemoryError),
# a stream of DATA frames carrying demand and summation reports goes
# through ASH (with its ACKs), EZSP and ZCL to on_reading.
import micropython

from meter import ash, ezsp, zcl
from meter.devclock import DevClock
from meter.reading import DEV_EPOCH

HEAP = "160k"
T0 = 1767225600  # 2026-01-01T00:00:00Z: Unix seconds, a boxed int on 32 bits


class HalClock:
    # hal.clock's interface with a realistic clock: utc() builds a boxed
    # int on every call on a 32-bit port, as the real HAL does; ticks_ms()
    # is the test's to move.
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms

    def utc(self):
        return T0 + self.ms // 1000

    def valid(self):
        return True


class Link:
    # Wired as meter/ezsp_link.py wires it: bound methods. (MicroPython
    # calls a bound method with more than 4 arguments using a heap array it
    # frees at once, or the C stack when the heap is locked; a closure with
    # more than 5 would need the heap, so the link does not use closures.)
    def __init__(self):
        self.readings = 0
        self.demand = 0
        self.t_s = 0
        self.delivered = 0
        self.hal = HalClock()
        # the links' clock: device seconds counted from ticks (meter/devclock.py)
        self.meter = zcl.Meter(self.on_reading, DevClock(self.hal))
        # The scaling is read first (no reading leaves before it): a Read
        # Attributes Response with unit kWh, Multiplier 1, Divisor 1000 (as
        # most meters: registers in Wh, demand in W).
        setup = bytes(
            [
                0x18,
                0,
                0x01,
                0x00,
                0x03,
                0x00,
                0x30,
                0,
                0x01,
                0x03,
                0x00,
                0x22,
                1,
                0,
                0,
                0x02,
                0x03,
                0x00,
                0x22,
                0xE8,
                3,
                0,
            ]
        )
        assert self.meter.handle(zcl.METERING, setup, 0, len(setup)) == zcl.OK

    def incoming(self, cluster, ep, sender, lqi, rssi, buf, off, n):
        self.meter.handle(cluster, buf, off, n)

    def on_reading(self, t_s, demand_w, delivered_wh, received_wh, flags):
        self.readings += 1
        self.demand += demand_w
        self.t_s = t_s
        if flags & 4:  # F_SUMMATION
            self.delivered = delivered_wh


def frames(n):
    # NCP->host DATA frames built by a second Ash (same DATA format).
    out = bytearray()
    g = ash.Ash(lambda b, k: out.extend(b[:k]), None, None)
    g.state = ash.CONNECTED
    for i in range(n):
        v = 100 + i
        if i % 4 == 3:
            # a realistic uint48 register: 12,345.678 kWh and rising
            s = 12_345_678 + i
            z = bytes([0x18, i & 0xFF, 0x0A, 0x00, 0x00, 0x25, s & 0xFF, (s >> 8) & 0xFF, s >> 16, 0, 0, 0])
        else:
            z = bytes([0x18, i & 0xFF, 0x0A, 0x00, 0x04, 0x2A, v & 0xFF, v >> 8, 0])
        aps = bytes([0x09, 0x01, 0x02, 0x07, 9, 1, 0x40, 0x01, 0, 0, i & 0xFF])
        p = bytes([i & 0xFF, 0x82, 0x01, 0x45, 0x00, 0]) + aps + bytes([200, 0xC8, 0, 0, 0xFF, 0xFF, len(z)]) + z
        g._pending = False
        g.send(p, len(p))
    return bytes(out)


def test_receive_path_allocates_nothing():
    data = frames(400)
    link = Link()
    ez = ezsp.Ezsp()
    ez.set_version(13)
    ez.on_incoming = link.incoming
    a = ash.Ash(lambda b, n: None, ez.frame, lambda k, c: None)
    a.state = ash.CONNECTED
    buf = bytearray(64)
    mv = memoryview(data)
    chunks = [mv[i : i + 64] for i in range(0, len(data), 64)]  # slices made before the lock
    lens = [len(c) for c in chunks]
    hal = link.hal
    micropython.heap_lock()
    try:
        for k in range(len(chunks)):
            buf[: lens[k]] = chunks[k]
            a.feed(buf, lens[k])
            hal.ms += 97_000  # 400 frames over ~7 device hours: re-anchors too
    finally:
        micropython.heap_unlock()
    assert a.rx_good == 400 and a.rx_bad == 0, (a.rx_good, a.rx_bad)
    assert link.readings == 400  # every frame gave its reading
    assert link.delivered == 12_345_678 + 399 and link.demand == sum(100 + i for i in range(400) if i % 4 != 3)
    # stamped with the clock's time, in device seconds
    assert link.t_s + DEV_EPOCH == hal.utc() - 97, (link.t_s, hal.utc())


def test_gas_readings_allocate_nothing():
    # The gas meter's reports (meter/gas.py, fed by the EZSP link): with the
    # heap locked, a summation report goes through its zcl.Meter to
    # Gas.reading (register, local day, last-reading ticks).
    from meter import gas, localtime

    clock = HalClock()
    m = zcl.Meter(None, DevClock(clock))
    g = gas.Gas(m, 0, 2, localtime.Zone(), clock.ticks_ms)
    m.on_reading = g.reading
    setup = bytes([0x18, 1, 0x0A, 0x00, 0x03, 0x30, 0x01, 0x01, 0x03, 0x22, 1, 0, 0])
    setup += bytes([0x02, 0x03, 0x22, 0xE8, 0x03, 0, 0x06, 0x03, 0x30, 0x80])
    assert m.handle(zcl.METERING, setup, 0, len(setup)) == zcl.OK
    rep = bytearray([0x18, 2, 0x0A, 0x00, 0x00, 0x25, 0, 0, 0x12, 0, 0, 0])
    for i in range(200):
        rep[6] = i  # the register moves
        clock.ms += 1_800_000  # a report every 30 minutes, across days
        micropython.heap_lock()
        try:
            r = m.handle(zcl.METERING, rep, 0, len(rep))
        finally:
            micropython.heap_unlock()
        assert r == zcl.OK
    assert g.readings == 200 and g.register == 199 + (0x12 << 16) and g.base >= 0
