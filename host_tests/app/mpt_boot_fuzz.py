# Boot on damaged state (issue 13, item 6): every file the device persists
# and loads at boot is fuzzed with the real boot-time loader, in one
# MicroPython process per file, with a seeded generator (the same cases on
# every run and runtime):
#   config.json   app/config.py load()          -> a Config or ConfigError (C02)
#   ota.json      app/otalazy.py Ota.after_boot() -> a state; a damaged
#                 record is U03 "record-damaged: ..." and rewritten clean
#   otakeys.bin   ota/keylist.py load()          -> a list or None
#   store         store.Store(part) (flash_log + recover) -> every reading
#                 whose bytes are intact survives, no reading is ever wrong,
#                 S01 when damage was set aside
# Cases per file: CASES (random bytes, truncation, bit flips, wrong types,
# huge sizes). A failure prints the case number and its bytes.
# The uplink's sequence file (uplink_seq) is not fuzzed here: its loader
# (uplink/session.py SeqSource, at 6f329bf) read the whole file (MemoryError
# on a huge one) and took a negative number as is, so it needs a change in
# firmware/uplink/, which the uplink work (issue 13 item 1) owns.
import gc
import json
import os

import faults as F
import hal

HEAP = "512k"  # the wheel compiles this module (and the updater) into the heap
HEAPS = {"test_config_fuzz": "256k"}  # a smaller heap: each case's ballast is cheaper
# What the loaders may use: every 8th config case and 16th OTA record case
# (every huge one among them) runs with all but this much of the heap taken
# (_leave()), so a loader that read a huge file whole, or parsed deep
# nesting, fails with MemoryError. (Every case would double the runtime.)
LEAVE = 24 * 1024
OTA_LEAVE = 32 * 1024  # + the updater's 4 KB arena, its objects, a record
TIMEOUT = 240
CASES = 10_000


class Rng:
    # 31-bit LCG: small ints on a 32-bit port (no long-int allocation)
    def __init__(self, seed):
        self.x = seed & 0x7FFFFFFF

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 7) % n

    def bytes(self, n):
        b = bytearray(n)
        for i in range(n):
            b[i] = self.next(256)
        return b


def _leave(n):
    # -> ballast holding all of the heap but one free block of n bytes
    gc.collect()
    hole = bytearray(n)
    keep = []
    size = 16384
    while size >= 64:
        try:
            while True:
                keep.append(bytearray(size))
        except MemoryError:
            size //= 16
    del hole
    gc.collect()
    return keep


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _write_huge(path, size, fill):
    # a file of `size` bytes written 1 KB at a time (the heap is small)
    chunk = bytes([fill]) * 1024
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(chunk if left >= 1024 else chunk[:left])
            left -= 1024


def _show(data):
    b = bytes(data[:120])
    return "%d bytes %r%s" % (len(data), b, "..." if len(data) > 120 else "")


# JSON values of every type, including the awkward ones
_ODD = (
    "0",
    "-1",
    "4294967296",
    "18446744073709551617",
    "-99999999999999999999999999",
    "1e999",
    "-1e999",
    "1.5",
    "-0",
    "true",
    "false",
    "null",
    '""',
    '"\\u0000"',
    '"\\ud800"',
    '"\\u00e9\\u00e9"',
    '"ota_1"',
    '"booting"',
    '"installing"',
    "[]",
    "[1,2,3]",
    '["a:1"]',
    "{}",
    '{"a":{"b":[]}}',
    '"' + "x" * 300 + '"',
    "9" * 120,
)


def _mutate(rng, good, special):
    # -> bytes: one damaged variant of `good` (bytes of a valid file)
    k = rng.next(10)
    n = len(good)
    if k == 0:  # random bytes
        return rng.bytes(rng.next(n + n // 2 + 1))
    if k == 1:  # truncated
        return good[: rng.next(n)]
    if k == 2:  # bit flips
        b = bytearray(good)
        for _ in range(1 + rng.next(8)):
            i = rng.next(n)
            b[i] ^= 1 << rng.next(8)
        return b
    if k == 3:  # bytes overwritten with structural or non-UTF-8 ones
        b = bytearray(good)
        for _ in range(1 + rng.next(4)):
            b[rng.next(n)] = special[rng.next(len(special))]
        return b
    if k == 4:  # a random slice deleted or duplicated
        i = rng.next(n)
        j = i + rng.next(n - i + 1)
        return good[:i] + good[j:] if rng.next(2) else good[:j] + good[i:]
    if k == 5:  # random bytes spliced in
        i = rng.next(n)
        return good[:i] + rng.bytes(1 + rng.next(16)) + good[i + rng.next(8) :]
    return None  # k >= 6: the caller builds a wrong-types case


_SPECIAL = b'\x00\x80\xbf\xc0\xc3\xe2\xed\xf0\xf8\xfe\xff"\\{}[]:,-.0e9 \n'


# -- config.json ---------------------------------------------------------------

CONFIG = {
    "format": 1,
    "device_id": 4097,
    "key_id": 2,
    "key": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    "endpoints": ["ihd.example.net:4700", "192.0.2.7:4701"],
    "wifi_ssid": "Home",
    "wifi_key": "correct horse",
    "meter_protocol": "ezsp",
    "install_code": "83FED3407A939723A5C639B26916D505C3B5",
    "ota_keys": ["c1856af356633dfd5fcd4e6a3bf9af9e9a38001580664cec026eee25b19f2a2c"],
}


def _nested(rng, budget):
    # a deep or wide JSON text near the size limit
    k = rng.next(6)
    if k == 0:
        d = rng.next(budget // 2)
        return "[" * d + "]" * d
    if k == 1:
        d = rng.next(budget // 6)
        return '{"a":' * d + "1" + "}" * d
    if k == 2:
        return "[" + ",".join(["0"] * rng.next(budget // 2)) + "]"
    if k == 3:
        return '"' + "\\u00e9" * rng.next(budget // 6) + '"'
    if k == 4:
        return "9" * rng.next(budget)
    d = rng.next(budget // 2)
    return "[" * d  # unclosed


def _config_case(rng, good, keys):
    b = _mutate(rng, good, _SPECIAL)
    if b is not None:
        return b
    k = rng.next(4)
    if k < 2:
        # one field's value of the wrong type or value (k 0), or deep /
        # wide / huge (k 1), the other fields valid
        d = dict(CONFIG)
        d[keys[rng.next(len(keys))]] = "\x01"
        v = _ODD[rng.next(len(_ODD))] if k == 0 else _nested(rng, 4200)
        return json.dumps(d).replace('"\\u0001"', v).encode()
    if k == 2:  # the whole file one deep / wide / huge value
        return _nested(rng, 4200).encode()
    # valid JSON, a field missing or unknown, a valid-looking value out of range
    d = dict(CONFIG)
    name = keys[rng.next(len(keys))]
    if rng.next(2):
        del d[name]
    else:
        d[_ODD[rng.next(len(_ODD))]] = json.loads(_ODD[rng.next(len(_ODD))])
    return json.dumps(d).encode()


def test_config_fuzz():
    from app import config

    path = hal.state_dir() + "/config.json"
    good = json.dumps(CONFIG).encode()
    keys = list(CONFIG)
    rng = Rng(13)
    bad = loaded = huge = fields = 0
    for case in range(CASES):
        if case % 96 == 0:  # huge: rejected by size before a byte is read
            size = (4097, 6000, 65536, 1 << 18)[(case // 96) % 4]
            _write_huge(path, size, (0x20, 0x5B, 0xFF)[case % 3])
            data = b"<%d bytes>" % size
            huge += 1
        else:
            data = _config_case(rng, good, keys)
            _write(path, data)
        show = _show(data)
        data = None
        ballast = _leave(LEAVE) if case % 8 == 0 else None
        try:
            c = config.load()
            ballast = None
            loaded += 1
            assert c.source == path
            with open(path) as f:
                assert not config.validate(json.load(f)), "loaded an invalid config"
        except config.ConfigMissing:
            raise AssertionError("case %d: a present file reported missing: %s" % (case, show))
        except config.ConfigError as e:
            ballast = None
            bad += 1
            if not e.errors[0].startswith("config: "):
                fields += 1  # got past the file checks to the field checks
            assert e.errors and len(e.errors) <= 64, (case, e.errors)
            for line in e.errors:
                assert isinstance(line, str) and 0 < len(line) <= 160, (case, line)
        except Exception as e:
            del ballast  # room for the message
            raise AssertionError("case %d: %s %r escaped config.load() on %s" % (case, type(e).__name__, e, show))
    print("config cases", CASES, "C02", bad, "of them field errors", fields, "valid", loaded, "huge", huge)
    assert bad > CASES * 9 // 10 and loaded > 10 and fields > CASES // 5, (bad, loaded, fields)


def test_config_limits_and_messages():
    # The bounds by name (docs/config.md): each damage says what it is.
    from app import config

    path = hal.state_dir() + "/config.json"
    good = json.dumps(CONFIG)
    cases = (
        (b"\xff\xfe{}", "config: not UTF-8 text (damaged file)"),
        (good.replace("Home", "Ho\xe9me").encode("latin-1") if False else good.encode()[:-1] + b'\x80"}', None),
        (b"[" * 3000 + b"]" * 3000, "config: 6000 bytes, at most 4096 (damaged file)"),
        (b"[" * 2000 + b"]" * 2000, "config: not a configuration: nested deeper than 4 (damaged file)"),
        (b"[" + b"0," * 100 + b"0]", "config: not a configuration: more than 48 items (damaged file)"),
        (good.replace('"format": 1', '"format": "%s"' % ("x" * 3000)).encode(), None),
    )
    for data, want in cases:
        _write(path, data)
        try:
            config.load()
            assert False, "loaded %s" % _show(data)
        except config.ConfigError as e:
            if want is not None:
                assert e.errors == [want], e.errors
            for line in e.errors:
                assert len(line) <= 160, line
    # a directory where the file should be: present, unreadable
    os.remove(path)
    os.mkdir(path)
    try:
        config.load()
        assert False
    except config.ConfigMissing:
        assert False, "a present config reported missing"
    except config.ConfigError as e:
        assert e.errors[0].startswith("config: %s cannot be read" % path) or "bytes, at most" in e.errors[0], e.errors
    os.rmdir(path)
    # the largest valid config is well inside the size bound
    d = dict(CONFIG)
    d["endpoints"] = ["h" * 253 + ":65535"] * 4
    d["wifi_ssid"] = "\u00e9" * 16
    d["ota_keys"] = ["ab" * 32] * 3
    d["nat_timeout_s"] = 600
    text = json.dumps(d)
    assert len(text) < config.MAX_BYTES // 2 + 512
    _write(path, text.encode())
    assert config.load().endpoints[3] == ("h" * 253, 65535)


# -- ota.json --------------------------------------------------------------------

_RECORDS = (
    {"min_sv": 3, "pending": {"slot": "ota_1", "version": "2.0.0", "sv": 3, "stage": "booting"}},
    {"min_sv": 0, "pending": {"slot": "ota_0", "version": None, "sv": None, "stage": "installing"}},
    {"min_sv": 7, "pending": None},
    {"min_sv": 4294967295, "pending": {"slot": "ota_1", "version": "9.9", "sv": 4294967295, "stage": "booting"}},
)


def _u32(v):
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 0xFFFFFFFF


def _record_ok(d):
    # The test's own statement of a valid record (docs/ota.md).
    if not isinstance(d, dict) or any(k not in ("min_sv", "pending") for k in d):
        return False
    if not _u32(d.get("min_sv", 0)):
        return False
    p = d.get("pending")
    if p is None:
        return True
    if not isinstance(p, dict) or any(k not in ("slot", "version", "sv", "stage") for k in p):
        return False
    v = p.get("version")
    sv = p.get("sv")
    return (
        isinstance(p.get("slot"), str)
        and 0 < len(p["slot"]) <= 16
        and (v is None or (isinstance(v, str) and len(v) <= 64))
        and (sv is None or _u32(sv))
        and p.get("stage") in ("installing", "booting")
    )


def _ota_case(rng):
    base = _RECORDS[rng.next(len(_RECORDS))]
    good = json.dumps(base).encode()
    b = _mutate(rng, good, _SPECIAL)
    if b is not None:
        return b
    k = rng.next(3)
    if k == 0:  # a field of the wrong type or value
        d = json.loads(good)
        v = json.loads(_ODD[rng.next(len(_ODD))])
        where = rng.next(6)
        if where == 0 or not isinstance(d.get("pending"), dict):
            d["min_sv" if rng.next(3) else "pending"] = v
        else:
            d["pending"][("slot", "version", "sv", "stage", "extra")[rng.next(5)]] = v
        return json.dumps(d).encode()
    if k == 1:  # the record, or a part of it, deep / wide / huge
        return _nested(rng, 1200).encode()
    d = json.loads(good)
    d[("min_sv", "pending", "x")[rng.next(3)]] = json.loads(_ODD[rng.next(len(_ODD))])
    return json.dumps(d).encode()


def test_ota_record_fuzz():
    from app.otalazy import Ota
    from ota import status as S

    path = S.default_path()
    running = hal.running_partition().info()[4]
    rng = Rng(2026)
    counts = {}
    # the updater's modules in once (the wheel compiles them; the app's
    # health task releases them later, not the boot)
    _write(path, b"{}}")
    Ota([b"k" * 32]).after_boot()
    for case in range(CASES):
        if case % 96 == 0:
            size = (1025, 4096, 1 << 18)[(case // 96) % 3]
            _write_huge(path, size, (0x7B, 0x20, 0x00)[case % 3])
            data = b"<%d bytes>" % size
            d = None
        else:
            data = _ota_case(rng)
            _write(path, data)
            try:
                d = json.loads(data)
            except ValueError:
                d = None
        valid = d is not None and _record_ok(d)
        show = _show(data)
        data = None
        faults = F.Faults()
        ballast = _leave(OTA_LEAVE) if case % 16 == 0 else None
        try:
            ota = Ota([b"k" * 32], faults)
            state = ota.after_boot()
            ballast = None
            rec = S.Record()
        except Exception as e:
            del ballast  # room for the message
            raise AssertionError("case %d: %s %r escaped the OTA boot path on %s" % (case, type(e).__name__, e, show))
        counts[state] = counts.get(state, 0) + 1
        assert _u32(rec.min_sv) and getattr(rec, "damaged", None) is None, (case, rec.min_sv)
        if valid:
            assert ota.status.reason is None or not ota.status.reason.startswith("record-damaged"), (case, show)
            p = d.get("pending")
            if p is None:
                assert state == S.IDLE, (case, state)
            elif p["stage"] == "installing" and p["slot"] != running:
                assert state == S.FAILED and ota.status.reason.startswith("interrupted"), (case, state)
            elif p["slot"] != running:
                assert state == S.ROLLED_BACK, (case, state)
            else:
                assert state == S.CONFIRMING, (case, state)
            assert rec.min_sv == d.get("min_sv", 0), (case, rec.min_sv)
        else:
            assert state == S.FAILED and faults.is_active(F.OTA_FAILED), (case, state, show)
            assert ota.status.reason.startswith("record-damaged: "), (case, ota.status.reason)
            assert rec.pending is None, (case, rec.pending)
    print("ota.json cases", CASES, "states", counts, "heap left", OTA_LEAVE)
    assert counts.get(S.FAILED, 0) > CASES // 2 and counts.get(S.CONFIRMING, 0) > 10


def test_ota_record_min_sv_range():
    # min_sv is a u32 (an image's secure_version): anything else is damage,
    # and a valid floor beside a damaged pending entry is kept.
    from ota import status as S

    path = S.default_path()
    for v in (-1, 4294967296, 1.5, "3", True, None, [3]):
        _write(path, json.dumps({"min_sv": v, "pending": None}).encode())
        r = S.Record()
        assert r.min_sv == 0 and getattr(r, "damaged", None) == "record-damaged: min_sv", (v, r.min_sv)
    _write(path, json.dumps({"min_sv": 5, "pending": [1]}).encode())
    r = S.Record()
    assert r.min_sv == 5 and r.pending is None and r.damaged == "record-damaged: pending: not an object"
    _write(path, json.dumps({"min_sv": 4294967295}).encode())
    r = S.Record()
    assert r.min_sv == 4294967295 and r.damaged is None
    _write(path, json.dumps({"min_sv": 6, "extra": 1}).encode())
    r = S.Record()
    assert r.min_sv == 6 and r.damaged == "record-damaged: unknown field", (r.min_sv, r.damaged)
    # a directory where the record should be: damaged, and the boot goes on
    os.remove(path)
    os.mkdir(path)
    r = S.Record()
    assert r.damaged is not None and r.pending is None, r.damaged
    from app.otalazy import Ota

    ota = Ota([b"k" * 32], F.Faults())
    assert ota.after_boot() == S.FAILED and ota.status.reason.startswith("record-damaged: ")
    os.rmdir(path)


# -- otakeys.bin -----------------------------------------------------------------


def test_keylist_fuzz():
    from ota import keylist

    path = keylist.default_path()
    digests = [bytes([i]) * 32 for i in (1, 2, 3)]
    rng = Rng(77)
    adopted = 0
    for case in range(CASES):
        good = keylist._record(1 + rng.next(1000), digests[: 1 + rng.next(3)])
        if case % 101 == 0:
            size = (4096, 1 << 20)[(case // 101) % 2]
            _write_huge(path, size, 0xFF)
            data = good  # only the first bytes count: a list of the right length is not it
            with open(path, "r+b") as f:
                f.write(good)
        else:
            data = _mutate(rng, good, b"\x00\x01\x03\x04\xffIHDK") or good
            _write(path, data)
        try:  # the fuzzed file alone (load() rewrites a missing second copy from a good first)
            os.remove(path + ".bak")
        except OSError:
            pass
        try:
            got = keylist.load(path)
        except Exception as e:
            raise AssertionError(
                "case %d: %s %r escaped keylist.load() on %s" % (case, type(e).__name__, e, _show(data))
            )
        if got is not None:
            # only an intact record is adopted (bytes after it are not read
            # when it has 3 keys)
            adopted += 1
            assert bytes(data[: len(good)]) == bytes(good), "case %d: a damaged list was adopted: %s" % (
                case,
                _show(data),
            )
            assert got[1] == digests[: len(got[1])], case
    print("otakeys.bin cases", CASES, "adopted", adopted)


# -- the store ---------------------------------------------------------------------

NSECT = 4
SECT = 4096


class RamPart:
    # The store partition as NOR flash in RAM (programs AND bits in; erase
    # sets 0xFF): 10,000 boots without a file system in the way.
    def __init__(self, n):
        self.n = n
        self.b = bytearray(n * SECT)
        self.mv = memoryview(self.b)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return SECT
        if op == 6:
            a = arg * SECT
            self.mv[a : a + SECT] = b"\xff" * SECT
            return 0
        return None

    def readblocks(self, s, buf, off=0):
        a = s * SECT + off
        buf[:] = self.mv[a : a + len(buf)]

    def writeblocks(self, s, buf, off=0):
        a = s * SECT + off
        b = self.b
        for i in range(len(buf)):
            b[a + i] &= buf[i]


class Clock:
    def ticks_ms(self):
        return 0


def _reading(seq):
    # as host_tests/store/storetest.py gen(): a pure function of seq
    x = (seq * 40503) & 0xFFFF
    return (63238400 + seq * 4 + (x & 3), (x % 3200) - 200, seq * 17 // 10, seq // 40, 7 if x & 0x300 else 23)


def _build_log():
    # A real log on 4 sectors: 3 live sectors (gaps from RAM overruns open
    # new ones), records of a few readings, cursor records; -> (partition,
    # pristine bytes, the readings held as {seq: reading}, uploaded cursor).
    from store import Store

    part = RamPart(NSECT)
    part.b[:] = b"\xff" * (NSECT * SECT)
    st = Store(part, clock=Clock(), ram_size=16, flush_n=1000)
    for sector in range(5):
        for rec in range(6):
            for _ in range(3 + (sector * 7 + rec * 3) % 9):
                st.append(*_reading(st.seq + 1))
            if rec == 2:
                st.set_cursor("uploaded", st.seq - 4)
            if rec == 4:
                st.set_cursor("shown", st.seq - 1)
            st.flush()
        # more than the RAM ring holds, never flushed: the next flush opens
        # a new sector after the gap
        for _ in range(40):
            st.append(*_reading(st.seq + 1))
    st.flush()
    held = {}
    for r in st.readings_from(0):
        held[r[0]] = r[1:]
    return part, bytes(part.b), held, st.cursor("uploaded")


def _layout(img):
    # Per sector of the pristine image: None (not live) or (sseq, header
    # length, [(record start, record end, [seqs])], end of records).
    from store.layout import RH, RT, T_CUR, parse_header

    out = []
    for s in range(NSECT):
        h = parse_header(memoryview(img)[s * SECT : s * SECT + 256])
        if h is None:
            out.append(None)
            continue
        off = h[4]
        seq = h[1]
        recs = []
        base = s * SECT
        while off + RH + RT <= SECT and img[base + off] != 0xFF and img[base + off] != 0:
            t = img[base + off]
            ln = img[base + off + 1] | (img[base + off + 2] << 8)
            n = 0 if t == T_CUR else img[base + off + 3]
            recs.append((off, off + RH + ln + RT, list(range(seq, seq + n))))
            seq += n
            off += RH + ln + RT
        out.append((h[0], h[4], recs, off))
    return out


def _fix_crc(b, s, start, end, seed):
    # a damaged record that still passes its CRC (crafted data)
    import binascii
    import struct

    a = s * SECT
    c = binascii.crc32(memoryview(b)[a + start : a + end - 4], seed)
    struct.pack_into("<I", b, a + end - 4, c)


def _store_case(rng, b, lay, pristine):
    # Damage the image in b; -> (kind, crafted): crafted is a set of sectors
    # where a record or header passing its CRC was made (their readings may
    # be wrong: the CRC is what the store trusts).
    import binascii
    import struct

    live = [s for s in range(NSECT) if lay[s] is not None]
    s = live[rng.next(len(live))] if rng.next(8) else rng.next(NSECT)
    a = s * SECT
    lo = 0
    hi = lay[s][3] + 8 if lay[s] is not None else SECT
    k = rng.next(9)
    crafted = set()
    if k == 0:  # random bytes over a region
        i = lo + rng.next(hi - lo)
        n = 1 + rng.next(48)
        for j in range(i, min(SECT, i + n)):
            b[a + j] = rng.next(256)
    elif k == 1:  # bit flips
        for _ in range(1 + rng.next(4)):
            i = a + lo + rng.next(hi - lo)
            b[i] ^= 1 << rng.next(8)
    elif k == 2:  # truncated: erased (a torn write) or zeroed from a point on
        i = lo + rng.next(hi - lo)
        fill = 0xFF if rng.next(2) else 0
        for j in range(a + i, a + SECT):
            b[j] = fill
    elif k == 3:  # a whole sector: random, zeros, or another sector's copy
        how = rng.next(3)
        if how == 0:
            for j in range(a, a + SECT):
                b[j] = rng.next(256)
        elif how == 1:
            for j in range(a, a + SECT):
                b[j] = 0
        else:
            o = rng.next(NSECT) * SECT
            b[a : a + SECT] = memoryview(pristine)[o : o + SECT]
    elif lay[s] is None or not lay[s][2]:
        b[a + rng.next(SECT)] ^= 0xFF
    else:
        recs = lay[s][2]
        r0, r1, _ = recs[rng.next(len(recs))]
        sseq = lay[s][0]
        if k == 4:  # wrong type byte (kept under its old CRC)
            b[a + r0] = (0x52, 0x53, 0x43, 0x00, 0x7F, 0xFF)[rng.next(6)]
        elif k == 5:  # huge or wrong length field
            v = (0xFFFF, 481, 4096, 0, 1, r1 - r0)[rng.next(6)]
            b[a + r0 + 1] = v & 0xFF
            b[a + r0 + 2] = v >> 8
            if rng.next(2):
                _fix_crc(b, s, r0, r1, sseq)
                crafted.add(s)
        elif k == 6:  # wrong reading count or payload, CRC fixed
            if rng.next(2):
                b[a + r0 + 3] = rng.next(256)
            else:
                i = r0 + 4 + rng.next(max(1, r1 - r0 - 8))
                b[a + i] = rng.next(256)
            _fix_crc(b, s, r0, r1, sseq)
            crafted.add(s)
        elif k == 7:  # header fields absurd (sequence, first, count, length), CRC fixed
            hlen = lay[s][1]
            f = rng.next(4)
            if f == 0:
                struct.pack_into("<I", b, a + 8, (0, 0x7FFFFFFE, 0x40000000, sseq + 1000)[rng.next(4)])
            elif f == 1:
                struct.pack_into("<I", b, a + 12, (0, 0x7FFFFFFE, 0x3FFFFFFF, 5)[rng.next(4)])
            elif f == 2:
                b[a + 6] = (0, 9, 255)[rng.next(3)]
            else:
                b[a + 5] = (0, 40, 255, hlen + 5)[rng.next(4)]
            hl = b[a + 5]
            if 41 <= hl <= 256:
                struct.pack_into("<I", b, a + hl - 4, binascii.crc32(memoryview(b)[a : a + hl - 4]))
            crafted.add(s)
        else:  # a cursor name or value in the header, CRC fixed
            hlen = lay[s][1]
            if hlen > 41:
                b[a + 37 + rng.next(hlen - 41)] = (0xFF, 0x80, 0, 17, 0x41)[rng.next(5)]
                struct.pack_into("<I", b, a + hlen - 4, binascii.crc32(memoryview(b)[a : a + hlen - 4]))
                crafted.add(s)
    return k, crafted


def _expect(lay, b, pristine):
    # -> (seqs that must survive, damage that must be reported): a reading
    # survives when its sector's bytes are unchanged from the sector start
    # to the end of its record; S01 when a changed byte is within (or just
    # after) the records of a live sector other than the head's last record
    # (a torn last record at the head is a power cut, not damage).
    must = set()
    damage = False
    heads = [
        s
        for s in range(NSECT)
        if lay[s] is not None and b[s * SECT : s * SECT + lay[s][1]] == pristine[s * SECT : s * SECT + lay[s][1]]
    ]
    head = max(heads, key=lambda s: lay[s][0]) if heads else -1
    for s in heads:
        a = s * SECT
        recs = lay[s][2]
        for r0, r1, seqs in recs:
            if b[a + r0 : a + r1] != pristine[a + r0 : a + r1]:
                # the scan stops there: damage, unless it sees the end of
                # the records (0xFF: free, 0x00: sealed); the head's own
                # damage may be a torn write (blank after it): either
                if s != head and b[a + r0] not in (0xFF, 0):
                    damage = True
                break
            must.update(seqs)
        else:
            end = lay[s][3]
            if s != head and end + 8 <= SECT and b[a + end] not in (0xFF, 0):
                damage = True
    return must, damage


def test_store_fuzz():
    from store import Store

    part, pristine, held, uploaded = _build_log()
    lay = _layout(pristine)
    assert sum(1 for x in lay if x is not None) == 3, lay
    allseq = set(held)
    assert len(allseq) > 100, len(allseq)
    b = part.b
    bv = memoryview(b)
    pv = memoryview(pristine)
    rng = Rng(404)
    lost = survived = reported = checked = expected = 0
    for case in range(CASES):
        b[:] = pristine
        k, crafted = _store_case(rng, b, lay, pristine)
        must, damage = _expect(lay, bv, pv)
        same = bv == pv
        gc.collect()
        try:
            st = Store(part, clock=Clock(), ram_size=16)
            got = {}
            for r in st.readings_from(0):
                got[r[0]] = r[1:]
            s = st.stats()
        except Exception as e:
            raise AssertionError("case %d (kind %d): %s %r escaped the store's boot" % (case, k, type(e).__name__, e))
        if crafted:
            # bytes that pass their CRC but were never written by the store:
            # it must boot and answer; what it returns cannot be checked
            continue
        for q in must:
            if q not in got:
                raise AssertionError(
                    "case %d (kind %d): intact reading %d lost (%d of %d back)" % (case, k, q, len(got), len(held))
                )
        for q in got:
            assert q in allseq, "case %d (kind %d): reading %d was never written" % (case, k, q)
            assert got[q] == held[q], "case %d (kind %d): reading %d is %r, not %r" % (case, k, q, got[q], held[q])
        checked += len(must)
        expected += damage
        if damage:
            assert F.STORE_CORRUPT in s["faults"], "case %d (kind %d): damage not reported: %r" % (case, k, s)
        if same:
            assert not s["faults"] and len(got) == len(held), (case, k, s)
        assert st.cursor("uploaded") <= uploaded, (case, k, st.cursor("uploaded"))
        lost += len(held) - len(got)
        survived += len(got)
        reported += F.STORE_CORRUPT in s["faults"]
        st = None
    print("store cases", CASES, "readings back", survived, "lost", lost, "S01", reported)
    print("intact readings checked", checked, "S01 required", expected)
    # the oracle has work in most cases, not just the crash check
    assert checked > CASES * 40 and expected > CASES // 10, (checked, expected)


# -- the whole boot ------------------------------------------------------------------


def test_corrupt_config_boots_to_c02():
    # app.boot() (as main.py boots) on damaged configs of each kind: C02,
    # the reason logged, the diagnostics screen drawn, the watcher running.
    import board
    from app import app
    from display import screens

    path = hal.state_dir() + "/config.json"
    good = json.dumps(board.DEFAULT_CONFIG).encode()
    samples = (
        good[:-1] + b"\xff}",
        b"\xc3\x28" + good,
        b"[" * 4000,
        b"[" * 1000 + b"]" * 1000,
        good[: len(good) // 3],
        good.replace(b'"format": 1', b'"format": ' + b"9" * 3000),
    )
    for data in samples:
        _write(path, data)
        a = app.boot()
        assert a.cfg is None and a.faults.current()[1] == "C02", _show(data)
        s = a.snapshot()
        assert s["fault"][1] == "C02" and s["config_errors"], s["config_errors"]
        a.display.screen = screens.DIAG
        a.display.update(s, 0)
        assert len(set(bytes(a.display.panel.buf))) > 1
        a.add_tasks()
        assert [t[0] for t in a.sup.summary()] == ["config", "display", "status"]
    _write_huge(path, 1 << 20, 0x5B)
    a = app.boot()
    assert a.faults.current()[1] == "C02"
    assert a.cfg_errors == ["config: 1048576 bytes, at most 4096 (damaged file)"], a.cfg_errors
    os.remove(path)
