# ESP Secure Boot V2 signature blocks (RSA-3072) and RSASSA-PSS verification.
#
# Layout of one 1216-byte block, exactly as espsecure writes it
# (generate_rsa_signature_block + crc + pad), all integers little-endian:
#   0     u8   magic 0xE7
#   1     u8   version 0x02 (RSA-PSS)
#   2     2    pad
#   4     32   SHA-256 of the image padded to 4 KB (everything before the
#              signature sector)
#   36    384  modulus n          (big integer, little-endian bytes)
#   420   u32  exponent e
#   424   384  rinv = 2^6144 mod n (for the hardware RSA peripheral)
#   808   u32  m' = -n^-1 mod 2^32 (ditto)
#   812   384  signature          (big integer, little-endian bytes)
#   1196  u32  CRC32 (zlib) of bytes 0..1195
#   1200  16   zero padding
# The key digest that anchors trust is SHA-256 of bytes 36..811 (n, e, rinv,
# m'), as `espsecure digest-sbv2-public-key` computes it; so a trusted digest
# also pins rinv and m', which the hardware (not this code) would use.
#
# Every rejection has its own short code (first word of the reason), so the
# cloud, tests and support can tell a flipped byte from a forged encoding.
import binascii
import hashlib
import struct

from micropython import const

BLOCK_SIZE = const(1216)
SECTOR = const(4096)
MAX_BLOCKS = const(3)
_MAGIC = const(0xE7)
_VERSION_RSA = const(0x02)
_KEY_OFF = const(36)
_KEY_END = const(812)
_SIG_OFF = const(812)
_CRC_OFF = const(1196)
_EM_LEN = const(384)  # 3072-bit modulus: emBits 3071, emLen 384
_H_LEN = const(32)
_S_LEN = const(32)
_DB_LEN = const(351)  # emLen - hLen - 1
_SEP = const(318)  # index of the 0x01 separator in DB: emLen - sLen - hLen - 2
_E = const(65537)

# Stage a block reached before it failed; when no block verifies, the reason
# of the block that got furthest is reported (it says the most).
ST_FORMAT = const(0)
ST_DIGEST = const(1)
ST_TRUST = const(2)
ST_KEY = const(3)
ST_SIG = const(4)
ST_OK = const(5)


def block_ok(blk):
    # Magic, version and CRC, as espsecure's validate_signature_block.
    if blk[0] != _MAGIC or blk[1] != _VERSION_RSA:
        return False
    crc = struct.unpack_from("<I", blk, _CRC_OFF)[0]
    return crc == binascii.crc32(memoryview(blk)[:_CRC_OFF]) & 0xFFFFFFFF


def zero_pad(blk):
    # Bytes 1200..1215 of a block are zero as espsecure writes them.
    for i in range(_CRC_OFF + 4, BLOCK_SIZE):
        if blk[i]:
            return False
    return True


def key_digest(blk):
    return hashlib.sha256(memoryview(blk)[_KEY_OFF:_KEY_END]).digest()


def check_block(blk, digest, trusted):
    # -> (stage, reason): stage ST_OK with reason None when the block is a
    # valid signature of `digest` (the computed image digest) by a key whose
    # digest is in `trusted`.
    if not block_ok(blk):
        return ST_FORMAT, "no-signature-block: magic, version or CRC wrong"
    if bytes(memoryview(blk)[4:36]) != digest:
        return ST_DIGEST, "digest-mismatch: signature block digest is not the image's"
    if key_digest(blk) not in trusted:
        return ST_TRUST, "untrusted-key: key digest %s not trusted" % key_digest(blk).hex()
    e = struct.unpack_from("<I", blk, 420)[0]
    if e != _E:
        return ST_KEY, "bad-exponent: e=%d, only 65537 accepted" % e
    n = int.from_bytes(bytes(memoryview(blk)[36:420]), "little")
    if n >> 3071 != 1 or not n & 1:
        return ST_KEY, "bad-modulus: not an odd 3072-bit modulus"
    s = int.from_bytes(bytes(memoryview(blk)[_SIG_OFF:_CRC_OFF]), "little")
    if s >= n:
        return ST_SIG, "signature-range: signature >= modulus"
    reason = pss_verify(pow(s, _E, n).to_bytes(_EM_LEN, "big"), digest)
    return (ST_SIG, reason) if reason else (ST_OK, None)


def _mgf1(seed, length):
    # MGF1 with SHA-256 (RFC 8017 B.2.1).
    out = bytearray()
    c = 0
    while len(out) < length:
        out.extend(hashlib.sha256(seed + struct.pack(">I", c)).digest())
        c += 1
    return out[:length]


def pss_verify(em, mhash):
    # EMSA-PSS-VERIFY (RFC 8017 9.1.2) for emBits 3071, SHA-256, MGF1-SHA-256,
    # salt length 32. Returns None if valid, else a reason. Acceptance is the
    # strict RFC check; the extra work only names what is wrong: a garbled or
    # foreign signature decodes to noise that fails several checks and the
    # hash, a crafted one fails exactly the check it was crafted to fail.
    defects = []
    if em[_EM_LEN - 1] != 0xBC:
        defects.append("pss-trailer: last byte 0x%02x, not 0xbc" % em[_EM_LEN - 1])
    if em[0] & 0x80:
        defects.append("pss-leftmost-bits: top bit of the encoding set")
    h = em[_DB_LEN : _DB_LEN + _H_LEN]
    mask = int.from_bytes(_mgf1(h, _DB_LEN), "big")
    db = (int.from_bytes(em[:_DB_LEN], "big") ^ mask).to_bytes(_DB_LEN, "big")
    db = bytearray(db)
    db[0] &= 0x7F
    p = 0
    while p < _DB_LEN and db[p] == 0:
        p += 1
    salt_at = _DB_LEN - _S_LEN
    if p < _DB_LEN and db[p] == 1 and p != _SEP:
        defects.append("pss-salt-length: salt of %d bytes, 32 required" % (_DB_LEN - 1 - p))
        salt_at = p + 1
    elif p != _SEP or db[p] != 1:
        if p == _SEP:
            defects.append("pss-separator: 0x%02x where 0x01 belongs" % db[p])
        else:
            defects.append("pss-padding: nonzero byte in the zero padding")
    hh = hashlib.sha256(b"\x00" * 8)
    hh.update(mhash)
    hh.update(db[salt_at:])
    hash_ok = hh.digest() == h
    if not defects:
        return None if hash_ok else "pss-hash: well-formed signature over other data"
    if not hash_ok:
        return "bad-signature: not made by this key over this image"
    return defects[0]
