"""Bit-level primitives of the uplink batch codec (docs/wire-format.md, "Batch payload"):
zigzag, varints, Exp-Golomb, and MSB-first bit writer and reader; the format's
modelling (predictors, streams, Rice parameters) is in tools/ihd/uplink/codec.py.

CodecError lives here because the reader raises it on a truncated stream.
"""

from __future__ import annotations


class CodecError(ValueError):
    """The payload is malformed: truncated, trailing bytes, or impossible values."""


def zz(v: int) -> int:
    """Zigzag: 0, -1, 1, -2 ... -> 0, 1, 2, 3 ..., so small deltas of either sign are small codes."""
    return (v << 1) if v >= 0 else ((-v) << 1) - 1


def unzz(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def varint(v: int) -> bytes:
    """Unsigned LEB128, as the header and stream lengths are written."""
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


class BitWriter:
    """MSB-first bits as a list, so the encoder can roll back a reading by truncating it."""

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


def eg0_bits(x: int) -> int:
    """Length of BitWriter.eg0(x), without writing it."""
    return 2 * (x + 1).bit_length() - 1


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
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
