# RAM ring: the most recent readings at full resolution, for instant display
# history and as the staging area of readings not yet flushed to flash.
#
# Fixed, preallocated arrays indexed by seq % size; put() never allocates.
# Holds the contiguous run of sequence numbers [lo, hi]; older slots are
# overwritten as new readings arrive.
from array import array


class RamRing:
    def __init__(self, size):
        if size < 2:
            raise ValueError("ram ring needs at least 2 slots")
        self.size = size
        z = bytearray(4 * size)
        self.utc = array("I", z)
        self.dem = array("i", z)
        self.dl = array("I", z)
        self.rc = array("I", z)
        self.fl = bytearray(size)
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
        self.utc[i] = utc
        self.dem[i] = dem
        self.dl[i] = dl
        self.rc[i] = rc
        self.fl[i] = fl
        self.hi = seq
        if seq - self.lo >= self.size:
            self.lo = seq - self.size + 1

    def has(self, seq):
        return self.lo <= seq <= self.hi

    def get(self, seq):
        i = seq % self.size
        return (seq, self.utc[i], self.dem[i], self.dl[i], self.rc[i], self.fl[i])

    def field(self, seq, k):
        # One field without building a tuple: 0 utc, 1 demand, 2 delivered,
        # 3 received, 4 flags.
        i = seq % self.size
        if k == 0:
            return self.utc[i]
        if k == 1:
            return self.dem[i]
        if k == 2:
            return self.dl[i]
        if k == 3:
            return self.rc[i]
        return self.fl[i]

    def first_utc_ge(self, t):
        # Smallest seq in the ring with utc >= t (utc non-decreasing), or
        # None if every reading is older. Binary search: no allocation.
        lo = self.lo
        hi = self.hi
        if hi < lo or self.utc[hi % self.size] < t:
            return None
        while lo < hi:
            mid = (lo + hi) // 2
            if self.utc[mid % self.size] >= t:
                hi = mid
            else:
                lo = mid + 1
        return lo
