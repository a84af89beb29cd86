# Reading store: the RAM ring of recent readings plus the power-loss-safe
# flash ring log, persistent cursors and the queries built on them.
#
# Owns sequence numbers and the meaning of "committed" (docs/store.md):
# append() numbers a reading and puts it in RAM only; flush() (or tick() when
# due) writes every pending reading to flash in a few records; a reading is
# committed once a flush has returned with it written (seq <= committed()).
# Committed readings and cursors survive any power cut; pending ones may be
# lost and their seq numbers given again to later readings, unless a cursor
# already points past them (a committed cursor is never re-used).
import time

import faults
from store import codec, queries
from store.codec import NO_TIME
from store.flash_log import FlashLog
from store.layout import ABSURD, MAX_CURSORS, MAX_NAME, RH, SECTOR, T_READ, T_READC
from store.ram_ring import RamRing
from store.reader import Reader

# bounds as globals, not const(): boxed ints on a 32-bit port, built once
_U32 = 0xFFFFFFFF
_I32 = 0x7FFFFFFF
_I32_MIN = -0x80000000
_WORN = 80_000  # mean erase cycles per sector: degraded (100,000-cycle flash)


class Store:
    def __init__(self, part, clock=None, ram_size=900, flush_s=60, flush_n=64):
        if clock is None:
            import hal

            clock = hal.clock
        self.clock = clock
        self.flush_ms = flush_s * 1000
        self.flush_n = flush_n
        # the RAM ring first: its arrays are the largest blocks we need
        self.ram = RamRing(ram_size)
        self.log = FlashLog(part)
        self._wst = codec.new_state()
        self._rd = Reader(self.log)  # queries and readings_from(shared=True); other iterators get their own
        self.dropped = 0  # readings lost before reaching flash (RAM overrun)
        self.rejected = 0  # append() calls with out-of-range values
        self.flush_errors = 0
        self._fails = 0  # consecutive failed flushes
        self._due = None  # ticks_ms by which pending data must be on flash
        self._dirty = False  # a cursor changed since it was last written
        self._marks = {}  # boundary utc -> delivered Wh before it (queries.py)
        self._starts = {}  # hour utc -> first summation in it, for the log's first hour
        self._boot_ram()

    def _boot_ram(self):
        # Next seq: after everything on flash and after every cursor (a seq a
        # cursor has passed must never be handed out again). The RAM ring is
        # refilled from flash so the display has its history at once.
        log = self.log
        last = log.last_seq
        for k in list(log.cursors):
            v = log.cursors[k]
            if v >= ABSURD:
                del log.cursors[k]  # garbage that passed a CRC: not a cursor
            elif v > last:
                last = v
        self.seq = last
        self.fseq = last  # everything up to here is on flash (or lost for good)
        ram = self.ram
        ram.reset(last + 1)
        rd = self._rd
        s = log.last_seq - ram.size + 1
        r = rd.get(s if s > 1 else 1)
        while r is not None:
            ram.put(r[0], r[1], r[2], r[3], r[4], r[5])
            r = rd.get(r[0] + 1)

    # -- writing ---------------------------------------------------------------
    def append(self, t_s, demand_w, delivered_wh, received_wh, flags):
        # -> seq. RAM only, no allocation; flash is written by flush()/tick().
        # t_s in device seconds (meter/reading.py): Unix 0 (NO_TIME) up to
        # 2**31 - 1 (year 2092), so the flash header's u32 Unix time holds it.
        if not (
            NO_TIME <= t_s <= _I32
            and _I32_MIN <= demand_w <= _I32
            and 0 <= delivered_wh <= _U32
            and 0 <= received_wh <= _U32
            and 0 <= flags <= 255
        ):
            self.rejected += 1
            raise ValueError("reading out of range")
        seq = self.seq + 1
        self.seq = seq
        self.ram.put(seq, t_s, demand_w, delivered_wh, received_wh, flags)
        if self._due is None:
            self._due = time.ticks_add(self.clock.ticks_ms(), self.flush_ms)
        return seq

    def pending(self):
        # Readings appended but not yet on flash (and still in RAM).
        lo = self.ram.lo - 1
        f = self.fseq if self.fseq > lo else lo
        return self.seq - f if self.seq > f else 0

    def committed(self):
        # Highest committed seq: every reading up to it is on flash.
        return self.fseq

    def cursors_pending(self):
        # True while a cursor change is not yet on flash.
        return self._dirty

    def flush_due(self, now_ms=None):
        # True when pending data has waited flush_s or flush_n readings wait.
        if self._due is None:
            return False
        if self.pending() >= self.flush_n and not self._fails:
            return True
        if now_ms is None:
            now_ms = self.clock.ticks_ms()
        return time.ticks_diff(now_ms, self._due) >= 0

    def due_in_ms(self, idle_ms, now_ms=None):
        # Device ms until tick() would flush (0: now); idle_ms when nothing
        # waits. For a caller that sleeps between ticks instead of polling.
        if self._due is None:
            return idle_ms
        if now_ms is None:
            now_ms = self.clock.ticks_ms()
        d = time.ticks_diff(self._due, now_ms)
        return 0 if d < 0 else (d if d < idle_ms else idle_ms)

    def tick(self, now_ms=None):
        # Call from the main loop (every second or so): flushes when due.
        if self.flush_due(now_ms):
            return self.flush()
        return 0

    def flush(self):
        # Write pending readings in records of up to 255 (never one program
        # per reading), then changed cursors. Returns readings written; on a
        # flash failure they stay pending and stats() reports it.
        log = self.log
        ram = self.ram
        start = self.fseq + 1
        if start < ram.lo:
            self.dropped += ram.lo - start
            start = ram.lo
        first = start
        end = self.seq
        wst = self._wst
        ok = True
        tries = 0
        while start <= end:
            if start != log.last_seq + 1 or log.room() < codec.MAXENC:
                # a new sector: none yet, head full, or a gap in seqs
                if not log.open_next(start):
                    ok = False
                    break
                self._dirty = False  # the new header holds every cursor
                continue
            buf = log.buf
            lim = RH + log.room() - codec.MAXENC
            codec.copy_state(wst, log.fst)
            p = RH
            s = start
            while s <= end and s - start < 255 and p <= lim:
                p = ram.encode(s, buf, p, wst)
                s += 1
            t = T_READ
            if s > end and self._dirty:
                # the last record of the flush carries the cursors as well
                q = log.trailer(p, RH + log.room())
                if q > 0:
                    p = q
                    t = T_READC
            if log.commit(t, s - start, p - RH, wst):
                start = s
                if t == T_READC:
                    self._dirty = False
            else:
                tries += 1
                if tries > 2:
                    ok = False
                    break
        if start - 1 > self.fseq:
            self.fseq = start - 1
        if ok and self._dirty:
            ok = log.write_cursors()
            self._dirty = not ok
        if ok:
            self._due = None
            self._fails = 0
        else:
            # back off (up to 64 intervals): each failed attempt may cost a
            # sector, and a failing chip must not eat the whole log
            self.flush_errors += 1
            self._fails += 1
            self._due = time.ticks_add(self.clock.ticks_ms(), self.flush_ms << min(self._fails, 6))
        return start - first

    # -- cursors -------------------------------------------------------------
    def cursor(self, name):
        # Last seq the named consumer has finished with (0: none). The uplink
        # resumes from cursor("uploaded") + 1.
        return self.log.cursors.get(name, 0)

    def set_cursor(self, name, seq, sync=False):
        # Persisted with the next flush (sync=True: now). Committed once that
        # flush has returned; costs one small record, never an erase.
        nb = len(name.encode())
        if nb == 0 or nb > MAX_NAME:
            raise ValueError("cursor name must be 1..%d bytes" % MAX_NAME)
        if not 0 <= seq <= self.seq:
            raise ValueError("cursor %d beyond newest reading %d" % (seq, self.seq))
        cur = self.log.cursors
        if name not in cur and len(cur) >= MAX_CURSORS:
            raise ValueError("at most %d cursors" % MAX_CURSORS)
        if cur.get(name) != seq:
            cur[name] = seq
            self._dirty = True
            if self._due is None:
                self._due = time.ticks_add(self.clock.ticks_ms(), self.flush_ms)
        if sync:
            self.flush()

    # -- reading -------------------------------------------------------------
    def latest(self):
        ram = self.ram
        return ram.get(ram.hi) if ram.hi >= ram.lo else None

    def oldest_seq(self):
        # Oldest seq still held (flash or RAM), or None when empty.
        log = self.log
        for s in log.live:
            if log.cnt[s]:
                return log.first[s]
        ram = self.ram
        return ram.lo if ram.hi >= ram.lo else None

    def get(self, seq):
        # The reading with the smallest seq >= seq (committed or pending).
        if self.ram.has(seq):
            return self.ram.get(seq)
        r = self._rd.get(seq)
        if r is None and self.ram.hi >= self.ram.lo and seq < self.ram.lo:
            return self.ram.get(self.ram.lo)
        return r

    def readings_from(self, seq, pending=False, shared=False):
        # Iterator of (seq, utc, demand_w, delivered_wh, received_wh, flags)
        # from seq on, oldest first, streamed from flash then RAM. Committed
        # readings only unless pending=True. Missing seqs (evicted, damaged)
        # are skipped: a jump in seq means readings were lost.
        # shared=True: on the store's own reader (queries use it), so the
        # call allocates no record buffer (488 bytes: a fragmented 96 KB
        # heap did not always have them, MemoryError in the uplink at each
        # look at its batch in the 8-day soak); for a caller that is done
        # with the iterator before it yields to another task or queries the
        # store. Otherwise a reader of its own, for iterators kept longer.
        s = seq if seq > 1 else 1
        rd = self._rd if shared else Reader(self.log)
        ram = self.ram
        while True:
            if s > (self.seq if pending else self.fseq):
                return
            if ram.has(s):
                yield ram.get(s)
                s += 1
                continue
            r = rd.get(s)
            if r is None:
                if ram.hi >= ram.lo and s < ram.lo:
                    s = ram.lo
                    continue
                return
            if r[0] > (self.seq if pending else self.fseq):
                return
            yield r
            s = r[0] + 1

    def read(self, seq_from, max_n, out):
        # Appends up to max_n readings (tuples as readings_from) to the list
        # out; returns how many.
        n = 0
        if max_n <= 0:
            return 0
        for r in self.readings_from(seq_from):
            out.append(r)
            n += 1
            if n >= max_n:
                break
        return n

    def range_utc(self, t0, t1, pending=True):
        return queries.range_utc(self, t0, t1, pending)

    def energy_since(self, utc):
        return queries.energy_since(self, utc)

    def hourly_wh(self, now_utc, hours=24):
        return queries.hourly_wh(self, now_utc, hours)

    # -- health --------------------------------------------------------------
    def stats(self):
        log = self.log
        used = 0
        damaged = 0
        for s in log.live:
            used += log.end[s]
            damaged += log.damaged[s]
        usable = log.usable()
        cap = (usable - 1) * SECTOR if usable > 1 else 1
        quarantined = damaged + log.retired
        # every sector open erases one sector: sector_seq counts lifetime erases
        wear = log.top // log.n
        if log.failing or usable < 3:
            health = "failing"
        elif quarantined or log.corrupt or log.write_failures or self.dropped or self.flush_errors or wear > _WORN:
            health = "degraded"
        else:
            health = "ok"
        newest = self.ram.hi if self.ram.hi >= self.ram.lo else None
        oldest = self.oldest_seq()
        up = self.cursor("uploaded")
        flt = []
        if health == "failing":
            flt.append(faults.FLASH_FAIL)
        if quarantined or log.corrupt:
            flt.append(faults.STORE_CORRUPT)
        # unsent readings over 90% of what the log holds: the oldest are next
        held = self.fseq - oldest + 1 if oldest is not None else 0
        if held and (self.fseq - up) * 10 > held * 9 and used * 10 > cap * 9:
            flt.append(faults.STORE_BACKLOG)
        return {
            "fill_pct": min(100, used * 100 // cap),
            "sectors": log.n,
            "live_sectors": len(log.live),
            "quarantined": quarantined,
            "retired": log.retired,
            "corrupt_records": log.corrupt,
            "erases": log.erases,
            "wear_cycles": wear,
            "programs": log.programs,
            "write_failures": log.write_failures,
            "oldest_seq": oldest,
            "newest_seq": newest,
            "committed_seq": self.fseq,
            "pending": self.pending(),
            "dropped": self.dropped,
            "rejected": self.rejected,
            "unsent": self.fseq - up if self.fseq > up else 0,
            "health": health,
            "faults": flt,
        }
