# Streaming parser of ESP-IDF application images, in constant memory.
#
# Layout (ESP-IDF esp_image_format.h; esptool's bin_image.py is the oracle in
# host_tests/ota): a 24-byte header {u8 magic 0xE9, u8 segment count, u8 flash
# mode, u8 size/freq, u32 entry, u8 wp_pin, 3 drive bytes, u16 chip_id,
# u8 min_rev, u16 min_rev_full, u16 max_rev_full, 4 reserved,
# u8 hash_appended}; then each segment {u32 load_addr, u32 len} + data; then
# 0..15 pad bytes and the checksum byte (XOR of all segment data, seeded
# 0xEF) so that the checksum ends the 16-byte-aligned stream; then, if
# hash_appended, the SHA-256 of everything before it. esp_app_desc_t is the
# first 256 bytes of the first segment (where ESP-IDF's
# esp_ota_get_partition_description reads it: image offset 32).
# Board tag: the last 32 bytes of esp_app_desc_t's reserv2 (desc offset 224,
# which ESP-IDF and MicroPython builds leave zero) hold b"IHDB" and the board
# name (NUL-padded, up to 27 bytes); ihd ota sign writes it before
# signing, so the signature covers it.
#
# feed() takes the bytes as they arrive and returns how many belonged to
# the image; bytes after `end` (padding, signature sector) are not its.
import hashlib
import struct

import micropython
from micropython import const

MAGIC = const(0xE9)
DESC_MAGIC = const(0xABCD5432)
MAX_SEGMENTS = const(16)
_HDR = const(24)
_DESC = const(256)
BOARD_TAG = b"IHDB"
BOARD_OFF = const(224)  # in esp_app_desc_t: magic, then the name to 256

_S_HEADER = const(0)
_S_SEGHDR = const(1)
_S_SEGDATA = const(2)
_S_CHECKSUM = const(3)
_S_HASH = const(4)
_S_DONE = const(5)


class ImageError(Exception):
    # args[0] is the reason: "<code>: <detail>".
    pass


@micropython.viper
def _xor(buf, n: int, c: int) -> int:
    # Checksum of segment data: 1.5 MB in a few ms, no allocation.
    p = ptr8(buf)  # noqa: F821 (viper built-in)
    for i in range(n):
        c ^= p[i]
    return c


@micropython.viper
def all_ff(buf, n: int) -> bool:
    # Erased-flash padding check without allocating.
    p = ptr8(buf)  # noqa: F821 (viper built-in)
    for i in range(n):
        if p[i] != 0xFF:
            return False
    return True


def _cstr(b):
    # NUL-terminated fixed-size field -> str.
    i = b.find(b"\x00")
    try:
        return str(b if i < 0 else b[:i], "utf-8")
    except UnicodeError:
        raise ImageError("no-app-desc: version or project name is not UTF-8")


class AppImage:
    def __init__(self, limit):
        self.limit = limit  # largest acceptable image (the partition size)
        self.pos = 0  # bytes consumed
        self.end = None  # image length incl. appended hash, once known
        self.chip_id = None
        self.segments = 0
        self.version = None
        self.project = None
        self.secure_version = None
        self.board = None  # board tag, None when the image names none
        self._state = _S_HEADER
        self._buf = bytearray(_HDR)
        self._have = 0
        self._need = _HDR
        self._seg = 0
        self._left = 0
        self._desc = bytearray(_DESC)
        self._desc_have = -1  # -1: first segment not reached yet
        self._ck = 0xEF
        self._sha = hashlib.sha256()
        self._final = None

    def done(self):
        return self._state == _S_DONE

    def desc_ready(self):
        return self.secure_version is not None

    def feed(self, mv):
        # mv: memoryview of new bytes. Returns how many were image bytes.
        n = len(mv)
        i = 0
        while i < n and self._state != _S_DONE:
            if self._state == _S_SEGDATA:
                k = min(self._left, n - i)
                chunk = mv[i : i + k]
                self._ck = _xor(chunk, k, self._ck)
                if 0 <= self._desc_have < _DESC:
                    d = min(k, _DESC - self._desc_have)
                    self._desc[self._desc_have : self._desc_have + d] = chunk[:d]
                    self._desc_have += d
                    if self._desc_have == _DESC:
                        self._parse_desc()
                self._sha.update(chunk)
                self._left -= k
                i += k
                self.pos += k
                if self._left == 0:
                    self._end_segment()
                continue
            k = min(self._need - self._have, n - i)
            self._buf[self._have : self._have + k] = mv[i : i + k]
            if self._state != _S_HASH:
                self._sha.update(mv[i : i + k])
            self._have += k
            i += k
            self.pos += k
            if self._have == self._need:
                self._field()
        if self.pos > self.limit:
            raise ImageError("too-large: image exceeds the %d-byte partition" % self.limit)
        return i

    def _collect(self, state, need):
        self._state = state
        self._need = need
        self._have = 0
        if need > len(self._buf):
            self._buf = bytearray(need)

    def _field(self):
        b = self._buf
        st = self._state
        if st == _S_HEADER:
            if b[0] != MAGIC:
                raise ImageError("bad-magic: 0x%02x is not an app image" % b[0])
            self.segments = b[1]
            if not 1 <= self.segments <= MAX_SEGMENTS:
                raise ImageError("bad-segments: %d segments" % self.segments)
            self.chip_id = struct.unpack_from("<H", b, 12)[0]
            if b[23] != 1:
                raise ImageError("no-image-hash: image has no appended SHA-256")
            self._collect(_S_SEGHDR, 8)
        elif st == _S_SEGHDR:
            self._left = struct.unpack_from("<I", b, 4)[0]
            if self._left & 3 or self._left > self.limit:
                raise ImageError("bad-segment: segment %d length %d" % (self._seg, self._left))
            if self._seg == 0:
                if self._left < _DESC:
                    raise ImageError("no-app-desc: first segment too short")
                self._desc_have = 0
            self._state = _S_SEGDATA
            if self._left == 0:
                self._end_segment()
        elif st == _S_CHECKSUM:
            if b[self._need - 1] != self._ck:
                raise ImageError("checksum: image checksum 0x%02x, computed 0x%02x" % (b[self._need - 1], self._ck))
            self.end = self.pos + 32
            self._final = self._sha.digest()
            self._collect(_S_HASH, 32)
        elif st == _S_HASH:
            if bytes(b[:32]) != self._final:
                raise ImageError("image-hash: appended SHA-256 does not match the image")
            self._state = _S_DONE

    def _end_segment(self):
        self._seg += 1
        if self._seg < self.segments:
            self._collect(_S_SEGHDR, 8)
        else:
            # Pad so that the checksum byte is the last of a 16-byte unit.
            self._collect(_S_CHECKSUM, 16 - self.pos % 16)

    def _parse_desc(self):
        d = self._desc
        if struct.unpack_from("<I", d, 0)[0] != DESC_MAGIC:
            raise ImageError("no-app-desc: esp_app_desc_t magic missing")
        self.secure_version = struct.unpack_from("<I", d, 4)[0]
        self.version = _cstr(bytes(d[16:48]))
        self.project = _cstr(bytes(d[48:80]))
        if d[BOARD_OFF : BOARD_OFF + 4] == BOARD_TAG:
            self.board = _cstr(bytes(d[BOARD_OFF + 4 : _DESC]))
