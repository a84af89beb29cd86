# On-flash layout of the store partition (docs/store.md is the reference):
# constants, sector header and cursor-list packing and checking.
#
# Sector header, at offset 0 of every live sector, little-endian:
#   magic "IHDL", ver u8, hlen u8, ncur u8, 0xFF, sector_seq u32,
#   first_seq u32, base reading (utc u32, demand i32, delivered u32,
#   received u32, dt i32, flags u8), ncur x cursor, crc32 u32 of the rest.
#   utc is Unix seconds on flash; in RAM (codec state, RAM ring) the store
#   keeps device seconds (meter/reading.py), converted here at the only
#   absolute time on flash (record readings are deltas, epoch-free).
# A cursor entry (header snapshot and cursor records alike):
#   name_len u8 (1..16), name (UTF-8), value u32.
# Records follow the header: type u8, len u16, aux u8, payload, crc32 u32
# (seeded with sector_seq). Types:
#   0x52 readings: aux coded readings (codec.py);
#   0x53 readings + cursors: aux coded readings, then cursor entries
#        [index u8 into the header's cursor list, zigzag varint value -
#        first_seq] up to the end (aux may be 0: cursors only);
#   0x43 cursors by name: aux entries as in the header (for a cursor the
#        header does not list yet);
#   0x00 seal (nothing more in this sector); 0xFF free space.
import binascii
import struct

from micropython import const

from store import codec
from store.codec import DEV_EPOCH

SECTOR = const(4096)
REC_MAX = const(480)  # payload bytes per record
RH = const(4)  # record header: type, len16, aux
RT = const(4)  # record trailer: crc32
T_READ = const(0x52)
T_READC = const(0x53)
T_CUR = const(0x43)
T_SEAL = const(0x00)
MAX_CURSORS = const(8)
MAX_NAME = const(16)
HDR_MAX = const(256)

# sector states
UNKNOWN = const(0)  # not in the log, contents unknown: erase before use
BLANK = const(1)  # verified erased, ready to take a header
LIVE = const(2)
RETIRED = const(3)  # erase or program did not verify: out of service

_HFMT = "<4sBBBBIIIiIIiB"  # magic ver hlen ncur rsv sseq first utc dem dl rc dt flags
_HFIX = const(37)
_MAGIC = b"IHDL"
_VER = const(1)
LIMIT = const(0x7FFFFFFF)  # sector and reading seqs stay below this
ABSURD = const(0x40000000)  # no real log reaches this: garbage


def pack_cursors(b, p, cursors):
    # -> position after the entries
    for name in cursors:
        nb = name.encode()
        b[p] = len(nb)
        b[p + 1 : p + 1 + len(nb)] = nb
        struct.pack_into("<I", b, p + 1 + len(nb), cursors[name])
        p += 1 + len(nb) + 4
    return p


def parse_cursors(b, p, end, count, out, names=None):
    # Entries at b[p:end] into the dict out (and their names, in order, into
    # the list names); False if malformed.
    try:
        for _ in range(count):
            nl = b[p]
            if nl == 0 or nl > MAX_NAME or p + 1 + nl + 4 > end:
                return False
            name = bytes(b[p + 1 : p + 1 + nl]).decode()
            out[name] = struct.unpack_from("<I", b, p + 1 + nl)[0]
            if names is not None:
                names.append(name)
            p += 1 + nl + 4
    except (UnicodeError, ValueError):
        return False
    return p == end


def pack_header(b, sseq, first, st, cursors):
    # -> header length. st: codec state of the reading before the sector.
    p = pack_cursors(b, _HFIX, cursors)
    struct.pack_into(
        _HFMT,
        b,
        0,
        _MAGIC,
        _VER,
        p + 4,
        len(cursors),
        0xFF,
        sseq,
        first,
        st[0] + DEV_EPOCH,
        st[1],
        st[2],
        st[3],
        st[5],
        st[4],
    )
    struct.pack_into("<I", b, p, binascii.crc32(memoryview(b)[:p]))
    return p + 4


def parse_header(b, st=None, cursors=None, names=None):
    # -> (sector_seq, first_seq, base_t, base_delivered, hlen) or None;
    # base_t in device seconds.
    # Fills st (codec state), cursors and names (header order) when given.
    hlen = b[5]
    if b[0] != 0x49 or b[1] != 0x48 or b[2] != 0x44 or b[3] != 0x4C or b[4] != _VER or hlen < _HFIX + 4:
        return None
    if binascii.crc32(memoryview(b)[: hlen - 4]) != struct.unpack_from("<I", b, hlen - 4)[0]:
        return None
    f = struct.unpack_from(_HFMT, b, 0)
    if not 0 < f[5] < LIMIT or not 0 < f[6] < LIMIT or f[3] > MAX_CURSORS:
        return None
    got = {}
    order = []
    if not parse_cursors(b, _HFIX, hlen - 4, f[3], got, order):
        return None
    if cursors is not None:
        cursors.update(got)
    if names is not None:
        names[:] = order
    t = f[7] - DEV_EPOCH
    if st is not None:
        codec.set_state(st, t, f[8], f[9], f[10], f[12], f[11])
    return (f[5], f[6], t, f[9], hlen)


def record_ok(b, ln, seed):
    return binascii.crc32(memoryview(b)[: RH + ln], seed) == struct.unpack_from("<I", b, RH + ln)[0]


def pack_trailer(b, p, limit, cursors, names, first):
    # Cursor entries by header index after p; -> new position, or -1 if a
    # cursor is not in the header list or the entries pass limit.
    for name in cursors:
        if name not in names or p + 6 > limit:
            return -1
        b[p] = names.index(name)
        p = codec.putz(b, p + 1, cursors[name] - first)
    return p


def parse_trailer(b, p, end, names, first, out):
    # Entries from pack_trailer into the dict out; False if malformed.
    st = codec.new_state()
    while p < end:
        i = b[p]
        if i >= len(names):
            return False
        st[6] = p + 1
        try:
            v = first + codec.getz(b, st, end)
        except codec.CodecError:
            return False
        if not 0 <= v <= LIMIT:
            return False
        out[names[i]] = v
        p = st[6]
    return True
