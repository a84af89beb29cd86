# MicroPython script: the firmware's batch encoder over a stream of readings.
# Readings come as CSV lines "utc,demand,delivered,received,flags" on stdin
# (Unix seconds, as on the wire; the firmware takes device seconds);
# every batch, filled until the next reading would not fit argv[1] bytes, goes
# out as a line "count hex". Shared by host_tests/uplink/test_codec.py and
# bench/uplink.py through harness.fw_batches().
import sys

from meter.reading import DEV_EPOCH
from uplink.codec import Encoder

enc = Encoder(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)  # argv[2]: gas section bytes
out = bytearray(enc.cap)
pending = None
done = False
while not done:
    enc.start()
    while True:
        if pending is None:
            line = sys.stdin.readline()
            if not line:
                done = True
                break
            pending = [int(x) for x in line.split(",")]
            pending[0] -= DEV_EPOCH  # readings carry device seconds (meter/reading.py)
        if not enc.add(pending[0], pending[1], pending[2], pending[3], pending[4]):
            break
        pending = None
    if enc.count():
        n = enc.finish(out)
        print(enc.count(), bytes(out[:n]).hex())
