# MicroPython script: what the uplink's own work costs on the CPU, for
# bench/uplink.py. Readings come from a file of CSV lines "utc,demand,
# delivered,received,flags" (argv[1], no header), read as the passes go (so
# the heap holds no day of readings). Two passes over them:
#   encode_once  the codec alone, every reading added once to a batch
#                encoder (the floor any uplink pays);
#   uplink       the firmware Uplink on the real store, stepped by a manual
#                clock as its task would be (every 3 s reading: store.append,
#                notify; the schedule run whenever it is due), every datagram
#                answered at once by a stand-in collector (an authentic
#                REPLY acknowledging each batch and each HELLO).
# Only the calls into the codec or the uplink are timed (time.ticks_us), not
# the feed nor the store's own work. Prints one line per pass:
# "cpu NAME us readings datagrams_up".
import sys
import time

import hal
from meter.reading import DEV_EPOCH
from store import Store
from uplink import datagram as dg
from uplink.codec import Encoder
from uplink.uplink import Uplink

DEV = 4097
KEY = bytes(range(32))


class ManualClock:
    # The uplink and the store see only this clock: no sleeping, no speed.
    speed = 1

    def __init__(self, utc):
        self.ms = 0
        self.u0 = utc

    def ticks_ms(self):
        return self.ms

    def utc(self):
        return self.u0 + self.ms // 1000

    def valid(self):
        return True

    def real_ms(self, ms):
        return ms


class Collector:
    # Answers like ihd collector would, with the key's HMAC.
    def __init__(self):
        self.mac = dg.Hmac(KEY)
        self.seq = 1 << 20
        self.out = []
        self.n = 0
        self.nonce = None  # the boot nonce of the device's HELLO: replies are tagged over it

    def sendto(self, mv, addr):
        self.n += 1
        d = bytes(mv)
        if len(d) == dg.KA_LEN or d[0] not in (dg.T_DATA, dg.T_HELLO):
            return
        if d[0] == dg.T_DATA and d[dg.HDR + 10] & dg.DF_REALTIME:
            return
        if d[0] == dg.T_HELLO:
            self.nonce = d[dg.HDR + 12 : dg.HDR + 16]
        r = bytearray(dg.REPLY_HEAD + dg.TAG)
        dg.header(r, dg.T_REPLY, DEV, 0, self.seq)
        self.seq += 1
        dg.put32(r, dg.HDR, dg.get32(d, 7))
        if d[0] == dg.T_DATA:
            dg.put32(r, dg.HDR + 4, dg.get32(d, dg.HDR + 4))
            dg.put16(r, dg.HDR + 8, dg.get16(d, dg.HDR + 8))
        r[dg.REPLY_HEAD :] = self.mac.digest(r, dg.REPLY_HEAD, self.nonce)[: dg.TAG]
        self.out.append(bytes(r))


def rows():
    with open(sys.argv[1]) as f:
        for line in f:
            yield [int(x) for x in line.split(",")]


def encode_once(readings):
    enc = Encoder(dg.DATA_CAP)
    out = bytearray(dg.DATA_CAP)
    us = 0
    for r in readings:
        t = time.ticks_us()
        if not enc.add(r[0], r[1], r[2], r[3], r[4]):
            enc.finish(out)
            enc.start()
            enc.add(r[0], r[1], r[2], r[3], r[4])
        us += time.ticks_diff(time.ticks_us(), t)
    t = time.ticks_us()
    enc.finish(out)
    return us + time.ticks_diff(time.ticks_us(), t)


def uplink_day(readings):
    first = next(rows())[0]
    clock = ManualClock(first - 5)
    store = Store(hal.partition("store"), clock=clock)
    col = Collector()
    up = Uplink(store, DEV, 0, KEY, [("127.0.0.1", 4700)], clock=clock)
    up.sock = col
    up.addr = ("127.0.0.1", 4700)
    us = 0

    def timed(fn, *args):
        t = time.ticks_us()
        r = fn(*args)
        return r, time.ticks_diff(time.ticks_us(), t)

    _, u = timed(up._hello)
    us += u
    due = 0
    for r in readings:
        clock.ms = (r[0] - clock.u0) * 1000
        seq = store.append(r[0] - DEV_EPOCH, r[1], r[2], r[3], r[4])  # device seconds
        store.tick(clock.ms)
        t = time.ticks_us()
        up.notify(seq, r[0] - DEV_EPOCH, r[1], r[2], r[3], r[4])
        if time.ticks_diff(clock.ms, due) >= 0:
            due = time.ticks_add(clock.ms, up._step(clock.ms))
        while col.out:  # the replies, and the task's step they wake
            up.on_datagram(col.out.pop(0))
            due = time.ticks_add(clock.ms, up._step(clock.ms))
        us += time.ticks_diff(time.ticks_us(), t)
    return us, col.n, up.uploaded


print("cpu encode_once", encode_once(rows()), 0, 0)
us, n, uploaded = uplink_day(rows())
print("cpu uplink", us, uploaded, n)
