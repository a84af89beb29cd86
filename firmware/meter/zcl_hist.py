# EZSP link's reads for local time and history: the Time cluster's time
# zone and DST attributes (meter/localtime.py) and the Metering cluster's
# history attributes (meter/history.py), both by Read Attributes only, once
# an hour away from local midnight, and their answers. The Metering answers
# still go through zcl.Meter (which ignores ids it does not know); here
# only the records of these ids are taken, scaled with the meter's
# summation scaling. Functions, no class: each name costs heap on the device.
from micropython import const

from meter.zcl_scale import is_int, scale, str_end, type_width

# what is read, in this order: a Read Attributes Response must fit one APS
# frame (about 80 bytes): 9 uint24 records are 63, 7 uint32 records 56.
# Metering history (SE 1.4), delivered only, newest first: days (current,
# previous, previous 2..8), weeks (current, previous, 2..5), months
# (current, previous, 2..13).
READS = (
    (0x000A, (0x0002, 0x0003, 0x0004, 0x0005)),  # TimeZone, DstStart, DstEnd, DstShift
    (0x0702, (0x0401, 0x0403, 0x0420, 0x0422, 0x0424, 0x0426, 0x0428, 0x042A, 0x042C)),
    (0x0702, (0x0430, 0x0432, 0x0434, 0x0436, 0x0438, 0x043A)),
    (0x0702, (0x0440, 0x0442, 0x0444, 0x0446, 0x0448, 0x044A, 0x044C)),
    (0x0702, (0x044E, 0x0450, 0x0452, 0x0454, 0x0456, 0x0458, 0x045A)),
)
_QUIET_S = const(600)  # no history read this close to a local midnight


def quiet(zone, now_s):
    # Near a local midnight the meter's "current day" may be either side
    # of it: not a time to align its history with ours.
    s = (now_s + zone.offset(now_s)) % 86400
    return s < _QUIET_S or s > 86400 - _QUIET_S


def walk(buf, i, end, out):
    # Read Attributes Response records -> out(attr, int or None); False
    # when the frame is malformed (records before the fault were given).
    while i < end:
        if i + 3 > end:
            return False
        attr = buf[i] | (buf[i + 1] << 8)
        st = buf[i + 2]
        i += 3
        if st:
            out(attr, None)
            continue
        if i >= end:
            return False
        t = buf[i]
        i += 1
        w = type_width(t)
        if w < 0:
            i = str_end(buf, i, end, w)
            if i < 0:
                return False
            continue
        if w == 0 or i + w > end:
            return False
        x = None
        if is_int(t) and w <= 4:
            x = 0
            for k in range(w - 1, -1, -1):
                x = (x << 8) | buf[i + k]
            if x == (1 << (8 * w)) - 1:
                x = None  # all ones: invalid
        out(attr, x)
        i += w
    return i == end


def handle(link, cluster, buf, off, n):
    # A frame from the meter (Time or Metering): only Read Attributes
    # Responses whose first record is one of ours. -> False if malformed.
    if n < 6 or buf[off] & 0x07 or buf[off + 2] != 0x01:
        return True
    a = buf[off + 3] | (buf[off + 4] << 8)
    if cluster == 0x000A:
        if not 0x0002 <= a <= 0x0005:
            return True
        v = [None, None, None, None]

        def put(attr, x):
            if 2 <= attr <= 5:
                v[attr - 2] = x

        if not walk(buf, off + 3, off + n, put):
            return False
        if v[0] is not None:
            tz = v[0] - (1 << 32) if v[0] >= 0x80000000 else v[0]  # int32
            sh = v[3]
            if sh is not None and sh >= 0x80000000:
                sh -= 1 << 32
            link.zone.set(tz, v[1], v[2], sh, "meter")
        return True
    h = link.history
    m = link.meter
    if h is None or h.slot(a) < 0:
        return True
    if m.flags() or m._known & 0x1C != 0x1C or m.unit & 0x80:
        return True  # gas, BCD, or the scaling not known yet: nothing to scale by
    sn, sd = m._sn, m._sd
    return walk(buf, off + 3, off + n, lambda attr, x: h.meter(attr, None if x is None else scale(x, sn, sd)))
