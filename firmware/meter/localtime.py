# Local time for "today", history days and weeks: the offset from UTC at a
# given device second, from the best source the link has:
#   EZSP   the meter's Time cluster (0x000A): TimeZone (0x0002, int32 s),
#          DstStart / DstEnd (0x0003 / 0x0004, UTC ZigBee seconds) and
#          DstShift (0x0005, int32 s), read hourly (meter/zcl_hist.py)
#   RAVEn  TimeCluster's LocalTime - UTCTime (the offset in force now; the
#          stick gives no DST dates, so a change shows at its next push)
#   saved  the last one known, from the history file (meter/history.py)
#   config utc_offset_min of the configuration (app/app.py), no DST
# else UTC. Nothing here runs per reading. Kept small: every name costs
# heap on the device even frozen.
from micropython import const

from meter.reading import ZB_TO_DEV

_DAY = const(86400)
_MAX_OFF = const(50400)  # UTC-14 .. UTC+14 h: anything else is not a zone


class Zone:
    def __init__(self):
        self.tz = 0  # standard offset, s
        self.dst_start = -1  # device seconds; -1 none
        self.dst_end = -1
        self.dst_shift = 0
        self.source = "utc"  # "meter", "stick", "saved", "config"
        self.rejected = 0  # offsets out of range, ignored

    def offset(self, t_s):
        # Seconds to add to device (UTC) seconds for local time at t_s.
        # The Time cluster gives this year's start and end: in the southern
        # hemisphere the end (April) comes before the start (October), and
        # DST is in force outside [end, start) rather than inside.
        s = self.dst_start
        e = self.dst_end
        if s >= 0 and ((s <= t_s < e) if s < e else (t_s >= s or t_s < e)):
            return self.tz + self.dst_shift
        return self.tz

    def day(self, t_s):
        # Local day number (days since DEV_EPOCH's local midnight).
        return (t_s + self.offset(t_s)) // _DAY

    def midnight(self, day):
        # Device seconds of the local midnight starting `day`.
        m = day * _DAY - self.offset(day * _DAY)
        return day * _DAY - self.offset(m)

    def stick(self, utc_s, local_s):
        # RAVEn TimeCluster: both Unix seconds (or None).
        if utc_s is not None and local_s is not None:
            self.set(local_s - utc_s, -1, -1, 0, "stick")

    def set(self, tz, start, end, shift, source):
        # tz and shift in s, start/end device seconds (-1: no DST). From
        # the Time cluster: ZigBee seconds, all ones when not set.
        if not (-_MAX_OFF <= tz <= _MAX_OFF and -_MAX_OFF <= tz + shift <= _MAX_OFF):
            self.rejected += 1
            return
        if source == "meter":
            if start in (None, 0xFFFFFFFF) or end in (None, 0xFFFFFFFF) or shift is None or start == end:
                start = end = -1
                shift = 0
            else:
                start -= ZB_TO_DEV
                end -= ZB_TO_DEV
                if start < 0 or end < 0:  # before the device epoch: not this year's
                    start = end = -1
                    shift = 0
        self.tz, self.dst_start, self.dst_end, self.dst_shift = tz, start, end, shift
        self.source = source
