# The gas section of a version-3 DATA batch (docs/wire-format.md, "Gas
# section"): the gas meter's readings (flag F_GAS, meter/gas.py: litres or
# Wh, every 30 minutes) kept apart from the electricity streams of
# uplink/codec.py, so they never disturb its predictors (a gas reading
# between two electricity ones would cost two large surprises in each of
# T, D, E and F). Per reading: its position in the batch and its fields as
# varints against the previous gas reading of the batch: 6-8 bytes, the
# batch's first about 13. Preallocated; no allocation per reading.
from micropython import const

# the batch codec's own varint and zigzag (this module is imported only from
# uplink/codec.py, when a batch first meets a gas reading)
from uplink.codec import _varint, _varint_len, zz

_ENTRY_MAX = const(24)  # worst case: 5 varints (5 + 5 + 7 + 2 + 5 bytes)


class GasSection:
    def __init__(self, cap):
        self.buf = bytearray(cap)
        self.start()

    def start(self):
        self.n = 0  # gas readings
        self.len = 0  # bytes used
        self.pos = -1  # batch position of the last gas reading
        self.t = 0  # its device seconds, delivered, flags
        self.d = 0
        self.f = 0

    def fits(self):
        return self.len + _ENTRY_MAX <= len(self.buf)

    def add(self, pos, utc, demand, delivered, flags):
        # Reading number pos of the batch (electricity and gas counted).
        b = self.buf
        p = _varint(b, self.len, pos - self.pos - 1)
        p = _varint(b, p, zz(utc - self.t))
        p = _varint(b, p, zz(delivered - self.d))
        p = _varint(b, p, flags ^ self.f)
        p = _varint(b, p, zz(demand))
        self.len = p
        self.n += 1
        self.pos = pos
        self.t = utc
        self.d = delivered
        self.f = flags

    def head_len(self):
        # the section's count and length varints with its bytes
        return _varint_len(self.n) + _varint_len(self.len) + self.len

    def finish(self, out, pos):
        pos = _varint(out, pos, self.n)
        pos = _varint(out, pos, self.len)
        b = self.buf
        for i in range(self.len):
            out[pos + i] = b[i]
        return pos + self.len
