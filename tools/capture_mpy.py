# MicroPython (Unix port), not CPython: runs the firmware's own co-processor
# parsers over a raw capture for tools/capture.py and the host tests.
#
#   micropython capture_mpy.py PROTOCOL FILE [CHUNK] [SEED]
#
# Feeds FILE in CHUNK-byte reads (0: random sizes 1..300 from SEED, to
# exercise every split) and prints one line per result on stdout:
#   R utc_s demand_w delivered_wh received_wh flags    a reading
#   T utc_s|-                                          meter time (- invalid)
#   E kind                                             other event
#   B reason|fragment                                  a rejected frame
# and at the end "C good bad ignored skipped" (frame counters).
import sys

proto = sys.argv[1]
path = sys.argv[2]
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 256
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1


def on_reading(utc, demand_w, delivered_wh, received_wh, flags):
    print("R", utc, demand_w, delivered_wh, received_wh, flags)


if proto == "raven":
    from meter import raven

    def on_event(kind, a, b):
        if kind == raven.EV_BAD:
            print("B " + a + "|" + b.decode())
        elif kind == raven.EV_TIME:
            print("T", "-" if a is None else a)
        else:
            print("E", kind)

    p = raven.Parser(on_reading, on_event)

    def counters():
        return (p.good, p.bad, p.ignored, p.skipped)

elif proto == "ezsp":
    # NCP -> host bytes: ASH deframing (meter/ash.py), EZSP frames
    # (meter/ezsp.py), ZCL Metering/Time (meter/zcl.py). A capture carries no
    # timing, so readings are stamped with the last meter Time seen. The
    # header format is taken per frame: extended (EZSP 8+) frames have the
    # frame-format version 1 in their third byte.
    from meter import ash, ezsp, zcl

    class _Clock:
        t = None

        def valid(self):
            return self.t is not None

        def utc(self):
            return self.t or 0

    clock = _Clock()

    def on_time(utc):
        clock.t = utc
        print("T", utc)

    meter = zcl.Meter(on_reading, clock, on_time)
    ez = ezsp.Ezsp()

    def incoming(cluster, src_ep, sender, lqi, rssi, buf, off, n):
        before = meter.bad
        meter.handle(cluster, buf, off, n)
        if meter.bad != before:
            print("B zcl frame rejected|cluster 0x%04x" % cluster)

    ez.on_incoming = incoming

    def on_frame(buf, off, n):
        ez.ext = n >= 5 and buf[off + 2] == 0x01
        before = ez.bad
        ez.frame(buf, off, n)
        if ez.bad != before:
            print("B ezsp frame rejected|%d bytes" % n)

    def on_event(kind, code):
        if kind == ash.EV_RSTACK:
            print("E rstack")
        elif kind == ash.EV_ERROR:
            print("B ash ERROR frame|code %d" % code)

    class _Feed:
        def __init__(self):
            self.a = ash.Ash(lambda b, n: None, on_frame, on_event)
            self.a.state = ash.CONNECTED  # a capture may start mid-session

        def feed(self, buf, n):
            bad = self.a.rx_bad
            self.a.feed(buf, n)
            for _ in range(self.a.rx_bad - bad):
                print("B ash frame rejected (CRC, length or escape)|ash")

    p = _Feed()

    def counters():
        return (p.a.rx_good, p.a.rx_bad + ez.bad + meter.bad, ez.unknown, p.a.cancelled)

else:
    raise SystemExit("capture_mpy: unknown protocol " + proto)

buf = bytearray(300)
rnd = seed or 1
with open(path, "rb") as f:
    while True:
        n = chunk
        if not n:
            rnd = (rnd * 1103515245 + 12345) & 0x7FFFFFFF
            n = 1 + rnd % 300
        mv = memoryview(buf)[:n]
        got = f.readinto(mv)
        if not got:
            break
        p.feed(buf, got)
print("C %d %d %d %d" % counters())
