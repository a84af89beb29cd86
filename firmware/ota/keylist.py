# Signed key lists: the set of trusted OTA key digests, replaced in the
# field by a list signed with a currently trusted key (docs/ota.md).
#
# File, as `ihd ota keylist` writes it (8192 bytes):
#   0     4   b"IHDK"
#   4     u8  format = 1
#   5     u8  n, number of digests (1..3; 0 is refused: no key, no updates)
#   6     2   zero
#   8     u32 version (little-endian); must exceed the stored list's
#   12    32n key digests (as `espsecure digest-sbv2-public-key`)
#   ..4096    0xFF
#   4096  signature sector, exactly as after an app image (ota/verify.py
#         rules): SBV2 blocks over SHA-256 of bytes 0..4095, rest 0xFF
# The magic keeps a signed list and a signed image apart: neither parses as
# the other. KeyListSink checks a download as it streams (constant memory:
# a SHA-256, 108 header bytes, one 1216-byte block) and finish() returns
# (version, digests).
#
# Stored record (load/save), in two copies (<path> and <path>.bak), each
# replaced by writing <name>.new and renaming it over <name> (littlefs
# renames atomically: a torn write leaves the old list):
#   b"IHDK" u8 1, u8 n, 2 zero, u32 version, 32n digests, u32 CRC-32 of all before
import binascii
import hashlib
import os
import struct

from micropython import const

from ota import sbv2
from ota.image import all_ff
from ota.verify import Reject

MAGIC = b"IHDK"
FORMAT = const(1)
MAX_KEYS = const(3)
_HDR = const(12)
_BODY = const(4096)
_SIZE = const(8192)


class KeyListSink:
    # Download sink (ota/http.py Fetcher: write, restart, pos).
    def __init__(self, trusted, version, blk=None):
        self.trusted = trusted  # digests that may sign the new list
        self.version = version  # the stored list's version
        self._hdr = bytearray(_HDR + 32 * MAX_KEYS)
        # blk: the arena's signature block (ota/updater.py carve()), if any
        self._blk = bytearray(sbv2.BUF_SIZE) if blk is None else blk
        self.restart()

    def restart(self):
        self.pos = 0
        self._sha = hashlib.sha256()
        self._digest = None
        self._nblk = 0
        self._end = False  # a slot that is not a block was seen
        self._garbage = False
        self._ok = False
        self._best = None

    def write(self, mv):
        n = len(mv)
        if self.pos + n > _SIZE:
            raise Reject("trailing-data: key list longer than %d bytes" % _SIZE)
        i = 0
        while i < n:
            p = self.pos
            if p < _BODY:
                k = min(n - i, _BODY - p)
                chunk = mv[i : i + k]
                self._sha.update(chunk)
                h = len(self._hdr)
                if p < h:
                    d = min(k, h - p)
                    self._hdr[p : p + d] = chunk[:d]
                    if p + d == h:
                        self._header()
                    if d < k and not all_ff(chunk[d:], k - d):
                        raise Reject("keylist-format: bytes after the digests are not 0xFF")
                elif not all_ff(chunk, k):
                    raise Reject("keylist-format: bytes after the digests are not 0xFF")
                if p + k == _BODY:
                    self._digest = self._sha.digest()
            else:
                k = min(n - i, sbv2.BLOCK_SIZE - (p - _BODY) % sbv2.BLOCK_SIZE)
                q = p - _BODY
                if self._nblk < sbv2.MAX_BLOCKS:
                    o = q % sbv2.BLOCK_SIZE
                    self._blk[o : o + k] = mv[i : i + k]
                    if o + k == sbv2.BLOCK_SIZE:
                        self._block()
                elif not all_ff(mv[i : i + k], k):
                    self._garbage = True
            i += k
            self.pos += k

    def _header(self):
        h = self._hdr
        if bytes(h[:4]) != MAGIC or h[4] != FORMAT:
            raise Reject("keylist-format: not a key list (magic or format)")
        n = h[5]
        if n == 0:
            raise Reject("keylist-empty: a list without keys would end all updates")
        if n > MAX_KEYS:
            raise Reject("keylist-format: %d keys, at most %d" % (n, MAX_KEYS))
        v = struct.unpack_from("<I", h, 8)[0]
        if v <= self.version:
            raise Reject("keylist-rollback: version %d, this device has %d" % (v, self.version))
        # the digest area past n keys is body padding: 0xFF
        if not all_ff(memoryview(h)[_HDR + 32 * n :], 32 * (MAX_KEYS - n)):
            raise Reject("keylist-format: bytes after the digests are not 0xFF")

    def _block(self):
        # Same sector rules as an image's (ota/verify.py Verifier._block).
        blk = self._blk
        self._nblk += 1
        if self._end:
            if not all_ff(blk, sbv2.BLOCK_SIZE):
                self._garbage = True
            return
        if not sbv2.block_ok(blk):
            self._end = True
            if self._nblk > 1 and not all_ff(blk, sbv2.BLOCK_SIZE):
                self._garbage = True
            return
        if not sbv2.zero_pad(blk):
            self._garbage = True
        if self._ok:
            return
        stage, reason = sbv2.check_block(blk, self._digest, self.trusted)
        if stage == sbv2.ST_OK:
            self._ok = True
        elif self._best is None or stage > self._best[0]:
            self._best = (stage, reason)

    def finish(self):
        # -> (version, [digest, ...]) of a list this device may adopt.
        if self.pos < _SIZE:
            raise Reject("truncated: key list of %d bytes, %d expected" % (self.pos, _SIZE))
        if not self._ok and self._best is None:
            raise Reject("no-signature-block: no block with valid magic, version and CRC")
        if self._garbage:
            raise Reject("sig-sector-garbage: signature sector holds bytes that are neither a block nor 0xFF")
        if not self._ok:
            raise Reject(self._best[1])
        h = self._hdr
        n = h[5]
        return struct.unpack_from("<I", h, 8)[0], [bytes(h[_HDR + 32 * i : _HDR + 32 * i + 32]) for i in range(n)]


def default_path():
    import hal

    sd = getattr(hal, "state_dir", None)
    return (sd() if sd else "") + "/otakeys.bin"


def _record(version, digests):
    b = MAGIC + struct.pack("<BBHI", FORMAT, len(digests), 0, version) + b"".join(digests)
    return b + struct.pack("<I", binascii.crc32(b) & 0xFFFFFFFF)


def _read(path):
    try:
        with open(path, "rb") as f:
            b = f.read(_HDR + 32 * MAX_KEYS + 4)
    except OSError:
        return None
    if len(b) < _HDR + 36 or b[:4] != MAGIC or b[4] != FORMAT:
        return None
    n = b[5]
    end = _HDR + 32 * n
    if not 1 <= n <= MAX_KEYS or len(b) != end + 4:
        return None
    if struct.unpack_from("<I", b, end)[0] != binascii.crc32(b[:end]) & 0xFFFFFFFF:
        return None
    return struct.unpack_from("<I", b, 8)[0], [b[_HDR + 32 * i : _HDR + 32 * i + 32] for i in range(n)]


def load(path):
    # -> (version, digests) of the stored list, or None (none, or both
    # copies damaged: the provisioned ota_keys apply). Two copies, because
    # falling back to ota_keys would trust again a key the list withdrew:
    # one damaged copy must not do that. The newer valid copy wins (a power
    # cut between the two writes leaves the new list in the first).
    a = _read(path)
    b = _read(path + ".bak")
    if a and b:
        return a if a[0] >= b[0] else b
    if a or b:
        # one copy damaged or missing: write it again from the good one, so
        # that a second damage later still finds a copy (not the old keys)
        try:
            _store(path + ".bak" if a else path, _record(*(a or b)))
        except OSError:
            pass  # a failing flash: the good copy still serves
    return a or b


def save(path, version, digests):
    # Each copy: write the new record beside the old, then switch by rename.
    if not 1 <= len(digests) <= MAX_KEYS:
        raise ValueError("1 to 3 key digests")
    rec = _record(version, digests)
    _store(path, rec)
    _store(path + ".bak", rec)


def _store(p, rec):
    tmp = p + ".new"
    with open(tmp, "wb") as f:
        f.write(rec)
    os.rename(tmp, p)
