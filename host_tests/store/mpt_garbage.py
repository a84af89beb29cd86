# Garbage and damage at boot, in the spirit of ESP-IDF NVS's randomize
# test: random bytes, random mixes of valid and broken structures, bit rot
# in a live log. The store must boot without crashing, never return a
# reading that differs from what was written (gen(seq)), report damage,
# and keep working: new readings survive the next reboot.
import gc

from storetest import Clock, Lcg, check_log, flash, gen, remove, tmpdir

import faults
from store import Store

HEAP = "128k"
NSECT = 6
SECT = 4096


def _raw(path):
    # the emulated chip file, for writing garbage underneath the store
    return open(path, "r+b")


def _open(path):
    gc.collect()
    f, part = flash(path, NSECT)
    return f, Store(part, clock=Clock(), ram_size=200)


def _check_any(st):
    # Whatever survived must be correct and in order (gaps allowed).
    prev = 0
    n = 0
    for r in st.readings_from(0):
        assert r[0] > prev, "out of order: %d after %d" % (r[0], prev)
        assert r[1:] == gen(r[0]), "wrong reading %r" % (r,)
        prev = r[0]
        n += 1
    return n


def _still_works(path, f, st):
    base = st.seq
    for i in range(300):
        st.append(*gen(st.seq + 1))
        if i % 100 == 99:
            st.flush()
    st.set_cursor("uploaded", st.seq - 5)
    st.flush()
    top = st.seq
    f.close()
    f, st = _open(path)
    assert st.seq == top and st.cursor("uploaded") == top - 5, (st.seq, top, st.cursor("uploaded"), st.log.hnames)
    want = base + 1
    for r in st.readings_from(base + 1):
        assert r[0] == want, "new reading %d lost after garbage (got %d)" % (want, r[0])
        want += 1
    assert want == top + 1, "new readings lost after garbage"
    assert st.stats()["health"] != "failing"
    _check_any(st)
    f.close()


def _real_log(path, n=3000):
    remove(path)
    f, st = _open(path)
    for _ in range(n):
        st.append(*gen(st.seq + 1))
        if st.seq % 90 == 0:
            st.set_cursor("uploaded", st.seq - 20)
            st.flush()
    st.flush()
    f.close()


def test_random_bytes_format_cleanly():
    path = tmpdir() + "/rand.bin"
    rng = Lcg(99)
    chunk = bytearray(256)
    for seed in range(12):
        remove(path)
        f, _ = flash(path, NSECT)
        f.close()
        raw = _raw(path)
        fill = seed % 4  # 0: random, 1: zeros, 2: random with blank gaps, 3: 0x55 pattern + random
        for off in range(0, NSECT * SECT, 256):
            for i in range(256):
                if fill == 1:
                    chunk[i] = 0
                elif fill == 3 and i & 1:
                    chunk[i] = 0x55
                else:
                    chunk[i] = rng.next(256)
            if fill == 2 and (off // 256) % 3 == 0:
                chunk[:] = b"\xff" * 256
            raw.seek(off)
            raw.write(chunk)
        raw.close()
        f, st = _open(path)
        assert _check_any(st) == 0
        s = st.stats()
        assert s["health"] == "ok" and s["newest_seq"] is None, s
        _still_works(path, f, st)


def test_partial_valid_structures_never_give_wrong_readings():
    # A real log, then each sector independently: kept, replaced by random
    # bytes, header kept with a random body, body kept with a random header,
    # bits flipped, tail wiped, zeroed from a point, or copied over from
    # another sector (duplicate sector sequence numbers).
    path = tmpdir() + "/mix.bin"
    rng = Lcg(4242)
    buf = bytearray(SECT)
    other = bytearray(SECT)
    for seed in range(30):
        _real_log(path, 2000 + 300 * (seed % 5))
        raw = _raw(path)
        for s in range(NSECT):
            how = rng.next(9)
            raw.seek(s * SECT)
            raw.readinto(buf)
            if how == 1:
                for i in range(SECT):
                    buf[i] = rng.next(256)
            elif how == 2:
                for i in range(64, SECT):
                    buf[i] = rng.next(256)
            elif how == 3:
                for i in range(0, 60):
                    buf[i] = rng.next(256)
            elif how == 4:
                for _ in range(1 + rng.next(8)):
                    buf[rng.next(SECT)] ^= 1 << rng.next(8)
            elif how == 5:
                cut = rng.next(SECT)
                buf[cut:] = b"\xff" * (SECT - cut)
            elif how == 6:
                cut = rng.next(SECT)
                buf[cut:] = bytes(SECT - cut)
            elif how == 7:
                raw.seek(rng.next(NSECT) * SECT)
                raw.readinto(other)
                buf[:] = other
            raw.seek(s * SECT)
            raw.write(buf)
        raw.close()
        f, st = _open(path)
        _check_any(st)
        assert st.seq >= st.cursor("uploaded")
        _still_works(path, f, st)


def test_bit_rot_in_a_middle_sector_is_quarantined_and_reported():
    path = tmpdir() + "/rot.bin"
    _real_log(path, 4000)
    f, st = _open(path)
    live = list(st.log.live)
    top = st.seq
    victim = live[1]
    # flip one bit in the middle of the sector's records
    off = victim * SECT + (st.log.start[victim] + st.log.end[victim]) // 2
    lost_from = st.log.first[victim]
    f.close()
    raw = _raw(path)
    raw.seek(off)
    b = raw.read(1)
    raw.seek(off)
    raw.write(bytes([b[0] ^ 0x10]))
    raw.close()
    f, st = _open(path)
    s = st.stats()
    assert s["corrupt_records"] == 1 and s["quarantined"] == 1, s
    assert s["health"] == "degraded" and faults.STORE_CORRUPT in s["faults"], s
    n = _check_any(st)
    # only part of that one sector is lost; everything else is there
    # (counted, not listed: a list of every lost seq needs one large block
    # of a heap this test keeps near its cap)
    nlost, lo, hi = 0, None, None
    for q in range(st.oldest_seq(), top + 1):
        if st.get(q)[0] != q:
            nlost += 1
            lo = q if lo is None else lo
            hi = q
    assert nlost and lo > lost_from and hi < st.log.first[live[2]], (lost_from, lo, hi)
    assert n + nlost == top - st.oldest_seq() + 1
    # the ring comes round, erases and re-uses the damaged sector
    for _ in range(30000):
        st.append(*gen(st.seq + 1))
        if st.seq % 150 == 0:
            st.flush()
    st.flush()
    assert st.stats()["quarantined"] == 0
    f.close()
    f, st = _open(path)
    s = st.stats()
    assert s["quarantined"] == 0 and s["corrupt_records"] == 0 and s["health"] == "ok", s
    check_log(st, st.seq, None, st.seq)


def test_damage_found_while_reading_is_reported():
    path = tmpdir() + "/late.bin"
    _real_log(path, 3000)
    f, st = _open(path)
    victim = st.log.live[0]
    off = victim * SECT + st.log.start[victim] + 30
    raw = _raw(path)  # rot appears while the store is running
    raw.seek(off)
    b = raw.read(1)
    raw.seek(off)
    raw.write(bytes([b[0] ^ 0x01]))
    raw.close()
    assert _check_any(st) > 0
    s = st.stats()
    assert s["corrupt_records"] == 1 and s["quarantined"] == 1, s


def test_crafted_header_with_absurd_sequence_is_erased():
    # A header with a valid CRC but a sector sequence no real log reaches
    # would outrank every new sector at every boot: it is erased at once.
    from store import codec
    from store.layout import pack_header

    path = tmpdir() + "/absurd.bin"
    _real_log(path, 1500)
    f, st = _open(path)
    top = st.seq
    spare = [s for s in range(NSECT) if s not in st.log.live][0]
    f.close()
    b = bytearray(256)
    hlen = pack_header(b, 0x7FFFFFF0, 5, codec.new_state(), {"uploaded": 0x7FFFFF00})
    raw = _raw(path)
    raw.seek(spare * SECT)
    raw.write(b"\xff" * SECT)
    raw.seek(spare * SECT)
    raw.write(b[:hlen])
    raw.close()
    f, st = _open(path)
    assert spare not in st.log.live
    assert st.seq == top  # neither its first_seq nor its cursor count
    check_log(st, top, None, top)
    _still_works(path, f, st)
    f, st = _open(path)
    assert st.log.top < 0x40000000


def test_a_damaged_header_in_the_middle_of_the_log_is_reported():
    # A sector whose header no longer checks drops out of the chain with all
    # its readings. Before: nothing said so (corrupt_records 0, health ok,
    # no S01) while a sector's worth of readings had gone.
    path = tmpdir() + "/hdr.bin"
    _real_log(path, 4000)
    f, st = _open(path)
    live = list(st.log.live)
    victim = live[1]
    gone_from, gone_n = st.log.first[victim], st.log.cnt[victim]
    f.close()
    raw = _raw(path)
    raw.seek(victim * SECT + 9)  # inside the header: its check fails
    b = raw.read(1)
    raw.seek(victim * SECT + 9)
    raw.write(bytes([b[0] ^ 0x01]))
    raw.close()
    f, st = _open(path)
    s = st.stats()
    assert victim not in st.log.live and gone_n > 0
    assert s["corrupt_records"] == 1 and s["health"] == "degraded", s
    assert faults.STORE_CORRUPT in s["faults"], s
    assert st.get(gone_from)[0] != gone_from  # really gone, not silently kept
    _check_any(st)
    _still_works(path, f, st)
