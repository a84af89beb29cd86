"""The flash format of docs/store.md, read back by an independent decoder.

MicroPython writes a log (several sectors, wrapped, cursors by header index
and by name, a torn tail sealed at a reboot) and prints every reading it
appended. This CPython decoder, written from docs/store.md alone with
zlib's CRC-32, must find exactly those readings, in order, and the cursors.
"""

import struct
import zlib

SECTOR = 4096
NSECT = 6

WRITER = r"""
import sys
from storetest import Clock, flash, gen, remove
from hal.norflash import PowerCut
from store import Store

path = sys.argv[1]
remove(path)
f, part = flash(path, %(n)d)
st = Store(part, clock=Clock(), ram_size=300)
for i in range(9000):
    r = gen(st.seq + 1)
    s = st.append(*r)
    print("R", s, *r)
    if s %% 97 == 0:
        st.set_cursor("uploaded", s - 40)
    if s %% 1000 == 0:
        st.set_cursor("display", s - 7)  # a new name: goes out by name first
    if s %% 120 == 0:
        st.flush()
st.flush()
# a torn record, then a reboot that seals it and writes on
f.close()
f, part = flash(path, %(n)d, cut=0, torn=5)
st = Store(part, clock=Clock(), ram_size=300)
for i in range(50):
    st.append(*gen(st.seq + 1))
try:
    st.flush()
    raise SystemExit("no power cut")
except PowerCut:
    pass
f.close()
f, part = flash(path, %(n)d)
st = Store(part, clock=Clock(), ram_size=300)
assert st.stats()["corrupt_records"] == 0
for i in range(100):
    r = gen(st.seq + 1)
    print("R", st.append(*r), *r)
st.flush()
print("C uploaded", st.cursor("uploaded"))
print("C display", st.cursor("display"))
"""


DEV_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z, from docs/store.md


def unzigzag(v):
    return v >> 1 if not v & 1 else -((v + 1) >> 1)


def varint(b, p):
    v = sh = 0
    while True:
        x = b[p]
        p += 1
        v |= (x & 0x7F) << sh
        if x < 0x80:
            return v, p
        sh += 7


def decode_reading(b, p, st):
    tag = b[p]
    p += 1
    assert not tag & 0x80
    utc, dem, dl, rc, fl, dt = st
    if tag & 4:
        d, p = varint(b, p)
        dt += unzigzag(d)
    k = tag & 3
    if k == 3:
        k, p = varint(b, p)
        k = unzigzag(k)
    dl += k
    if tag & 8:
        d, p = varint(b, p)
        rc += unzigzag(d)
    if tag & 16:
        fl = b[p]
        p += 1
    k = (tag >> 5) & 3
    if k == 1:
        dem += struct.unpack_from("<b", b, p)[0]
        p += 1
    elif k == 2:
        dem += struct.unpack_from("<h", b, p)[0]
        p += 2
    elif k == 3:
        d, p = varint(b, p)
        dem += unzigzag(d)
    return p, [utc + dt, dem, dl, rc, fl, dt]


def parse_image(img):
    sectors = []
    for s in range(len(img) // SECTOR):
        b = img[s * SECTOR : (s + 1) * SECTOR]
        if b[:4] != b"IHDL" or b[4] != 1:
            continue
        hlen, ncur = b[5], b[6]
        if zlib.crc32(b[: hlen - 4]) != struct.unpack_from("<I", b, hlen - 4)[0]:
            continue
        sseq, first, utc, dem, dl, rc, dt, fl = struct.unpack_from("<IIIiIIiB", b, 8)
        names, cur, p = [], {}, 37
        for _ in range(ncur):
            n = b[p]
            name = b[p + 1 : p + 1 + n].decode()
            names.append(name)
            cur[name] = struct.unpack_from("<I", b, p + 1 + n)[0]
            p += 1 + n + 4
        sectors.append((sseq, s, first, [utc, dem, dl, rc, fl, dt], names, cur, b, hlen))
    sectors.sort()
    readings, cursors, seals = {}, {}, 0
    for sseq, _s, first, st, names, cur, b, off in sectors:
        cursors.update(cur)
        seq = first
        while off + 8 <= SECTOR and b[off] not in (0xFF, 0x00):
            t, ln, aux = b[off], struct.unpack_from("<H", b, off + 1)[0], b[off + 3]
            rec = b[off : off + 4 + ln]
            assert zlib.crc32(rec, sseq) == struct.unpack_from("<I", b, off + 4 + ln)[0], (sseq, off)
            p = 4
            if t in (0x52, 0x53):
                for _ in range(aux):
                    p, st = decode_reading(rec, p, st)
                    readings[seq] = tuple(st[:5])
                    seq += 1
            if t == 0x53:
                while p < len(rec):
                    i = rec[p]
                    v, p = varint(rec, p + 1)
                    cursors[names[i]] = first + unzigzag(v)
            elif t == 0x43:
                p = 4
                for _ in range(aux):
                    n = rec[p]
                    cursors[rec[p + 1 : p + 1 + n].decode()] = struct.unpack_from("<I", rec, p + 1 + n)[0]
                    p += 1 + n + 4
            else:
                assert p == len(rec) or t == 0x53
            off += 4 + ln + 4
        if off + 8 <= SECTOR and b[off] == 0x00:
            seals += 1
    return readings, cursors, sectors, seals


def test_flash_image_matches_docs(mpy, tmp_path):
    img_path = tmp_path / "fmt.bin"
    out = mpy.run(WRITER % {"n": NSECT}, args=(img_path,), heap="256k", env={"MICROPYPATH": _path()}).stdout
    appended, want_cur = {}, {}
    for line in out.splitlines():
        f = line.split()
        if f[0] == "R":
            # append() takes device seconds (UTC seconds since 2024-01-01,
            # docs/store.md); the flash format holds Unix seconds
            t, *rest = (int(x) for x in f[2:])
            appended[int(f[1])] = (t + DEV_EPOCH, *rest)
        elif f[0] == "C":
            want_cur[f[1]] = int(f[2])
    readings, cursors, sectors, seals = parse_image(img_path.read_bytes())
    assert len(sectors) >= NSECT - 2
    seqs = sorted(readings)
    assert seqs == list(range(seqs[0], max(appended) + 1)), "not a contiguous run ending at the newest"
    assert len(seqs) > 3000 and seqs[0] > 1  # the ring wrapped
    for s in seqs:
        assert readings[s] == appended[s], s
    assert seals == 1  # the torn record was sealed off
    assert cursors == want_cur


def _path():
    from pathlib import Path

    import mpy as m

    return m.module_path() + ":" + str(Path(__file__).resolve().parent)
