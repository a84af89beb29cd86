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
# also pins rinv, which _rsa_public uses as R^2 mod n (m' is recomputed).
#
# Every rejection has its own short code (first word of the reason), so the
# cloud, tests and support can tell a flipped byte from a forged encoding.
import binascii
import hashlib
import struct

import micropython
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
    # digest is in `trusted`. blk of BUF_SIZE bytes carries the RSA
    # workspace after the block (the OTA arena's); a bare block gets one.
    if not block_ok(blk):
        return ST_FORMAT, "no-signature-block: magic, version or CRC wrong"
    if bytes(memoryview(blk)[4:36]) != digest:
        return ST_DIGEST, "digest-mismatch: signature block digest is not the image's"
    if key_digest(blk) not in trusted:
        return ST_TRUST, "untrusted-key: key digest %s not trusted" % key_digest(blk).hex()
    e = struct.unpack_from("<I", blk, 420)[0]
    if e != _E:
        return ST_KEY, "bad-exponent: e=%d, only 65537 accepted" % e
    # little-endian byte strings: n's top bit is bit 7 of its last byte
    if blk[_KEY_OFF + _EM_LEN - 1] & 0x80 == 0 or not blk[_KEY_OFF] & 1:
        return ST_KEY, "bad-modulus: not an odd 3072-bit modulus"
    if not _below(blk, _SIG_OFF, _KEY_OFF):
        return ST_SIG, "signature-range: signature >= modulus"
    w = memoryview(blk)[BLOCK_SIZE:BUF_SIZE] if len(blk) >= BUF_SIZE else memoryview(bytearray(_WORK))
    em = _rsa_public(blk, w)
    reason = pss_verify(em, digest)
    return (ST_SIG, reason) if reason else (ST_OK, None)


def _below(blk, a, b):
    # little-endian _EM_LEN-byte integers at blk[a:], blk[b:]: a < b?
    for i in range(_EM_LEN - 1, -1, -1):
        x, y = blk[a + i], blk[b + i]
        if x != y:
            return x < y
    return False


# RSA public operation s^65537 mod n without big ints: Montgomery products
# of 16-bit limbs (viper) in a fixed workspace. MicroPython's pow() on
# 3072-bit ints needs several 768-byte blocks at once; in a ~96 KB heap
# during an update only 368-byte holes were left (MemoryError at 7.6 KB
# free). Workspace: X (192 limbs), T (194 limbs + spare).
_LIMBS = const(192)
_T_OFF = const(384)
_WORK = const(784)
BUF_SIZE = const(2000)  # BLOCK_SIZE + _WORK: block buffer with workspace


@micropython.viper
def _mont(t, a, b, n, ninv: uint):  # noqa: F821 (viper uint)
    # t[0:192] = a * b / 2^3072 mod n (CIOS); a, b < n; t is neither.
    T = ptr16(t)  # noqa: F821 (viper built-in)
    A = ptr16(a)  # noqa: F821
    B = ptr16(b)  # noqa: F821
    N = ptr16(n)  # noqa: F821
    s = int(_LIMBS)
    k = 0
    while k < s + 2:
        T[k] = 0
        k += 1
    m16 = uint(0xFFFF)  # noqa: F821 (viper uint)
    i = 0
    while i < s:
        bi = uint(B[i])  # noqa: F821 (viper uint)
        c = uint(0)  # noqa: F821 (viper uint)
        j = 0
        while j < s:
            v = uint(T[j]) + uint(A[j]) * bi + c  # noqa: F821 (viper) < 2^32: no overflow
            T[j] = v
            c = v >> 16
            j += 1
        v = uint(T[s]) + c  # noqa: F821 (viper uint)
        T[s] = v
        T[s + 1] = v >> 16
        m = (uint(T[0]) * ninv) & m16  # noqa: F821 (viper uint)
        c = (uint(T[0]) + m * uint(N[0])) >> 16  # noqa: F821 (viper uint)
        j = 1
        while j < s:
            v = uint(T[j]) + m * uint(N[j]) + c  # noqa: F821 (viper uint)
            T[j - 1] = v
            c = v >> 16
            j += 1
        v = uint(T[s]) + c  # noqa: F821 (viper uint)
        T[s - 1] = v
        T[s] = uint(T[s + 1]) + (v >> 16)  # noqa: F821 (viper uint)
        i += 1
    # T < 2n: subtract n once when T >= n
    ge = 1
    if T[s] == 0:
        j = s - 1
        while j >= 0:
            if T[j] != N[j]:
                ge = 1 if T[j] > N[j] else 0
                break
            j -= 1
    if ge:
        bw = 0
        j = 0
        while j < s:
            d = int(T[j]) - int(N[j]) - bw
            T[j] = d
            bw = 1 if d < 0 else 0
            j += 1
        T[s] = 0


def _rsa_public(blk, w):
    # -> memoryview of w: s^65537 mod n as _EM_LEN big-endian bytes. n, s
    # and rinv (2^6144 mod n, pinned by the key digest) are read in place.
    mv = memoryview(blk)
    n = mv[_KEY_OFF : _KEY_OFF + _EM_LEN]
    r2 = mv[424:808]
    sig = mv[_SIG_OFF:_CRC_OFF]
    x, t = w[:_T_OFF], w[_T_OFF:]
    n0 = blk[_KEY_OFF] | blk[_KEY_OFF + 1] << 8
    inv = n0  # n0^-1 mod 2^16 by Newton (n0 odd): 1 -> 2 -> 4 -> 8 -> 16 bits
    for _ in range(4):
        inv = inv * (2 - n0 * inv) & 0xFFFF
    ninv = -inv & 0xFFFF
    _mont(t, sig, r2, n, ninv)  # s * 2^3072 mod n
    x[:] = t[:_T_OFF]
    for _ in range(16):  # ^ 2^16
        _mont(t, x, x, n, ninv)
        x[:] = t[:_T_OFF]
    _mont(t, x, sig, n, ninv)  # * s, out of Montgomery form: s^65537 mod n
    for i in range(_EM_LEN):
        x[i] = t[_EM_LEN - 1 - i]
    return x


def pss_verify(em, mhash):
    # EMSA-PSS-VERIFY (RFC 8017 9.1.2) for emBits 3071, SHA-256, MGF1-SHA-256,
    # salt length 32. Returns None if valid, else a reason. Acceptance is the
    # strict RFC check; the extra work only names what is wrong: a garbled or
    # foreign signature decodes to noise that fails several checks and the
    # hash, a crafted one fails exactly the check it was crafted to fail.
    # em (a bytearray or memoryview) is unmasked in place: DB = em[:351].
    defects = []
    if em[_EM_LEN - 1] != 0xBC:
        defects.append("pss-trailer: last byte 0x%02x, not 0xbc" % em[_EM_LEN - 1])
    if em[0] & 0x80:
        defects.append("pss-leftmost-bits: top bit of the encoding set")
    h = bytes(em[_DB_LEN : _DB_LEN + _H_LEN])
    # MGF1-SHA-256 (RFC 8017 B.2.1), 32 bytes at a time, xored into em
    o = c = 0
    while o < _DB_LEN:
        m = hashlib.sha256(h + struct.pack(">I", c)).digest()
        for i in range(min(_H_LEN, _DB_LEN - o)):
            em[o + i] ^= m[i]
        o += _H_LEN
        c += 1
    db = em
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
    hh.update(memoryview(db)[salt_at:_DB_LEN])
    hash_ok = hh.digest() == h
    if not defects:
        return None if hash_ok else "pss-hash: well-formed signature over other data"
    if not hash_ok:
        return "bad-signature: not made by this key over this image"
    return defects[0]
