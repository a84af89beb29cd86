# Streaming reader of the flash log: decodes readings record by record with
# one record-sized buffer, so queries never load the log into RAM.
#
# get(s) returns the reading with the smallest seq >= s that is on flash, as
# a tuple (seq, utc, demand, delivered, received, flags), or None. Reading
# forward (s = previous seq + 1) continues where the last call stopped; a
# sector reclaimed or re-used in between is noticed by its sector sequence
# and the reader seeks again. A record failing its CRC here (damage after
# boot) is reported to the log, which sets the rest of that sector aside.
from store import codec
from store.layout import LIVE, REC_MAX, RH, RT, T_CUR, T_READ, T_READC, record_ok


class Reader:
    def __init__(self, log):
        self.log = log
        self.buf = bytearray(RH + REC_MAX + RT)
        self.st = codec.new_state()
        self.sec = -1
        self.gen = 0
        self.off = 0  # next record in the sector
        self.roff = 0  # current record (for damage reports)
        self.left = 0  # readings left in the current record
        self.rpos = 0
        self.rend = 0
        self.seq = 0  # seq of the next reading to decode

    def _valid(self):
        s = self.sec
        return s >= 0 and self.log.state[s] == LIVE and self.log.sseq[s] == self.gen

    def _enter(self, s):
        log = self.log
        gen = log.sseq[s]
        if not log.header(s, self.st) or log.sseq[s] != gen:
            self.sec = -1
            return False
        self.sec = s
        self.gen = gen
        self.off = log.start[s]
        self.left = 0
        self.seq = log.first[s]
        return True

    def _seek(self, s):
        live = self.log.live
        if not live:
            self.sec = -1
            return False
        first = self.log.first
        x = live[0]
        for t in live:
            if first[t] > s:
                break
            x = t
        return self._enter(x)

    def _ahead(self, s):
        # True if a later sector already starts at or before s: seek, do not
        # decode through everything in between.
        live = self.log.live
        i = live.index(self.sec)
        return i + 1 < len(live) and self.log.first[live[i + 1]] <= s

    def _load(self):
        # Next readings record of the current sector into buf; False at the
        # end of the sector (its valid end, as the log knows it).
        log = self.log
        s = self.sec
        b = self.buf
        mv = memoryview(b)
        while self.off < log.end[s]:
            off = self.off
            log.read(s, off, mv[:RH])
            t = b[0]
            ln = b[1] | (b[2] << 8)
            if (t != T_READ and t != T_READC and t != T_CUR) or ln > REC_MAX or off + RH + ln + RT > log.end[s]:
                log.damage(s, off)
                return False
            log.read(s, off + RH, mv[RH : RH + ln + RT])
            if not record_ok(b, ln, log.sseq[s]):
                log.damage(s, off)
                return False
            self.off = off + RH + ln + RT
            if t != T_CUR and b[3]:
                self.roff = off
                self.left = b[3]
                self.rpos = RH
                self.rend = RH + ln
                return True
        return False

    def _next_sector(self):
        live = self.log.live
        i = live.index(self.sec)
        if i + 1 >= len(live):
            return False  # at the head: stay here, more records may come
        return self._enter(live[i + 1])

    def get(self, s):
        if not self._valid() or s < self.seq or (s > self.seq and self._ahead(s)):
            if not self._seek(s):
                return None
        st = self.st
        while True:
            if self.left == 0:
                if self._load():
                    continue
                if not self._next_sector():
                    return None
                continue
            try:
                self.rpos = codec.decode(self.buf, self.rpos, self.rend, st)
            except codec.CodecError:
                self.log.damage(self.sec, self.roff)
                self.left = 0
                continue
            self.left -= 1
            q = self.seq
            self.seq = q + 1
            if q >= s:
                return (q, st[0], st[1], st[2], st[3], st[4])
