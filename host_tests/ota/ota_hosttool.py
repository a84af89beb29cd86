"""Shared helpers for the OTA host tests: ihd ota, keys, crafted blocks.

Keys are made by espsecure (through ihd ota); the only hand-made
cryptography is in craft_block(), which builds deliberately malformed
RSASSA-PSS encodings that no signing tool would emit.
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import zlib
from pathlib import Path

from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.ota import tool  # noqa: E402, F401  (the OTA host tool, for the tests)

SECTOR = 4096
BLOCK = 1216
EM_LEN = 384


def private_numbers(pem: Path):
    key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
    return key.private_numbers()


def sig_block(signed: bytes, i: int = 0) -> bytearray:
    off = len(signed) - SECTOR + i * BLOCK
    return bytearray(signed[off : off + BLOCK])


def put_block(signed: bytes, blk: bytearray, i: int = 0, fix_crc: bool = True) -> bytes:
    blk = bytearray(blk)
    if fix_crc:
        struct.pack_into("<I", blk, 1196, zlib.crc32(bytes(blk[:1196])) & 0xFFFFFFFF)
    off = len(signed) - SECTOR + i * BLOCK
    return signed[:off] + bytes(blk) + signed[off + BLOCK :]


def flip(data: bytes, offset: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[offset] ^= mask
    return bytes(b)


def mgf1(seed: bytes, length: int) -> bytes:
    out = b""
    c = 0
    while len(out) < length:
        out += hashlib.sha256(seed + struct.pack(">I", c)).digest()
        c += 1
    return out[:length]


def pss_encode(
    mhash: bytes,
    salt: bytes,
    trailer: int = 0xBC,
    pad_byte_at: int | None = None,
    separator: int = 0x01,
) -> bytes:
    """EMSA-PSS-ENCODE (RFC 8017 9.1.1) for emBits 3071 with optional defects."""
    h = hashlib.sha256(b"\0" * 8 + mhash + salt).digest()
    db = bytearray(b"\0" * (EM_LEN - len(salt) - 32 - 2) + bytes([separator]) + salt)
    if pad_byte_at is not None:
        db[pad_byte_at] = 0x07
    masked = bytes(a ^ b for a, b in zip(db, mgf1(h, EM_LEN - 33), strict=True))
    masked = bytes([masked[0] & 0x7F]) + masked[1:]
    return masked + h + bytes([trailer])


def craft_block(signed: bytes, pem: Path, em: bytes | int) -> bytes:
    """Replace block 0's signature by em^d mod n, i.e. a signature whose
    public-key decoding is exactly `em`; CRC recomputed."""
    pn = private_numbers(pem)
    n = pn.public_numbers.n
    m = em if isinstance(em, int) else int.from_bytes(em, "big")
    assert m < n
    s = pow(m, pn.d, n)
    blk = sig_block(signed)
    blk[812:1196] = s.to_bytes(384, "little")
    return put_block(signed, blk)


def random_salt(n: int = 32) -> bytes:
    return os.urandom(n)
