# Passive decoding of a raw capture of what an EZSP co-processor sent (for
# ihd capture via tools/ihd/capture/capture_mpy.py): the firmware's own ASH, EZSP
# and ZCL parsers, with ASH in passive mode (every DATA frame once,
# retransmissions dropped, nothing written) and the EZSP header format read
# from each frame (legacy or extended), the parameter layout (EZSP 8-13 or
# 14+) from the version answer or, failing that, from the frame itself.
#
#   d = Decoder(on_reading, on_bad, on_time)
#   d.feed(buf, n)            bytes as captured, any split
#   d.counters()              (good, bad, ignored, skipped)
# on_reading(t_s, demand_w, delivered_wh, received_wh, flags) as the link
# (t_s in device seconds, meter/reading.py); t_s is the meter's last Time
# attribute in the capture (F_TIME_VALID only once one was seen): the
# reports themselves carry no time.
# on_bad(reason) for every rejected frame; on_time(utc_s) for each valid
# meter time.
from meter import ash, ezsp, zcl
from meter.reading import DEV_EPOCH


class _CaptureClock:
    # the Meter's clock (a DevClock's interface): the capture's meter time
    def __init__(self):
        self.t = 0  # Unix seconds
        self.ok = False

    def now(self):
        return self.t - DEV_EPOCH

    def valid(self):
        return self.ok


class Decoder:
    def __init__(self, on_reading, on_bad, on_time=None):
        self._on_time = on_time
        self._on_bad = on_bad
        self.clock = _CaptureClock()
        self.meter = zcl.Meter(on_reading, self.clock, self._time)
        self.ez = ezsp.Ezsp()
        self.ez.on_incoming = self._incoming
        self.ez.on_bad = on_bad
        self.ash = ash.Ash(self._nowrite, self._frame, self._event)
        self.ash.passive = True
        self.ash.on_bad = on_bad
        self.other = 0  # frames that are not Smart Energy metering or time
        self.version_seen = False

    def _nowrite(self, buf, n):
        pass

    def _event(self, kind, code):
        pass  # resets show in the counters; decoding goes on

    def _frame(self, buf, off, n):
        # Extended header iff byte 2 is frame format version 1: legacy frames
        # (before version negotiation, or NCPs < 8) carry the frame id there,
        # and no legacy callback or version answer has id 0x01.
        ez = self.ez
        ext = n >= 5 and buf[off + 2] == 0x01
        if not ext and n >= 4 and buf[off + 2] == 0x00 and buf[off + 1] & 0x80:
            ez.set_version(buf[off + 3])  # the version answer: layouts to come
            self.version_seen = True
        ez.ext = ext
        if ext and not self.version_seen and n > 5 and buf[off + 3] == ezsp.INCOMING_MESSAGE and buf[off + 4] == 0:
            # The capture started after the version answer: tell the layouts
            # apart by where the message length fits (the older one first;
            # it is the one that could also fit by chance the other way).
            m = n - 5
            p = off + 5
            if m >= 19 and buf[p + 18] == m - 19:
                ez.sl = False
            elif m >= 31 and buf[p + 30] == m - 31:
                ez.sl = True
        ez.frame(buf, off, n)

    def _incoming(self, cluster, src_ep, sender, lqi, rssi, buf, off, n):
        if cluster != zcl.METERING and cluster != zcl.TIME:
            self.other += 1
            return
        if self.meter.handle(cluster, buf, off, n) == zcl.BAD:
            self._on_bad("ZCL frame malformed")

    def _time(self, utc):
        self.clock.t = utc
        self.clock.ok = True
        if self._on_time is not None:
            self._on_time(utc)

    def feed(self, buf, n):
        self.ash.feed(buf, n)

    def counters(self):
        a = self.ash
        m = self.meter
        ez = self.ez
        return (
            a.rx_good,
            a.rx_bad + ez.bad + m.bad,
            m.ignored + ez.unknown + ez.other_profile + self.other,
            a.rx_dup + a.cancelled,
        )
