"""Host side of the uplink batch codec (docs/wire-format.md, "Batch payload").

`decode(payload)` turns a DATA datagram's payload back into readings
(utc_s, demand_w, delivered_wh, received_wh, flags); the collector uses it.
`Encoder`/`encode()` are a line-by-line CPython port of the firmware encoder
(firmware/uplink/codec.py), kept byte-identical to it by a host test that
compares both on the same readings; the bench uses the port for quick
estimates and the firmware for the reported figures.

    python tools/uplink_codec.py decode HEX      # print the readings as CSV
    python tools/uplink_codec.py encode FILE.csv # payload hex of one batch
"""

from __future__ import annotations

import argparse
import csv
import sys

QMAX = 20
NRESET = 16
WH2 = 7200
ACC_MAX = 7199  # carry kept within [0, 1 Wh): the register is floor(energy)
NSTREAMS = 5
JUMP = 48
F_SUMMATION = 4  # firmware/meter/reading.py: delivered_wh is known
F_RECEIVED = 8  # received_wh is known


class CodecError(ValueError):
    """The payload is malformed: truncated, trailing bytes, or impossible values."""


def zz(v: int) -> int:
    return (v << 1) if v >= 0 else ((-v) << 1) - 1


def unzz(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _varint(v: int) -> bytes:
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class BitWriter:
    def __init__(self) -> None:
        self.bits: list[int] = []

    def write(self, v: int, n: int) -> None:
        for i in range(n - 1, -1, -1):
            self.bits.append((v >> i) & 1)

    def ones(self, q: int) -> None:
        self.bits.extend([1] * q)

    def eg0(self, x: int) -> None:
        x += 1
        n = x.bit_length()
        self.write(0, n - 1)
        self.write(x, n)

    def nbits(self) -> int:
        return len(self.bits)

    def tobytes(self) -> bytes:
        bits = self.bits + [0] * (-len(self.bits) % 8)
        return bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))


class BitReader:
    """MSB-first bit reader over a '0'/'1' string (fast slicing in CPython)."""

    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0
        self.name = name

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.bits):
            raise CodecError(f"stream {self.name} truncated")

    def bit(self) -> int:
        self._need(1)
        self.pos += 1
        return 1 if self.bits[self.pos - 1] == "1" else 0

    def read(self, n: int) -> int:
        if n == 0:
            return 0
        self._need(n)
        self.pos += n
        return int(self.bits[self.pos - n : self.pos], 2)

    def eg0(self) -> int:
        one = self.bits.find("1", self.pos, self.pos + 65)
        if one < 0:
            raise CodecError(f"stream {self.name}: Exp-Golomb prefix truncated or too long")
        n = one - self.pos
        self.pos = one
        return self.read(n + 1) - 1

    def ones(self, limit: int) -> int:
        """Count 1 bits up to `limit`; a terminating 0 (if any before the limit) is consumed."""
        zero = self.bits.find("0", self.pos, self.pos + limit)
        if zero < 0:
            self._need(limit)
            self.pos += limit
            return limit
        q = zero - self.pos
        self.pos = zero + 1
        return q


def _eg0_bits(x: int) -> int:
    return 2 * (x + 1).bit_length() - 1


class Encoder:
    """CPython port of firmware/uplink/codec.Encoder (same decisions, same bytes)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.start()

    def start(self) -> None:
        self.w = [BitWriter() for _ in range(NSTREAMS)]
        self.n = 0
        self.utc = self.dem = self.dele = self.rec = self.flg = 0
        self.dt = self.accd = self.accr = self.lvl = 0
        self.ra, self.rn = 4, 1
        self.run = [0, 0, 0, 0]
        self.first = (0, 0, 0, 0, 0)

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
        return _varint(n) + u.to_bytes(4, "big") + _varint(zz(d)) + _varint(zz(de)) + _varint(zz(r)) + _varint(f)

    def _size(self, n: int) -> int:
        total = len(self._head(n))
        for i, w in enumerate(self.w):
            bits = w.nbits()
            k = 0 if i == 0 else i - 1
            if i != 1 and self.run[k]:
                bits += _eg0_bits(self.run[k])
            nb = (bits + 7) >> 3
            total += nb + (len(_varint(nb)) if i < NSTREAMS - 1 else 0)
        return total

    def finish(self) -> bytes:
        out = self._head(self.n)
        if self.n < 2:
            return out
        for k in range(4):
            if self.run[k]:
                self.w[0 if k == 0 else k + 1].eg0(self.run[k])
                self.run[k] = 0
        streams = [w.tobytes() for w in self.w]
        return out + b"".join(_varint(len(s)) for s in streams[:-1]) + b"".join(streams)


def encode(readings, cap: int = 1200) -> tuple[bytes, int]:
    """Encode as many of `readings` as fit in `cap` bytes: (payload, count)."""
    enc = Encoder(cap)
    for r in readings:
        if not enc.add(*r):
            break
    return enc.finish(), enc.n


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    v = shift = 0
    while True:
        if pos >= len(data):
            raise CodecError("header truncated")
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos
        if shift > 63:
            raise CodecError("varint too long")


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
    n, pos = _read_varint(data, 0)
    if n == 0:
        raise CodecError("empty batch")
    if n > 100_000:
        raise CodecError(f"count {n} is impossible in one datagram")
    if pos + 4 > len(data):
        raise CodecError("header truncated")
    utc = int.from_bytes(data[pos : pos + 4], "big")
    pos += 4
    zd, pos = _read_varint(data, pos)
    zde, pos = _read_varint(data, pos)
    zr, pos = _read_varint(data, pos)
    flg, pos = _read_varint(data, pos)
    dem, dele, rec = unzz(zd), unzz(zde), unzz(zr)
    out = [(utc, dem, dele, rec, flg)]
    if n == 1:
        if pos != len(data):
            raise CodecError(f"{len(data) - pos} trailing bytes")
        return out
    lens = []
    for _ in range(NSTREAMS - 1):
        ln, pos = _read_varint(data, pos)
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
