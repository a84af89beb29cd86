# MicroPython (Unix port), not CPython: runs the firmware's own co-processor
# parsers over a raw capture for ihd capture and the host tests.
#
#   micropython capture/capture_mpy.py PROTOCOL FILE [CHUNK] [SEED]
#
# Feeds FILE in CHUNK-byte reads (0: random sizes 1..300 from SEED, to
# exercise every split) and prints one line per result on stdout:
#   R utc_s demand_w delivered_wh received_wh flags    a reading
#   T utc_s|-                                          meter time (- invalid)
#   E kind                                             other event
#   B reason|fragment                                  a rejected frame
# and at the end "C good bad ignored skipped" (frame counters).
import sys

from meter.reading import DEV_EPOCH

proto = sys.argv[1]
path = sys.argv[2]
chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 256
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 1


def on_reading(t_s, demand_w, delivered_wh, received_wh, flags):
    # readings carry device seconds (meter/reading.py); the CSV has Unix
    print("R", t_s + DEV_EPOCH, demand_w, delivered_wh, received_wh, flags)


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
    # the EZSP side's passive decoder (meter/ezsp_capture.py): ASH, EZSP and
    # ZCL parsers of the firmware, nothing written back
    from meter import ezsp_capture

    p = ezsp_capture.Decoder(on_reading, lambda why: print("B " + why + "|ezsp"), lambda utc: print("T", utc))

    def counters():
        return p.counters()

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
m = getattr(p, "meter", None)
held = (m.unscaled + m.held) if m is not None else 0
if held:
    # values before the meter's UnitofMeasure/Multiplier/Divisor were seen
    # (the capture began after the setup read): not invented, not printed
    sys.stderr.write(
        "capture_mpy: %d values held back: the meter's scaling"
        " (UnitofMeasure, Multiplier, Divisor) is not in the capture\n" % held
    )
