# Flash ring log: owns the on-flash format (docs/store.md), boot recovery,
# sector rotation, reclaim and quarantine.
#
# The partition is a ring of 4096-byte sectors. Each live sector starts with
# a header (magic, sector sequence, first reading seq, the last reading
# before it as delta base, and a snapshot of every cursor) under a CRC, then
# holds records [type, len16, aux, payload, crc32]. Power-loss rules:
#   * a sector is part of the log only once its whole header is on flash;
#   * records are appended in place; a record counts only with a good CRC;
#   * the oldest sector is erased (reclaimed) only after the new head's
#     header, with the cursor snapshot, is on flash, so the newest cursor
#     values are never in the sector being erased;
#   * boot never erases: it scans, seals a torn head tail with one 0x00 byte
#     and moves on to a fresh sector at the next write.
# Heap use depends on the number of sectors only, never on the log length.
from array import array
from binascii import crc32

from store import codec, recover
from store.layout import (
    BLANK,
    HDR_MAX,
    LIVE,
    MAX_CURSORS,
    MAX_NAME,
    REC_MAX,
    RETIRED,
    RH,
    RT,
    SECTOR,
    T_CUR,
    T_READC,
    UNKNOWN,
    pack_cursors,
    pack_header,
    pack_trailer,
    parse_header,
)

_FF = b"\xff" * 256


class FlashLog:
    def __init__(self, part):
        self.part = part
        n = part.ioctl(4, 0)
        bs = part.ioctl(5, 0)
        if bs != SECTOR:
            raise ValueError("store needs 4096-byte blocks, partition has %d" % bs)
        if n < 3:
            raise ValueError("store needs at least 3 sectors, partition has %d" % n)
        self.n = n
        self.state = bytearray(n)
        z = bytearray(4 * n)
        self.sseq = array("I", z)
        self.first = array("I", z)
        self.cnt = array("I", z)
        self.start = array("I", z)
        self.end = array("I", z)
        self.butc = array("i", z)  # time (device s) of the reading before the sector
        self.bdl = array("I", z)  # its delivered Wh
        self.damaged = bytearray(n)  # live sector whose tail was set aside
        self.live = []  # physical sectors, oldest first
        self.head = -1
        self.full = False  # head takes no more records (sealed)
        self.top = 0  # highest sector sequence in use
        self.fst = codec.new_state()  # the newest reading on flash (delta base)
        self.last_seq = 0  # seqs up to this are accounted for on flash
        self.cursors = {}
        self.hnames = []  # cursor names in the head header's order
        self.buf = bytearray(RH + REC_MAX + RT)  # record being written
        self.vbuf = bytearray(RH + REC_MAX + RT)  # read-back and boot scan
        self.hbuf = bytearray(HDR_MAX)  # headers and blank checks
        self.corrupt = 0
        self.retired = 0
        self.erases = 0
        self.programs = 0
        self.write_failures = 0
        self.failing = False
        recover.boot(self)

    # -- raw access ------------------------------------------------------------
    def read(self, s, off, mv):
        self.part.readblocks(s, mv, off)

    def blank(self, s, off):
        b = self.hbuf
        mv = memoryview(b)
        ff = memoryview(_FF)
        while off < SECTOR:
            k = min(256, SECTOR - off)
            self.part.readblocks(s, mv[:k], off)
            if mv[:k] != ff[:k]:
                return False
            off += k
        return True

    def _program(self, s, off, mv):
        # Program and read back. False (and counted) if the flash misbehaved
        # (OSError on the device). PowerCut is a BaseException and passes
        # straight through; so does MemoryError, which says nothing about
        # the flash.
        n = len(mv)
        try:
            self.part.writeblocks(s, mv, off)
            self.programs += 1
            v = memoryview(self.vbuf)[:n]
            self.part.readblocks(s, v, off)
            if v == mv:
                return True
        except MemoryError:
            raise  # not the flash's fault: never retire a sector for it
        except Exception:
            pass
        self.write_failures += 1
        return False

    def _erase(self, s):
        try:
            self.part.ioctl(6, s)
            self.erases += 1
            if self.blank(s, 0):
                self.state[s] = BLANK
                return True
        except MemoryError:
            raise
        except Exception:
            pass
        self.write_failures += 1
        self._retire(s)
        return False

    def erase_now(self, s):
        # Boot: erase a sector that must not stay (see recover.py).
        return self._erase(s)

    def _retire(self, s):
        # Out of service until the next boot tries it again. Zero the magic so
        # a stale header cannot come back as log data.
        self._drop(s)
        self.state[s] = RETIRED
        self.retired += 1
        try:
            self.part.writeblocks(s, b"\x00\x00\x00\x00", 0)
        except Exception:
            pass

    def _drop(self, s):
        if self.state[s] == LIVE:
            self.live.remove(s)
            if s == self.head:
                self.head = -1
        self.state[s] = UNKNOWN
        self.damaged[s] = 0

    def seal(self, s, off):
        # One 0x00 byte where the next record would start: readers stop there
        # and no further record goes into this sector.
        self.full = True
        if off + RH + RT <= SECTOR:
            try:
                self.part.writeblocks(s, b"\x00", off)
                self.programs += 1
            except MemoryError:
                raise
            except Exception:
                self.write_failures += 1

    # -- headers ---------------------------------------------------------------
    def header(self, s, st=None, cursors=None, names=None):
        # Read and check the header of sector s; fills the per-sector tables
        # (and st / cursors if given). False if it is not a valid header.
        b = self.hbuf
        self.part.readblocks(s, b, 0)
        h = parse_header(b, st, cursors, names)
        if h is None:
            return False
        self.sseq[s] = h[0]
        self.first[s] = h[1]
        self.butc[s] = h[2]
        self.bdl[s] = h[3]
        self.start[s] = h[4]
        return True

    def _write_header(self, s, first):
        st = self.fst
        if not -0x80000000 <= st[5] <= 0x7FFFFFFF:
            st[5] = 0  # the interval predictor must fit the header; both sides agree
        seq = self.top + 1
        hlen = pack_header(self.hbuf, seq, first, st, self.cursors)
        if not self._program(s, 0, memoryview(self.hbuf)[:hlen]):
            return False
        self.top = seq
        self.hnames = list(self.cursors)  # the order pack_header used
        self.state[s] = LIVE
        self.sseq[s] = seq
        self.first[s] = first
        self.cnt[s] = 0
        self.start[s] = hlen
        self.end[s] = hlen
        self.butc[s] = st[0]
        self.bdl[s] = st[2]
        self.damaged[s] = 0
        self.live.append(s)
        self.head = s
        self.full = False
        if first > self.last_seq + 1:
            self.last_seq = first - 1
        return True

    def damage(self, s, off):
        # A record that was good at boot fails now: set the rest aside.
        if off < self.end[s]:
            self.end[s] = off
            self.corrupt += 1
            self.damaged[s] = 1
            if s == self.head:
                self.full = True

    # -- writing -------------------------------------------------------------
    def room(self):
        # Payload bytes one record in the head can take now (0: open a sector).
        if self.head < 0 or self.full:
            return 0
        r = SECTOR - self.end[self.head] - RH - RT
        return 0 if r < 0 else (REC_MAX if r > REC_MAX else r)

    def commit(self, t, aux, n, wst=None):
        # Write buf[RH:RH+n] as one record into the head. For readings, wst is
        # the codec state after them: it becomes the flash state. False if
        # the flash failed (the head is then quarantined and sealed).
        b = self.buf
        h = self.head
        off = self.end[h]
        b[0] = t
        b[1] = n & 0xFF
        b[2] = n >> 8
        b[3] = aux
        mv = memoryview(b)
        c = crc32(mv[: RH + n], self.sseq[h])
        b[RH + n] = c & 0xFF
        b[RH + n + 1] = (c >> 8) & 0xFF
        b[RH + n + 2] = (c >> 16) & 0xFF
        b[RH + n + 3] = c >> 24
        if not self._program(h, off, mv[: RH + n + RT]):
            self.damaged[h] = 1
            self.seal(h, off)
            return False
        self.end[h] = off + RH + n + RT
        self.failing = False
        if t != T_CUR:
            self.cnt[h] += aux
            self.last_seq += aux
            codec.copy_state(self.fst, wst)
        return True

    def trailer(self, p, limit):
        # Cursor entries by header index into buf at p (see layout.py).
        return pack_trailer(self.buf, p, limit, self.cursors, self.hnames, self.first[self.head])

    def write_cursors(self):
        # Persist all cursors: a small record in the head (by header index,
        # or by name for a cursor the header does not list), or the snapshot
        # of a new sector's header when the head is full.
        for _ in range(2):
            if self.room() > 0:
                p = self.trailer(RH, RH + self.room())
                if p > 0:
                    if self.commit(T_READC, 0, p - RH, self.fst):
                        return True
                    continue
                n = pack_cursors(self.buf, RH, self.cursors) - RH
                if n <= self.room() and self.commit(T_CUR, len(self.cursors), n):
                    return True
            if self.room() < MAX_CURSORS * (1 + MAX_NAME + 4):
                return self.open_next()  # the new header carries them all
        return False

    def _next_usable(self, s):
        for i in range(1, self.n + 1):
            t = (s + i) % self.n
            if self.state[t] != RETIRED:
                return t
        return -1

    def open_next(self, first=0):
        # Make a fresh sector the head (first: seq of its first reading,
        # default the next one), then reclaim the sector after it so the next
        # open needs no erase. False if the flash failed: at most two sectors
        # are tried per call, so a chip that fails for a while (brown-out)
        # cannot walk the ring and evict every sector in one go.
        if first <= self.last_seq:
            first = self.last_seq + 1
        t = self.head if self.head >= 0 else self.n - 1
        tries = 0
        while True:
            t = self._next_usable(t)
            tries += 1
            if t < 0 or tries > 2:
                self.failing = True
                return False
            if self.state[t] == LIVE:
                self._drop(t)  # the oldest sector: its readings are evicted
            if self.state[t] != BLANK and not self._erase(t):
                continue
            if self._write_header(t, first):
                self.failing = False
                break
            self._retire(t)
        u = self._next_usable(t)
        if u >= 0 and u != t:
            if self.state[u] == LIVE:
                self._drop(u)
            if self.state[u] != BLANK:
                self._erase(u)
        return True

    def usable(self):
        return self.n - sum(1 for s in range(self.n) if self.state[s] == RETIRED)
