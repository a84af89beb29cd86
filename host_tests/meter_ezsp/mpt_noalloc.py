# The receive path allocates nothing per byte, frame or reading: with the
# heap locked (micropython.heap_lock: any allocation raises MemoryError),
# a stream of DATA frames carrying demand and summation reports goes
# through ASH (with its ACKs), EZSP and ZCL to on_reading.
import micropython

from meter import ash, ezsp, zcl

HEAP = "160k"


class Clock:
    def utc(self):
        return 1767225600

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
        self.meter = zcl.Meter(self.on_reading, Clock())
        # The scaling is read first (no reading leaves before it): a Read
        # Attributes Response with unit kWh, Multiplier 1, Divisor 1.
        setup = bytes(
            [0x18, 0, 0x01, 0x00, 0x03, 0x00, 0x30, 0, 0x01, 0x03, 0x00, 0x22, 1, 0, 0, 0x02, 0x03, 0x00, 0x22, 1, 0, 0]
        )
        assert self.meter.handle(zcl.METERING, setup, 0, len(setup)) == zcl.OK

    def incoming(self, cluster, ep, sender, lqi, rssi, buf, off, n):
        self.meter.handle(cluster, buf, off, n)

    def on_reading(self, utc, demand_w, delivered_wh, received_wh, flags):
        self.readings += 1
        self.demand += demand_w


def frames(n):
    # NCP->host DATA frames built by a second Ash (same DATA format).
    out = bytearray()
    g = ash.Ash(lambda b, k: out.extend(b[:k]), None, None)
    g.state = ash.CONNECTED
    for i in range(n):
        v = 100 + i
        if i % 4 == 3:
            z = bytes([0x18, i & 0xFF, 0x0A, 0x00, 0x00, 0x25, v & 0xFF, v >> 8, 0, 0, 0, 0])
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
    micropython.heap_lock()
    try:
        for k in range(len(chunks)):
            buf[: lens[k]] = chunks[k]
            a.feed(buf, lens[k])
    finally:
        micropython.heap_unlock()
    assert a.rx_good == 400 and a.rx_bad == 0, (a.rx_good, a.rx_bad)
    assert link.readings == 400  # every frame gave its reading
