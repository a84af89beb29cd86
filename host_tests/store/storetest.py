# Helpers for the store tests, on MicroPython: emulated NOR flash partitions
# of any size, and the reading oracle gen(seq).
#
# gen(seq) is a pure function of seq, so a test can check any reading the
# store returns without keeping what it appended: a reading with seq s is
# correct if and only if it equals gen(s).
import os

# Readings carry device seconds (meter/reading.py: UTC seconds since
# 2024-01-01): 2026-01-01T22:13:20Z, Unix 1767305600, at the same phase in
# its hour and day as the Unix 1700000000 these tests used before.
T0 = 63238400
SECTOR = 4096


def tmpdir():
    d = os.getenv("IHD_STATE") or "/tmp/ihd-store-test"
    p = ""
    for part in d.split("/"):
        if part:
            p += "/" + part
            try:
                os.mkdir(p)
            except OSError:
                pass
    return d


def remove(path):
    for p in (path, path + ".wear"):
        try:
            os.remove(p)
        except OSError:
            pass


def flash(path, nsect, cut=None, torn=None):
    # -> (NorFlash, store partition). The partition is the whole emulated
    # chip, exposed through the HAL's own esp32.Partition emulation.
    # (Imported here: the heap check runs without the HAL.)
    from hal import unix_partition
    from hal.norflash import NorFlash

    f = NorFlash(path, nsect * SECTOR, cut_after=cut, torn=torn)
    unix_partition.attach(f, (("store", 1, 0x40, 0, nsect * SECTOR),))
    return f, unix_partition.Partition("store")


class Clock:
    # ticks only move when the test says so: flush timing is deterministic
    def __init__(self):
        self.ms = 0

    def ticks_ms(self):
        return self.ms


def _h(seq):
    x = (seq * 2654435761) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    return x ^ (x >> 12)


def gen(seq):
    # A noisy reading (4-6 bytes coded, so tests wrap the ring quickly):
    # utc strictly increasing with jitter, demand jumping, summations
    # monotonic, flags changing now and then.
    h = _h(seq)
    return (
        T0 + seq * 4 + (h & 3),
        ((h >> 4) % 3200) - 200,
        seq * 17 // 10 + (seq // 500) * 30,
        seq // 40,
        7 if h & 0x300 else 23,
    )


class Lcg:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def check_log(st, top, first_required=None, last_required=None):
    # Every reading the store yields is gen(seq), seqs are contiguous and
    # never above top (the highest seq ever appended). Returns (first, last,
    # count); asserts first <= first_required and last >= last_required.
    first = None
    prev = None
    n = 0
    for r in st.readings_from(0):
        s = r[0]
        assert s <= top, "reading %d was never appended (top %d)" % (s, top)
        assert r[1:] == gen(s), "reading %d wrong: %r != %r" % (s, r[1:], gen(s))
        if prev is not None:
            assert s == prev + 1, "gap after %d: next is %d" % (prev, s)
        else:
            first = s
        prev = s
        n += 1
    if last_required is not None and last_required > 0:
        assert prev is not None and prev >= last_required, "committed %d lost (last %r)" % (last_required, prev)
    if first_required is not None and prev is not None and last_required:
        lo = first_required if first_required > 1 else 1
        assert first <= lo, "committed readings from %d lost (oldest %d)" % (lo, first)
    return first, prev, n
