# The history file of meter/history.py (layout: docs/store.md, "History
# file"; here, not in meter/, where nothing but the UART is ever written):
# written whole to a temporary name and renamed (atomic on LittleFS), read
# back with every check that can tell a torn, corrupt or
# foreign file. A module of its own, imported only to read or write the
# file and dropped after: the heap keeps no code for it in between.
import binascii
import os
import struct

from micropython import const

_N = const(29)  # slots: 9 days, 6 weeks, 14 months
# magic 4, version, 9, 6, 14, device u32, day i32, start i32, the zone (tz,
# dst start, dst end, dst shift: i32 each; a boot knows local time before
# the meter is heard), then _N slots and a CRC-32 of all before it
_HEAD = const(36)
_SLOT = const(10)  # own wh i32, cost i32, own days u8, costed days u8
_SIZE = const(330)  # _HEAD + _N * _SLOT + 4
_MAGIC = b"IHDH"


def _crc(b):
    return binascii.crc32(memoryview(b)[: _SIZE - 4]) & 0xFFFFFFFF


def save(h):
    b = bytearray(_SIZE)
    b[0:8] = _MAGIC + bytes((1, 9, 6, 14))
    z = h.zone
    struct.pack_into("<Iiiiiii", b, 8, h.device, h.day, h._start, z.tz, z.dst_start, z.dst_end, z.dst_shift)
    for i in range(_N):
        struct.pack_into("<iiBB", b, _HEAD + i * _SLOT, h.v[i], h.v[_N + i], h.n[i], h.n[_N + i])
    struct.pack_into("<I", b, _SIZE - 4, _crc(b))
    tmp = h.path + ".new"
    try:
        with open(tmp, "wb") as f:
            f.write(b)
        try:
            os.rename(tmp, h.path)  # atomic on LittleFS
        except OSError:
            os.remove(h.path)  # a filesystem that will not rename over a file
            os.rename(tmp, h.path)
        h.writes += 1
    except OSError:
        pass  # no filesystem: this boot's history lives in RAM only


def load(h):
    # Fills h from its file; -> None, or why the file cannot be trusted.
    try:
        with open(h.path, "rb") as f:
            b = f.read(_SIZE + 1)
    except OSError:
        return None  # none yet: a new device
    if len(b) != _SIZE:
        return "history file is %d bytes, not %d (torn or foreign)" % (len(b), _SIZE)
    if b[0:8] != _MAGIC + bytes((1, 9, 6, 14)):
        return "history file of another layout"
    if struct.unpack_from("<I", b, _SIZE - 4)[0] != _crc(b):
        return "history file fails its CRC"
    dev, day, start, tz, a, e, sh = struct.unpack_from("<Iiiiiii", b, 8)
    if dev != h.device:
        return "history file of another device"
    for i in range(_N):
        w, c, n, nc = struct.unpack_from("<iiBB", b, _HEAD + i * _SLOT)
        if w < 0 or c < 0 or nc > n or n > 31:
            return "history file holds impossible values"
    for i in range(_N):
        w, c, n, nc = struct.unpack_from("<iiBB", b, _HEAD + i * _SLOT)
        h.v[i] = w
        h.v[_N + i] = c
        h.n[i] = n
        h.n[_N + i] = nc
    h.day = day
    h._start = start
    if h.zone.source == "utc" and (tz or a >= 0):
        # a zone some source gave (plain UTC, no DST, is what a device
        # with no source writes: adopting it would keep the configuration's
        # offset, next in precedence, from ever applying)
        h.zone.set(tz, a, e, sh, "saved")
    return None
