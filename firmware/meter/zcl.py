# ZCL / Smart Energy for the meter link: decodes Simple Metering (0x0702)
# and Time (0x000A) attributes from Read Attributes Responses and Report
# Attributes into the one internal reading (meter/reading.py), and builds
# the only ZCL frame the firmware ever sends: Read Attributes.
#
# A frame is parsed completely into staging fields before anything is
# committed, so a truncated or malformed frame changes no state and
# produces no reading. Scaling uses exact integer ratios (multiplier,
# divisor and unit factor folded into one fraction when they change), so a
# reading costs no float and, for household-sized values, no allocation.
# The unit table, type widths, BCD and the scaling arithmetic are in
# meter/zcl_scale.py; this module keeps the ids, the frame builder and the
# Meter's state (scaling read so far, registers, staging, held reports).
import micropython
from micropython import const

from meter.reading import (
    F_DEMAND,
    F_GAS,
    F_RECEIVED,
    F_SUMMATION,
    F_TIME_VALID,
    ZIGBEE_EPOCH,
)
from meter.zcl_scale import UNITS, bcd, is_int, scale, str_end, type_width
from meter.zcl_scale import format_value as format_value  # re-exported: zcl.format_value

METERING = const(0x0702)
TIME = const(0x000A)

# ZCL general command ids.
READ_ATTRIBUTES = const(0x00)
READ_ATTRIBUTES_RSP = const(0x01)
REPORT_ATTRIBUTES = const(0x0A)

# Simple Metering attribute ids.
A_SUM_DELIVERED = const(0x0000)
A_SUM_RECEIVED = const(0x0001)
A_STATUS = const(0x0200)
A_UNIT = const(0x0300)
A_MULTIPLIER = const(0x0301)
A_DIVISOR = const(0x0302)
A_SUM_FORMAT = const(0x0303)
A_DEMAND_FORMAT = const(0x0304)
A_DEVICE_TYPE = const(0x0306)
A_DEMAND = const(0x0400)
# Time attribute ids.
A_TIME = const(0x0000)
A_TIME_STATUS = const(0x0001)

# What the link polls: first the scaling, then the values.
SETUP_ATTRS = (A_UNIT, A_MULTIPLIER, A_DIVISOR, A_SUM_FORMAT, A_DEMAND_FORMAT, A_DEVICE_TYPE)
VALUE_ATTRS = (A_SUM_DELIVERED, A_SUM_RECEIVED, A_DEMAND)
TIME_ATTRS = (A_TIME, A_TIME_STATUS)

# handle() results.
OK = const(0)  # frame parsed; state updated (a reading may have been emitted)
IGNORED = const(1)  # well-formed but not for us (other cluster/command, manufacturer-specific)
BAD = const(2)  # malformed: nothing committed

# Bit u set: unit u of zcl_scale.UNITS is a volume (0x01-0x05, 0x07, 0x0A).
_VOLUME = const(0b10010111110)


def _reduce(n, d):
    # n/d in lowest terms (once per scaling change, not per reading)
    a, b = n, d
    while b:
        a, b = b, a % b
    return (n // a, d // a) if a > 1 else (n, d)


@micropython.native  # per summation: no boxed int for an all-ones 48-bit mask
def _all_ones(x, w):
    # x is the w-byte all-ones value (ZCL "invalid" for unsigned types),
    # tested a byte at a time: building (1 << 48) - 1 would allocate on a
    # 32-bit port for every summation of a realistic (small) register.
    for k in range(w):
        if (x >> (8 * k)) & 0xFF != 0xFF:
            return False
    return x >> (8 * w) == 0


def electric(t):
    # MeteringDeviceType t is electricity: 0, 13-15 (phase elements), 127
    # (mirrored electric), 140-142 (mirrored phases); gas and the rest:
    # meter/gas.py
    return t == 0 or 13 <= t <= 15 or t == 127 or 140 <= t <= 142


def build_read(buf, seq, attrs):
    # Read Attributes (client to server, profile-wide) into buf; returns the
    # length. The only ZCL frame builder in the firmware.
    buf[0] = 0x00
    buf[1] = seq & 0xFF
    buf[2] = READ_ATTRIBUTES
    i = 3
    for a in attrs:
        buf[i] = a & 0xFF
        buf[i + 1] = a >> 8
        i += 2
    return i


_SCALE_BITS = const(0x1C)  # staging slots 2, 3, 4: unit, multiplier, divisor
_TYPE_BIT = const(0x80)  # staging slot 7: MeteringDeviceType
_VALUE_BITS = const(0x103)  # staging slots 0, 1, 8: delivered, received, demand
_HOLD = const(8)  # reports held while the scaling is unknown


class Meter:
    # on_reading(t_s, demand_w, delivered_wh, received_wh, flags) with t_s
    # in device seconds (meter/reading.py); on_time(unix_s) when the meter's
    # Time attribute is valid; clock: a meter.devclock.DevClock (now() in
    # device seconds without allocating, valid()).
    def __init__(self, on_reading, clock, on_time=None, on_type=None):
        self.on_reading = on_reading
        self.on_time = on_time
        # on_type(meter): the link's check of MeteringDeviceType (meter/gas.py);
        # with it, no reading leaves before the device type is known either
        # (a mirrored gas meter's litres are not electricity's Wh)
        self.on_type = on_type
        self._need = _SCALE_BITS if on_type is None else _SCALE_BITS | _TYPE_BIT
        self.clock = clock
        self.unit = -1  # not read yet
        self.multiplier = 1
        self.divisor = 1
        # Bits 2..4 (unit, multiplier, divisor) set once each is known. No
        # reading leaves before all three are: a value scaled by a guess is
        # a wrong value (a divisor of 1000 unread turns 127 W into 127 kW).
        self._known = 0
        self.sum_format = 0
        self.demand_format = 0
        self.device_type = 0
        self.status = 0
        self.time_status = 0
        self.delivered = -1  # raw register values, -1 unknown
        self.received = -1
        self._rescale()
        # Counters.
        self.frames = 0
        self.bad = 0
        self.ignored = 0
        self.readings = 0
        self.invalid_values = 0  # ZCL "invalid" markers, bad BCD, unsupported unit
        self.unscaled = 0  # readings dropped: scaling unknown and the hold full
        # Reports that arrive before the scaling is known (the first ones
        # after the network comes up race the link's setup read) wait here,
        # raw, and leave with their arrival time once it is known.
        self._hold: list = [None] * _HOLD
        self.held = 0
        # Staging (one frame).
        self._seen = 0
        self._v = [0] * 12
        self._w = bytearray(12)

    def _rescale(self):
        # Once per scaling change: the fractions are reduced so that scale()
        # keeps its products small (kWh with Divisor 1000 is 1/1, not
        # 1000/1000: no boxed intermediate per reading on a 32-bit port).
        u = self.unit
        f = UNITS[0] if u < 0 else (UNITS[u & 0x7F] if (u & 0x7F) < len(UNITS) else None)
        m = self.multiplier or 1  # the spec: 0 is treated as 1
        d = self.divisor or 1
        if f is None:
            self._sn = 0
            self._sd = 1
            self._dn = 0
            self._dd = 1
        else:
            self._sn, self._sd = _reduce(m * f[0], d * f[1])
            self._dn, self._dd = _reduce(m * f[2], d * f[3])

    def typed(self):
        # MeteringDeviceType known (read, or the meter has none: electric)
        return bool(self._known & _TYPE_BIT)

    def scale_sum(self, raw):
        # A value in the summation's unit (history attributes) scaled as it is
        return scale(raw, self._sn, self._sd)

    def sum_step_wh(self):
        # Wh per summation register step (the dropout check's resolution).
        return scale(1, self._sn, self._sd) or 1

    def flags(self):
        f = 0
        u = self.unit
        if u >= 0 and (u & 0x7F) < 16 and _VOLUME & (1 << (u & 0x7F)):
            f |= F_GAS
        if self.device_type == 1 or self.device_type == 128:
            f |= F_GAS
        return f

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def handle(self, cluster, buf, off, n):
        # One ZCL frame buf[off:off+n] from the meter; returns OK/IGNORED/BAD.
        self.frames += 1
        if n < 3:
            self.bad += 1
            return BAD
        fc = buf[off]
        if fc & 0x04 or fc & 0x03 or not fc & 0x08 or (cluster != METERING and cluster != TIME):
            # Manufacturer-specific, cluster-specific, or client-to-server:
            # none carries a reading and none is answered (read-only).
            self.ignored += 1
            return IGNORED
        cmd = buf[off + 2]
        if cmd != READ_ATTRIBUTES_RSP and cmd != REPORT_ATTRIBUTES:
            self.ignored += 1
            return IGNORED
        if not self._parse(cluster, buf, off + 3, off + n, cmd == READ_ATTRIBUTES_RSP):
            self.bad += 1
            return BAD
        self._commit(cluster)
        return OK

    def _slot(self, cluster, attr):
        if cluster == TIME:
            return 10 if attr == A_TIME else 11 if attr == A_TIME_STATUS else -1
        if attr <= A_SUM_RECEIVED:
            return attr  # 0, 1
        if A_UNIT <= attr <= A_DEMAND_FORMAT:
            return 2 + attr - A_UNIT  # 2..6
        if attr == A_DEVICE_TYPE:
            return 7
        if attr == A_DEMAND:
            return 8
        if attr == A_STATUS:
            return 9
        return -1

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _parse(self, cluster, buf, i, end, is_rsp):
        v = self._v
        seen = 0
        while i < end:
            if i + 3 > end:
                return False
            attr = buf[i] | (buf[i + 1] << 8)
            i += 2
            if is_rsp:
                st = buf[i]
                i += 1
                if st:
                    # UNSUPPORTED_ATTRIBUTE etc.: record has no value. A meter
                    # without Multiplier/Divisor means the spec's default 1.
                    if cluster == METERING and (attr == A_MULTIPLIER or attr == A_DIVISOR or attr == A_DEVICE_TYPE):
                        self._known |= 1 << self._slot(cluster, attr)
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
                return False  # cannot find the next record: reject the frame
            s = self._slot(cluster, attr)
            if s >= 0 and is_int(t) and w <= 6:
                x = 0
                for k in range(w - 1, -1, -1):
                    x = (x << 8) | buf[i + k]
                if 0x28 <= t <= 0x2F and x >> (8 * w - 1):
                    x -= 1 << (8 * w)  # signed type: sign-extend by its width
                elif s == 8 and w == 3 and x >> 23:
                    x -= 1 << 24  # demand is int24 by spec even if sent unsigned
                v[s] = x
                self._w[s] = w  # for the "invalid value" checks in _commit
                seen |= 1 << s
            i += w
        self._seen = seen
        return True

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _commit(self, cluster):
        seen = self._seen
        v = self._v
        if cluster == TIME:
            if seen & (1 << 11):
                self.time_status = v[11]
            if seen & (1 << 10):
                t = v[10]
                if t == 0xFFFFFFFF:
                    self.invalid_values += 1
                elif self.on_time is not None:
                    self.on_time(t + ZIGBEE_EPOCH)
            return
        rescale = False
        self._known |= seen & (_SCALE_BITS | _TYPE_BIT)
        if seen & (1 << 2):
            self.unit = v[2] & 0xFF
            rescale = True
        if seen & (1 << 3):
            self.multiplier = v[3]
            rescale = True
        if seen & (1 << 4):
            self.divisor = v[4]
            rescale = True
        if seen & (1 << 5):
            self.sum_format = v[5]
        if seen & (1 << 6):
            self.demand_format = v[6]
        if seen & (1 << 7):
            self.device_type = v[7]
            rescale = True  # the held reports may leave now
            if self.on_type is not None:
                self.on_type(self)  # may hand this Meter to the gas meter
        if seen & (1 << 9):
            self.status = v[9]
        if rescale:
            self._rescale()
            if self.held and self._known & self._need == self._need:
                self._release()
        if not seen & _VALUE_BITS:
            return
        c = self.clock
        if self._known & self._need != self._need:
            if self.held < _HOLD:
                v = self._v
                w = self._w
                self._hold[self.held] = (seen, v[0], v[1], v[8], w[0], w[1], w[8], c.now(), c.valid())
                self.held += 1
            else:
                self.unscaled += 1
            return
        self._emit(seen, c.now(), c.valid())

    def _release(self):
        # The scaling is known: the held reports leave, oldest first.
        v = self._v
        w = self._w
        for i in range(self.held):
            seen, v[0], v[1], v[8], w[0], w[1], w[8], t_s, valid = self._hold[i]
            self._hold[i] = None
            self._emit(seen, t_s, valid)
        self.held = 0

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _emit(self, seen, t_s, valid):
        # One reading from the staged values of one frame.
        demand = self._value(seen, 8)
        d = self._value(seen, 0)
        if d is not None:
            self.delivered = d
        r = self._value(seen, 1)
        if r is not None:
            self.received = r
        if demand is None and d is None and r is None:
            return
        if self._sd == 1 and self._sn == 0:
            self.invalid_values += 1  # unit that is neither energy nor volume
            return
        f = self.flags()
        if valid:
            f |= F_TIME_VALID
        dw = 0
        if demand is not None:
            f |= F_DEMAND
            dw = scale(demand, self._dn, self._dd)
        # Only what this frame carried (meter/reading.py): a demand report
        # does not repeat the last summation.
        dwh = 0
        if d is not None:
            f |= F_SUMMATION
            dwh = scale(d, self._sn, self._sd)
        rwh = 0
        if r is not None:
            f |= F_RECEIVED
            rwh = scale(r, self._sn, self._sd)
        self.readings += 1
        self.on_reading(t_s, dw, dwh, rwh, f)

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _value(self, seen, s):
        # A staged summation/demand value, or None if absent or invalid.
        if not seen & (1 << s):
            return None
        x = self._v[s]
        w = self._w[s]
        bcd_unit = self.unit >= 0 and self.unit & 0x80
        if s == 8:
            if x == -0x800000 and not bcd_unit:
                self.invalid_values += 1  # int24 "invalid" marker
                return None
            if bcd_unit:
                # back to the raw bytes (demand was sign-extended); a mask of
                # 1 << (8 * w) would be a boxed int for w >= 4 on 32 bits
                x = bcd(x + (1 << (8 * w)) if x < 0 else x, 2 * w)
        else:
            if not bcd_unit and _all_ones(x, w):
                self.invalid_values += 1  # all-ones: "invalid" for unsigned
                return None
            if bcd_unit:
                x = bcd(x, 2 * w)
        if x < 0 and (bcd_unit or s != 8):
            self.invalid_values += 1  # bad BCD digit, or a negative register
            return None
        return x
