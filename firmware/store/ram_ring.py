# RAM ring: the most recent readings at full resolution, for instant display
# history and as the staging area of readings not yet flushed to flash.
#
# Fixed, preallocated arrays indexed by seq % size; put() never allocates.
# Each field is split in chunks of 256 readings (1 KB arrays) so the
# ring never needs one large contiguous block from a fragmented heap.
# Holds the contiguous run of sequence numbers [lo, hi]; older slots are
# overwritten as new readings arrive.
from array import array

from micropython import const

from store import codec

_SH = const(8)
_CH = const(256)
_M = const(255)


def _chunks(tc, size):
    out = []
    while size > 0:
        k = _CH if size > _CH else size
        out.append(array(tc, bytes(4 * k)) if tc else bytearray(k))
        size -= k
    return out


class RamRing:
    def __init__(self, size):
        if size < 2:
            raise ValueError("ram ring needs at least 2 slots")
        self.size = size
        self.utc = _chunks("i", size)  # device seconds (meter/reading.py)
        self.dem = _chunks("i", size)
        self.dl = _chunks("I", size)
        self.rc = _chunks("I", size)
        self.fl = _chunks(None, size)
        self.lo = 1  # oldest seq held
        self.hi = 0  # newest seq held (hi < lo: empty)

    def __len__(self):
        return self.hi - self.lo + 1 if self.hi >= self.lo else 0

    def reset(self, seq):
        # Empty ring whose next put() will be seq.
        self.lo = seq
        self.hi = seq - 1

    def put(self, seq, utc, dem, dl, rc, fl):
        # seq must be hi + 1, or anything when the ring is empty.
        if seq != self.hi + 1:
            self.lo = seq
        i = seq % self.size
        c = i >> _SH
        j = i & _M
        self.utc[c][j] = utc
        self.dem[c][j] = dem
        self.dl[c][j] = dl
        self.rc[c][j] = rc
        self.fl[c][j] = fl
        self.hi = seq
        if seq - self.lo >= self.size:
            self.lo = seq - self.size + 1

    def has(self, seq):
        return self.lo <= seq <= self.hi

    def get(self, seq):
        i = seq % self.size
        c = i >> _SH
        j = i & _M
        return (seq, self.utc[c][j], self.dem[c][j], self.dl[c][j], self.rc[c][j], self.fl[c][j])

    def utc_at(self, seq):
        i = seq % self.size
        return self.utc[i >> _SH][i & _M]

    def encode(self, seq, buf, p, st):
        # codec.encode() of reading seq into buf at p; returns the new position.
        i = seq % self.size
        c = i >> _SH
        j = i & _M
        return codec.encode(buf, p, st, self.utc[c][j], self.dem[c][j], self.dl[c][j], self.rc[c][j], self.fl[c][j])

    def first_utc_ge(self, t):
        # Smallest seq in the ring with utc >= t (utc non-decreasing), or
        # None if every reading is older. Binary search: no allocation.
        lo = self.lo
        hi = self.hi
        if hi < lo or self.utc_at(hi) < t:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if self.utc_at(mid) >= t:
                hi = mid
            else:
                lo = mid + 1
        return lo
