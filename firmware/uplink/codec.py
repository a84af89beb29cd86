# Batch codec: packs a run of consecutive readings into a few bits each.
#
# Owns the payload format of a DATA datagram (docs/wire-format.md, "Batch
# payload"). Pure MicroPython: stock ESP32 builds have no deflate, and a
# general-purpose compressor would not know that meter readings arrive at a
# regular interval, that demand moves by a few watts between readings and
# that the energy counters advance by what the demand predicts.
#
# Layout: a byte header (count, first reading in full) then five bit streams,
# one per field, each byte-aligned and preceded (except the last) by its
# length. Separate streams let a field be run-length coded without look-ahead
# across the others, and let the decoder read them in lock-step.
#   T  interval changes   sparse: (zero run, zigzag(dt - previous dt))
#   D  demand             adaptive Rice of zigzag(demand - level estimate)
#   E  delivered energy   sparse: zigzag(counter step - step predicted from demand)
#   R  received energy    sparse: likewise for export (negative demand)
#   F  flags              sparse: flags XOR previous flags
# The encoder is streaming: readings go in one at a time (from the store's
# iterator), and the batch closes when the next reading would not fit the
# byte budget; the state before each reading is kept so it can be undone.
# tools/ihd/uplink/codec.py is the host decoder (and a port of this encoder that
# a test holds byte-identical to this one).
from micropython import const

from meter.reading import DEV_EPOCH, F_GAS, F_RECEIVED, F_SUMMATION

_QMAX = const(20)  # longest Rice unary prefix before the escape
_NRESET = const(16)  # Rice statistics halve after this many values (fast adaptation)
_JUMP = const(48)  # W: a demand change beyond this resets the level
_WH2 = const(7200)  # 1 Wh in the predictor's unit: 2 * W * s (trapezoid)
_ACC_MAX = const(7199)  # the meter's unseen fraction of a Wh: 0 .. 1 Wh - 1
_NSTREAMS = const(5)


_BSH = const(5)  # a stream grows by blocks of 32 bytes from the shared pool
_BLK = const(32)
_BM = const(31)


class BitWriter:
    # MSB-first bits into blocks of a pool the batch's streams share: a
    # stream takes its next block when it needs one, so the five streams
    # together need the budget plus a partial block each, not five budgets.
    # `over` latches when the pool is exhausted (the encoder then undoes the
    # last reading instead of checking each write).
    def __init__(self, pool, top, nblk):
        self.pool = pool
        self.top = top  # array: next free block of the pool (shared)
        self.nblk = nblk
        self.blk = bytearray(nblk)  # pool block of each of this stream's blocks
        self.reset()

    def reset(self):
        self.pos = 0  # whole bytes written
        self.acc = 0  # pending bits, fewer than 8
        self.nacc = 0
        self.over = False

    def write(self, v, n):
        # n may exceed a small int's width: split into 16-bit pieces.
        while n > 16:
            n -= 16
            self.write((v >> n) & 0xFFFF, 16)
        acc = (self.acc << n) | (v & ((1 << n) - 1))
        nacc = self.nacc + n
        pos = self.pos
        blk = self.blk
        while nacc >= 8:
            nacc -= 8
            if not pos & _BM:
                k = self.top[0]
                if k >= self.nblk:
                    self.over = True
                    continue
                self.top[0] = k + 1
                blk[pos >> _BSH] = k
            self.pool[(blk[pos >> _BSH] << _BSH) | (pos & _BM)] = (acc >> nacc) & 0xFF
            pos += 1
        self.pos = pos
        self.acc = acc & ((1 << nacc) - 1)
        self.nacc = nacc

    def copy(self, out, p, n):
        # The first n bytes of the stream into out at p; -> p + n. No allocation.
        pool = self.pool
        blk = self.blk
        i = 0
        while i < n:
            out[p + i] = pool[(blk[i >> _BSH] << _BSH) | (i & _BM)]
            i += 1
        return p + n

    def ones(self, q):
        while q > 16:
            self.write(0xFFFF, 16)
            q -= 16
        self.write((1 << q) - 1, q)

    def eg0(self, x):
        # Exp-Golomb order 0 of x >= 0: (len-1) zeros then x+1 in binary.
        x += 1
        n = 0
        t = x
        while t:
            n += 1
            t >>= 1
        self.write(0, n - 1)
        self.write(x, n)

    def nbytes(self):
        return self.pos + (1 if self.nacc else 0)

    def flush(self):
        # Pad the last byte with zeros; returns the stream length in bytes.
        if self.nacc:
            self.write(0, 8 - self.nacc)
        return self.pos


def zz(v):
    return (v << 1) if v >= 0 else ((-v) << 1) - 1


def eg0_bits(x):
    x += 1
    n = 0
    while x:
        n += 1
        x >>= 1
    return 2 * n - 1


def _varint(buf, pos, v):
    while v >= 0x80:
        buf[pos] = (v & 0x7F) | 0x80
        v >>= 7
        pos += 1
    buf[pos] = v
    return pos + 1


def _varint_len(v):
    n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


# Indices into the encoder state list (kept in one list so that saving and
# restoring it before each reading allocates nothing).
_N = const(0)
_UTC = const(1)
_DEM = const(2)
_DEL = const(3)
_REC = const(4)
_FLG = const(5)
_DT = const(6)
_ACCD = const(7)
_ACCR = const(8)
_RA = const(9)  # Rice: sum of coded values
_RN = const(10)  # Rice: count
_RUN = const(11)  # zero runs of the sparse streams T, E, R, F: 11..14
_FIRST = const(15)  # t (device s), demand, delivered, received, flags of reading 0: 15..19
_LVL = const(20)  # demand level estimate, in 1/8 W
_HEAD0 = const(21)  # header bytes but the count's varint (fixed by reading 0)
_NSTATE = const(22)
# Bytes a finished batch may take beyond the header and the streams' whole
# bytes: a partial byte per stream (5), the pending zero runs' Exp-Golomb
# codes (4 x 4 bytes: a run is shorter than the 2^14 readings a batch can
# hold), the four stream lengths (4 x 2 bytes: streams < 16 KB) and the
# count's varint (3). While the streams stay this far under the budget, the
# exact size need not be computed after each reading.
_SLACK = const(32)


class Encoder:
    # One batch at a time: start(), add() each reading until it returns
    # False (full), then finish(out) -> payload length. `cap` is the payload
    # byte budget (what the datagram leaves for it). gas: bytes for the gas
    # section (uplink/codec_gas.py; 0: none, a gas reading closes the batch).
    def __init__(self, cap, gas=0):
        self.cap = cap
        self.gas = None  # made with the first gas reading (most homes have none)
        self.gcap = gas
        # _SLACK holds for batches under 2 KB (fewer than 2^14 readings)
        self.room = cap - _SLACK if cap < 2048 else -1
        # the streams' shared pool: the budget, a partial block per stream
        # and the block a reading may overrun by before it is undone
        nblk = (cap + _BM) // _BLK + _NSTREAMS + 1
        if nblk > 255:
            raise ValueError("codec budget too large")
        pool = bytearray(nblk * _BLK)
        self.top = bytearray(1)
        self.w = [BitWriter(pool, self.top, nblk) for _ in range(_NSTREAMS)]
        self.st = [0] * _NSTATE
        self.saved = [0] * (_NSTATE + 3 * _NSTREAMS + 1)
        self.start()

    def start(self):
        self.top[0] = 0
        if self.gas is not None:
            self.gas.start()
        for w in self.w:
            w.reset()
        st = self.st
        for i in range(_NSTATE):
            st[i] = 0
        st[_RA] = 4
        st[_RN] = 1

    def count(self):
        # readings in the batch, electricity and gas
        return self.st[_N] + (self.gas.n if self.gas is not None else 0)

    def gas_count(self):
        return 0 if self.gas is None else self.gas.n

    def span(self):
        # Seconds from the first to the last reading of the batch.
        return self.st[_UTC] - self.st[_FIRST]

    def size(self):
        # Payload bytes if the batch were finished now.
        return self._size(self.st[_N])

    def _save(self):
        # While loops and few locals: the frame fits the C stack (a function
        # with more than 11 words of state gets a heap frame at every call).
        s = self.saved
        st = self.st
        i = 0
        while i < _NSTATE:
            s[i] = st[i]
            i += 1
        ws = self.w
        k = 0
        while k < _NSTREAMS:
            w = ws[k]
            s[i] = w.pos
            s[i + 1] = w.acc
            s[i + 2] = w.nacc
            i += 3
            k += 1
        s[i] = self.top[0]

    def _restore(self):
        s = self.saved
        st = self.st
        for i in range(_NSTATE):
            st[i] = s[i]
        j = _NSTATE
        for w in self.w:
            w.pos = s[j]
            w.acc = s[j + 1]
            w.nacc = s[j + 2]
            w.over = False
            j += 3
        self.top[0] = s[j]  # blocks taken by the undone reading are free again

    def _sparse(self, k, v):
        # Stream k (0=T 1=E 2=R 3=F): zero values only lengthen the run.
        st = self.st
        if v == 0:
            st[_RUN + k] += 1
            return
        w = self.w[0 if k == 0 else k + 1]
        w.eg0(st[_RUN + k])
        w.eg0(v - 1)
        st[_RUN + k] = 0

    def _rice(self, v):
        st = self.st
        a = st[_RA]
        n = st[_RN]
        # k = floor(log2(A / N)), 0 if A < 2N: the mean's power of two
        # rounded down (rounding up cost ~0.3-0.4 bit a reading on noisy
        # demand, whose zigzag values are closer to uniform than geometric).
        k = 0
        while (n << (k + 1)) <= a:
            k += 1
        w = self.w[1]
        if (v >> k) < _QMAX:
            w.ones(v >> k)
            w.write(0, 1)
            w.write(v, k)
        else:
            w.ones(_QMAX)
            w.eg0(v)
        a += v
        n += 1
        if n >= _NRESET:
            a >>= 1
            n >>= 1
        st[_RA] = a
        st[_RN] = n

    def add(self, utc, demand, delivered, received, flags):
        # -> True if the reading is in the batch, False if it did not fit
        # (the batch is then unchanged and should be finished).
        st = self.st
        n = st[_N]
        if flags & F_GAS and self.gcap:  # without a gas section: in the streams, as version 2
            return self._add_gas(utc, demand, delivered, flags)
        if n == 0:
            st[_FIRST] = utc
            st[_FIRST + 1] = demand
            st[_FIRST + 2] = delivered
            st[_FIRST + 3] = received
            st[_FIRST + 4] = flags
            st[_LVL] = demand << 3
            st[_HEAD0] = self._head_len(0) - 1
        else:
            self._save()
            dt = utc - st[_UTC]
            self._sparse(0, zz(dt - st[_DT]))
            st[_DT] = dt
            # Demand is predicted by a level that follows the readings
            # (a quarter of the way each time) and jumps with a switched
            # appliance: steady loads' noise then costs about a quarter bit
            # less than a plain difference would.
            lvl = st[_LVL]
            e = demand - ((lvl + 4) >> 3)
            self._rice(zz(e))
            if -_JUMP <= e <= _JUMP:
                st[_LVL] = lvl + (((demand << 3) - lvl) >> 2)
            else:
                st[_LVL] = demand << 3
            # Energy predicted from the trapezoid of the two demands; the
            # carry tracks the meter's unseen fraction of a Wh, and is kept
            # within [0, 1 Wh) after each observed step: a register that
            # reads floor(energy) cannot hold more, so each surprise locks
            # the estimate back onto the meter's phase.
            e2 = (st[_DEM] + demand) * dt
            accd = st[_ACCD]
            accr = st[_ACCR]
            if e2 > 0:
                accd += e2
            else:
                accr -= e2
            # Predict only counters the meter reports (flags of this reading).
            if not flags & F_SUMMATION:
                accd = 0
            if not flags & F_RECEIVED:
                accr = 0
            step = delivered - st[_DEL]
            self._sparse(1, zz(step - (accd // _WH2 if accd > 0 else 0)))
            accd -= step * _WH2
            step = received - st[_REC]
            self._sparse(2, zz(step - (accr // _WH2 if accr > 0 else 0)))
            accr -= step * _WH2
            st[_ACCD] = max(0, min(_ACC_MAX, accd))
            st[_ACCR] = max(0, min(_ACC_MAX, accr))
            self._sparse(3, flags ^ st[_FLG])
            w = self.w
            g = self.gas.head_len() if self.gas is not None and self.gas.n else 0
            if st[_HEAD0] + w[0].pos + w[1].pos + w[2].pos + w[3].pos + w[4].pos + g > self.room:
                if self._size(n + 1) > self.cap:  # near the budget: the exact size
                    self._restore()
                    return False
        st[_UTC] = utc
        st[_DEM] = demand
        st[_DEL] = delivered
        st[_REC] = received
        st[_FLG] = flags
        st[_N] = n + 1
        return True

    def _add_gas(self, utc, demand, delivered, flags):
        # a gas reading: the gas section (version-3 DATA), not the streams
        g = self.gas
        if g is None:
            from uplink.codec_gas import GasSection

            g = self.gas = GasSection(self.gcap)
        if g is None or not g.fits():
            return False
        if self._size(self.st[_N]) + g.head_len() + 24 + 4 > self.cap:
            return False
        g.add(self.st[_N] + g.n, utc, demand, delivered, flags)
        return True

    def _head_len(self, n):
        st = self.st
        return (
            _varint_len(n)
            + 4
            + _varint_len(zz(st[_FIRST + 1]))
            + _varint_len(zz(st[_FIRST + 2]))
            + _varint_len(zz(st[_FIRST + 3]))
            + _varint_len(st[_FIRST + 4])
        )

    def _size(self, n):
        # Payload bytes if the batch closed now with n readings.
        w = self.w
        for x in w:
            if x.over:
                return self.cap + 1
        total = self._head_len(n) if n else 1
        g = self.gas
        if g is not None and g.n:
            total += g.head_len()
        st = self.st
        for i in range(_NSTREAMS):
            bits = w[i].pos * 8 + w[i].nacc
            k = 0 if i == 0 else i - 1
            if i != 1 and st[_RUN + k]:
                bits += eg0_bits(st[_RUN + k])
            nb = (bits + 7) >> 3
            total += nb
            if i < _NSTREAMS - 1:
                total += _varint_len(nb)
        return total

    def finish(self, out, pos=0):
        # Write the payload into `out` at `pos`; returns the end position.
        # With gas readings: the gas section first (a version-3 payload).
        st = self.st
        n = st[_N]
        g = self.gas
        if g is not None and g.n:
            pos = g.finish(out, pos)
        pos = _varint(out, pos, n)
        if n == 0:
            return pos  # a batch of gas readings only
        # the one absolute time on the wire: Unix seconds (docs/wire-format.md);
        # readings carry device seconds (meter/reading.py), converted here,
        # once per batch (a boxed int on a 32-bit port, never per reading)
        u = st[_FIRST] + DEV_EPOCH
        out[pos] = (u >> 24) & 0xFF
        out[pos + 1] = (u >> 16) & 0xFF
        out[pos + 2] = (u >> 8) & 0xFF
        out[pos + 3] = u & 0xFF
        pos += 4
        pos = _varint(out, pos, zz(st[_FIRST + 1]))
        pos = _varint(out, pos, zz(st[_FIRST + 2]))
        pos = _varint(out, pos, zz(st[_FIRST + 3]))
        pos = _varint(out, pos, st[_FIRST + 4])
        if n < 2:
            return pos
        w = self.w
        for k in (0, 1, 2, 3):
            if st[_RUN + k]:
                w[0 if k == 0 else k + 1].eg0(st[_RUN + k])
                st[_RUN + k] = 0
        lens = [x.flush() for x in w]
        for i in range(_NSTREAMS - 1):
            pos = _varint(out, pos, lens[i])
        for i in range(_NSTREAMS):
            pos = w[i].copy(out, pos, lens[i])
        return pos
