"""Host side of the uplink batch codec (docs/wire-format.md, "Batch payload").

`decode(payload)` turns a DATA datagram's payload back into readings
(utc_s, demand_w, delivered_wh, received_wh, flags); the collector uses it.
`Encoder`/`encode()` are a line-by-line CPython port of the firmware encoder
(firmware/uplink/codec.py), kept byte-identical to it by a host test that
compares both on the same readings; the bench uses the port for quick
estimates and the firmware for the reported figures. Bit I/O (zigzag,
varints, Exp-Golomb, bit writer and reader, CodecError) is in uplink/bits.py.

    python -m ihd.uplink.codec decode HEX      # print the readings as CSV
    python -m ihd.uplink.codec encode FILE.csv # payload hex of one batch
"""

from __future__ import annotations

import argparse
import csv
import sys

from ihd.uplink.bits import BitReader, BitWriter, CodecError, eg0_bits, read_varint, unzz, varint, zz

QMAX = 20
NRESET = 16
WH2 = 7200
ACC_MAX = 7199  # carry kept within [0, 1 Wh): the register is floor(energy)
NSTREAMS = 5
JUMP = 48
F_SUMMATION = 4  # firmware/meter/reading.py: delivered_wh is known
F_RECEIVED = 8  # received_wh is known
F_GAS = 32  # the gas meter's reading (litres or Wh): version 3's gas section
GAS_ENTRY_MAX = 24  # firmware/uplink/codec_gas.py: worst case of one gas reading
DEV_EPOCH = 1704067200  # firmware/meter/reading.py: device seconds are Unix - this


class Encoder:
    """CPython port of firmware/uplink/codec.Encoder (same decisions, same bytes)."""

    def __init__(self, cap: int, gas: int = 0) -> None:
        self.cap = cap
        self.gcap = gas  # bytes for the gas section (firmware/uplink/codec_gas.py); 0: none
        self.start()

    def start(self) -> None:
        self.w = [BitWriter() for _ in range(NSTREAMS)]
        self.n = 0
        self.utc = self.dem = self.dele = self.rec = self.flg = 0
        self.dt = self.accd = self.accr = self.lvl = 0
        self.ra, self.rn = 4, 1
        self.run = [0, 0, 0, 0]
        self.first = (0, 0, 0, 0, 0)
        self.gas = bytearray()  # the gas section's entries (device seconds, as the firmware)
        self.gn = 0
        self.gprev = (-1, 0, 0, 0)  # position, t, delivered, flags of the last gas reading

    def _ghead(self) -> int:
        return len(varint(self.gn)) + len(varint(len(self.gas))) + len(self.gas) if self.gn else 0

    def _add_gas(self, utc: int, demand: int, delivered: int, flags: int) -> bool:
        if len(self.gas) + GAS_ENTRY_MAX > self.gcap:
            return False
        if self._size(self.n) + self._ghead() + GAS_ENTRY_MAX + 4 > self.cap:
            return False
        utc -= DEV_EPOCH  # the firmware codes gas times in device seconds
        pos, t, d, f = self.gprev
        here = self.n + self.gn
        self.gas += varint(here - pos - 1) + varint(zz(utc - t)) + varint(zz(delivered - d))
        self.gas += varint(flags ^ f) + varint(zz(demand))
        self.gn += 1
        self.gprev = (here, utc, delivered, flags)
        return True

    def _sparse(self, k: int, v: int) -> None:
        if v == 0:
            self.run[k] += 1
            return
        w = self.w[0 if k == 0 else k + 1]
        w.eg0(self.run[k])
        w.eg0(v - 1)
        self.run[k] = 0

    def _rice(self, v: int) -> None:
        k = 0
        while (self.rn << (k + 1)) <= self.ra:
            k += 1
        w = self.w[1]
        q = v >> k
        if q < QMAX:
            w.ones(q)
            w.write(0, 1)
            w.write(v, k)
        else:
            w.ones(QMAX)
            w.eg0(v)
        self.ra += v
        self.rn += 1
        if self.rn >= NRESET:
            self.ra >>= 1
            self.rn >>= 1

    def _snapshot(self):
        return (
            [len(w.bits) for w in self.w],
            (self.dt, self.accd, self.accr, self.ra, self.rn, list(self.run), self.lvl),
        )

    def _rollback(self, snap) -> None:
        lens, (self.dt, self.accd, self.accr, self.ra, self.rn, run, self.lvl) = snap
        self.run = run
        for w, n in zip(self.w, lens, strict=True):
            del w.bits[n:]

    def add(self, utc: int, demand: int, delivered: int, received: int, flags: int) -> bool:
        if flags & F_GAS and self.gcap:  # without a gas section: in the streams, as version 2
            return self._add_gas(utc, demand, delivered, flags)
        if self.n == 0:
            self.first = (utc, demand, delivered, received, flags)
            self.lvl = demand << 3
        else:
            snap = self._snapshot()
            dt = utc - self.utc
            self._sparse(0, zz(dt - self.dt))
            self.dt = dt
            e = demand - ((self.lvl + 4) >> 3)
            self._rice(zz(e))
            self.lvl = self.lvl + (((demand << 3) - self.lvl) >> 2) if -JUMP <= e <= JUMP else demand << 3
            e2 = (self.dem + demand) * dt
            accd, accr = self.accd, self.accr
            if e2 > 0:
                accd += e2
            else:
                accr -= e2
            if not flags & F_SUMMATION:
                accd = 0
            if not flags & F_RECEIVED:
                accr = 0
            step = delivered - self.dele
            self._sparse(1, zz(step - (accd // WH2 if accd > 0 else 0)))
            accd -= step * WH2
            step = received - self.rec
            self._sparse(2, zz(step - (accr // WH2 if accr > 0 else 0)))
            accr -= step * WH2
            self.accd = max(0, min(ACC_MAX, accd))
            self.accr = max(0, min(ACC_MAX, accr))
            self._sparse(3, flags ^ self.flg)
            if self._size(self.n + 1) > self.cap:
                self._rollback(snap)
                return False
        self.utc, self.dem, self.dele, self.rec, self.flg = utc, demand, delivered, received, flags
        self.n += 1
        return True

    def _head(self, n: int) -> bytes:
        u, d, de, r, f = self.first
        return varint(n) + u.to_bytes(4, "big") + varint(zz(d)) + varint(zz(de)) + varint(zz(r)) + varint(f)

    def _size(self, n: int) -> int:
        total = (len(self._head(n)) if n else 1) + self._ghead()
        for i, w in enumerate(self.w):
            bits = w.nbits()
            k = 0 if i == 0 else i - 1
            if i != 1 and self.run[k]:
                bits += eg0_bits(self.run[k])
            nb = (bits + 7) >> 3
            total += nb + (len(varint(nb)) if i < NSTREAMS - 1 else 0)
        return total

    def finish(self) -> bytes:
        pre = varint(self.gn) + varint(len(self.gas)) + bytes(self.gas) if self.gn else b""
        if self.n == 0:
            return pre + varint(0)
        return pre + self._finish()

    def _finish(self) -> bytes:
        out = self._head(self.n)
        if self.n < 2:
            return out
        for k in range(4):
            if self.run[k]:
                self.w[0 if k == 0 else k + 1].eg0(self.run[k])
                self.run[k] = 0
        streams = [w.tobytes() for w in self.w]
        return out + b"".join(varint(len(s)) for s in streams[:-1]) + b"".join(streams)


def encode(readings, cap: int = 1200, gas: int = 0) -> tuple[bytes, int]:
    """Encode as many of `readings` as fit in `cap` bytes: (payload, count). gas: bytes
    for the gas section (version 3); readings flagged F_GAS go there."""
    enc = Encoder(cap, gas)
    for r in readings:
        if not enc.add(*r):
            break
    return enc.finish(), enc.n + enc.gn


class _Sparse:
    """Reads a sparse stream: runs of zeros, each ended by one non-zero value."""

    def __init__(self, r: BitReader, total: int) -> None:
        self.r = r
        self.zeros = 0
        self.left = total  # values still to produce
        self.value_next = False

    def next(self) -> int:
        self.left -= 1
        if self.zeros:
            self.zeros -= 1
            return 0
        if self.value_next:
            self.value_next = False
            return self.r.eg0() + 1
        run = self.r.eg0()
        if run > self.left + 1:
            raise CodecError(f"stream {self.r.name}: zero run {run} beyond the batch")
        if run == 0:
            return self.r.eg0() + 1
        self.zeros = run - 1
        self.value_next = run <= self.left
        return 0


def decode(payload: bytes) -> list[tuple[int, int, int, int, int]]:
    """Payload -> readings. CodecError on any inconsistency (never a wrong answer)."""
    data = bytes(payload)
    n, pos = read_varint(data, 0)
    if n == 0:
        raise CodecError("empty batch")
    if n > 100_000:
        raise CodecError(f"count {n} is impossible in one datagram")
    if pos + 4 > len(data):
        raise CodecError("header truncated")
    utc = int.from_bytes(data[pos : pos + 4], "big")
    pos += 4
    zd, pos = read_varint(data, pos)
    zde, pos = read_varint(data, pos)
    zr, pos = read_varint(data, pos)
    flg, pos = read_varint(data, pos)
    dem, dele, rec = unzz(zd), unzz(zde), unzz(zr)
    out = [(utc, dem, dele, rec, flg)]
    if n == 1:
        if pos != len(data):
            raise CodecError(f"{len(data) - pos} trailing bytes")
        return out
    lens = []
    for _ in range(NSTREAMS - 1):
        ln, pos = read_varint(data, pos)
        lens.append(ln)
    rest = len(data) - pos - sum(lens)
    if rest < 0:
        raise CodecError("streams truncated")
    lens.append(rest)
    names = "TDERF"
    readers = []
    for i, ln in enumerate(lens):
        readers.append(BitReader(data[pos : pos + ln], names[i]))
        pos += ln
    t, e, r, f = (_Sparse(readers[i], n - 1) for i in (0, 2, 3, 4))
    rd = readers[1]
    ra, rn = 4, 1
    dt = accd = accr = 0
    lvl = dem << 3
    for _ in range(n - 1):
        dt += unzz(t.next())
        utc += dt
        k = 0
        while (rn << (k + 1)) <= ra:
            k += 1
        q = rd.ones(QMAX)
        if q < QMAX:  # ones() consumed the terminating 0
            v = (q << k) | rd.read(k)
        else:
            v = rd.eg0()
        ra += v
        rn += 1
        if rn >= NRESET:
            ra >>= 1
            rn >>= 1
        res = unzz(v)
        ndem = ((lvl + 4) >> 3) + res
        lvl = lvl + (((ndem << 3) - lvl) >> 2) if -JUMP <= res <= JUMP else ndem << 3
        e2 = (dem + ndem) * dt
        if e2 > 0:
            accd += e2
        else:
            accr -= e2
        flg ^= f.next()
        if not flg & F_SUMMATION:
            accd = 0
        if not flg & F_RECEIVED:
            accr = 0
        step = unzz(e.next()) + (accd // WH2 if accd > 0 else 0)
        dele += step
        accd -= step * WH2
        step = unzz(r.next()) + (accr // WH2 if accr > 0 else 0)
        rec += step
        accr -= step * WH2
        accd = max(0, min(ACC_MAX, accd))
        accr = max(0, min(ACC_MAX, accr))
        dem = ndem
        out.append((utc, dem, dele, rec, flg))
    for rdr in readers:
        unused = len(rdr.data) * 8 - rdr.pos
        if unused >= 8 or rdr.read(unused) != 0:
            raise CodecError(f"stream {rdr.name}: {unused} unused bits")
    return out


def decode3(payload: bytes) -> list[tuple[int, int, int, int, int]]:
    """A version-3 DATA payload (docs/wire-format.md, "Gas section") -> readings in
    reading-seq order, the gas meter's (flag F_GAS) at their positions among the
    electricity ones. CodecError on any inconsistency."""
    data = bytes(payload)
    gn, pos = read_varint(data, 0)
    glen, pos = read_varint(data, pos)
    end = pos + glen
    if gn == 0 or end > len(data):
        raise CodecError("gas section empty or truncated")
    gas = []
    at, t, d, f = -1, 0, 0, 0
    for _ in range(gn):
        vals = []
        for _ in range(5):
            if pos >= end:
                raise CodecError("gas section truncated")
            v, pos = read_varint(data, pos)
            vals.append(v)
        gap, dt, dd, fx, dem = vals
        at += gap + 1
        t += unzz(dt)
        d += unzz(dd)
        f ^= fx
        if not f & F_GAS or d < 0:
            raise CodecError(f"gas section reading {len(gas)} is not a gas reading")
        gas.append((at, (t + DEV_EPOCH, unzz(dem), d, 0, f)))
    if pos != end:
        raise CodecError("gas section longer than its readings")
    rest = data[end:]
    if rest == b"\x00":
        elec = []
    else:
        elec = decode(rest)
    if any(r[4] & F_GAS for r in elec):
        raise CodecError("a gas reading among the electricity streams")
    total = len(elec) + gn
    if gas[-1][0] >= total:
        raise CodecError(f"gas reading at position {gas[-1][0]} of a batch of {total}")
    out, ei, gi = [], 0, 0
    for i in range(total):
        if gi < gn and gas[gi][0] == i:
            out.append(gas[gi][1])
            gi += 1
        else:
            out.append(elec[ei])
            ei += 1
    return out


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="decode a batch payload given in hex; print CSV")
    d.add_argument("hex")
    e = sub.add_parser("encode", help="encode readings from a CSV (utc_s,demand_w[,delivered_wh,received_wh,flags])")
    e.add_argument("csv")
    e.add_argument("--cap", type=int, default=1130)
    a = ap.parse_args(argv)
    if a.cmd == "decode":
        try:
            rows = decode(bytes.fromhex(a.hex))
        except (ValueError, CodecError) as ex:
            print(f"error: {ex}", file=sys.stderr)
            return 1
        w = csv.writer(sys.stdout)
        w.writerow(["utc_s", "demand_w", "delivered_wh", "received_wh", "flags"])
        w.writerows(rows)
        return 0
    with open(a.csv, newline="") as fh:
        rows = [tuple(int(x) for x in row.values()) + (0,) * (5 - len(row)) for row in csv.DictReader(fh)]
    payload, n = encode(rows, a.cap)
    print(payload.hex())
    print(f"{n} of {len(rows)} readings in {len(payload)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
