# Store basics on MicroPython: codec, append without allocation, batched
# flushes, reboots, cursors, queries against an oracle computed from gen().
import micropython
from storetest import T0, Clock, Lcg, check_log, flash, gen, remove, tmpdir

from store import Store, codec
from store.codec import NO_TIME
from store.layout import MAX_CURSORS

HEAP = "128k"  # test code and oracles; the store's own cap: test_heap.py


def _store(name, nsect=8, ram=300, fresh=True, **kw):
    path = tmpdir() + "/" + name
    if fresh:
        remove(path)
    f, part = flash(path, nsect)
    return f, Store(part, clock=Clock(), ram_size=ram, **kw)


def _fill(st, n, every=100):
    # append n readings, flushing every `every` (0: never)
    for i in range(n):
        st.append(*gen(st.seq + 1))
        if every and i % every == every - 1:
            st.flush()


def test_codec_round_trip_and_worst_case_size():
    buf = bytearray(64)
    enc = codec.new_state()
    dec = codec.new_state()
    rng = Lcg(7)
    ext = ((0, 0, 0, 0, 0), (0xFFFFFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 255), (0, -0x80000000, 0, 0, 0))
    worst = 0
    for i in range(3000):
        if i < len(ext) * 2:
            r = ext[i % len(ext)]
        else:
            r = (
                rng.next(1 << 30) * 4 + rng.next(4),
                rng.next(1 << 30) * (1 if rng.next(2) else -1),
                rng.next(1 << 30) * 4,
                rng.next(1 << 30) * 4 if i % 3 else 0,
                rng.next(256),
            )
        end = codec.encode(buf, 0, enc, r[0], r[1], r[2], r[3], r[4])
        worst = max(worst, end)
        assert end <= codec.MAXENC
        assert codec.decode(buf, 0, end, dec) == end
        assert tuple(dec[:5]) == r, (dec, r)
    assert worst > 15  # the extremes really were exercised
    # typical 4-second readings take 1-2 bytes
    st = codec.new_state()
    codec.set_state(st, T0, 300, 1000, 0, 7, 4)
    end = codec.encode(buf, 0, st, T0 + 4, 310, 1001, 0, 7)
    assert end == 2


def test_store_epoch_is_the_readings():
    # the store repeats meter/reading.py's epoch (to spare the import)
    from meter import reading

    assert codec.DEV_EPOCH == reading.DEV_EPOCH == 1704067200 and NO_TIME == reading.NO_TIME


def test_append_does_not_allocate():
    # Realistic values: a 2026 time (device seconds, small ints until 2058)
    # and a 12,345 kWh register (in Wh), as the meter links pass them.
    f, st = _store("noalloc.bin")
    r = gen(1)
    st.append(*r)  # first append arms the flush timer
    micropython.heap_lock()
    try:
        for i in range(200):
            st.append(T0 + 4 * i, 420 + i, 12_345_678 + i, 2_000_000, 7)
    finally:
        micropython.heap_unlock()
    assert st.pending() == 201
    assert st.latest() == (201, T0 + 796, 619, 12_345_877, 2_000_000, 7)


def test_flush_writes_batches_not_readings():
    f, st = _store("batch.bin")
    _fill(st, 10)
    st.flush()  # opens the first sector (header + erase of the next)
    p0 = f.programs
    _fill(st, 200, 0)
    assert f.programs == p0, "append touched flash"
    assert st.flush() == 200
    assert st.pending() == 0 and st.committed() == 210
    assert f.programs - p0 <= 3, "%d programs for 200 readings" % (f.programs - p0)


def test_flush_interval_is_bounded():
    path = tmpdir() + "/due.bin"
    remove(path)
    f, part = flash(path, 8)
    clk = Clock()
    st = Store(part, clock=clk, ram_size=300, flush_s=60, flush_n=64)
    assert not st.flush_due()
    assert st.due_in_ms(5000) == 5000  # nothing waits: the caller's idle sleep
    st.append(*gen(1))
    assert st.due_in_ms(90_000) == 60_000 and st.due_in_ms(5000) == 5000
    clk.ms += 59_000
    assert not st.flush_due() and st.tick() == 0
    assert st.due_in_ms(90_000) == 1000
    clk.ms += 1_000
    assert st.flush_due() and st.due_in_ms(90_000) == 0
    assert st.tick() == 1 and st.pending() == 0
    assert st.due_in_ms(90_000) == 90_000
    _fill(st, 63, 0)
    assert not st.flush_due()
    _fill(st, 1, 0)
    assert st.flush_due(), "64 pending readings must be due at once"


def test_reboot_keeps_sequence_cursor_and_readings():
    f, st = _store("reboot.bin")
    _fill(st, 500)
    st.set_cursor("uploaded", 321)
    st.flush()
    _fill(st, 7, 0)  # pending: lost at the reboot
    f.close()
    f, st = _store("reboot.bin", fresh=False)
    assert st.cursor("uploaded") == 321
    assert st.cursor("never-set") == 0
    assert st.committed() == 500 and st.seq == 500
    assert st.latest() == (500,) + gen(500)
    check_log(st, 500, 1, 500)
    # the uplink resumes from cursor + 1
    got = []
    assert st.read(st.cursor("uploaded") + 1, 5, got) == 5
    assert [r[0] for r in got] == [322, 323, 324, 325, 326]
    assert st.append(*gen(501)) == 501


def test_cursor_updates_cost_no_erase():
    f, st = _store("cursor.bin", nsect=8)
    _fill(st, 100)
    st.flush()
    e0 = f.erases
    for i in range(1, 101):
        st.set_cursor("uploaded", i, sync=True)
    assert f.erases - e0 <= 1, "%d erases for 100 cursor updates" % (f.erases - e0)
    f.close()
    f, st = _store("cursor.bin", nsect=8, fresh=False)
    assert st.cursor("uploaded") == 100


def test_cursor_limits():
    f, st = _store("curlim.bin")
    _fill(st, 10)
    for bad in (("", 1), ("x" * 17, 1), ("up", 11), ("up", -1)):
        try:
            st.set_cursor(*bad)
            assert False, "accepted %r" % (bad,)
        except ValueError:
            pass
    for i in range(MAX_CURSORS):
        st.set_cursor("c%d" % i, i)
    try:
        st.set_cursor("one-too-many", 1)
        assert False
    except ValueError:
        pass
    st.flush()
    f.close()
    f, st = _store("curlim.bin", fresh=False)
    assert [st.cursor("c%d" % i) for i in range(MAX_CURSORS)] == list(range(MAX_CURSORS))


def test_bad_reading_rejected_counted_nothing_lost():
    f, st = _store("bad.bin")
    _fill(st, 5)
    # times: before Unix 0, or past what the header's u32 Unix time holds
    bads = (
        (NO_TIME - 1, 0, 0, 0, 0),
        (1 << 31, 0, 0, 0, 0),
        (T0, 1 << 31, 0, 0, 0),
        (T0, 0, -5, 0, 0),
        (T0, 0, 0, 1 << 32, 0),
        (T0, 0, 0, 0, 256),
    )
    for bad in bads:
        try:
            st.append(*bad)
            assert False, "accepted %r" % (bad,)
        except ValueError as e:
            assert "out of range" in str(e)
    assert st.stats()["rejected"] == 6
    _fill(st, 5)
    st.flush()
    check_log(st, 10, 1, 10)


def test_ram_overrun_drops_oldest_pending_and_counts():
    f, st = _store("overrun.bin", ram=100)
    _fill(st, 50)
    st.flush()
    _fill(st, 250, 0)  # 150 more than the RAM ring holds unflushed
    assert st.pending() == 100
    st.flush()
    s = st.stats()
    assert s["dropped"] == 150 and s["health"] == "degraded"
    seqs = [r[0] for r in st.readings_from(0)]
    assert seqs == list(range(1, 51)) + list(range(201, 301))
    for r in st.readings_from(0):
        assert r[1:] == gen(r[0])
    f.close()
    f, st = _store("overrun.bin", ram=100, fresh=False)
    assert [r[0] for r in st.readings_from(0)] == seqs


def test_pending_readings_only_on_request():
    f, st = _store("pend.bin")
    _fill(st, 20)
    st.flush()
    _fill(st, 5, 0)
    assert [r[0] for r in st.readings_from(18)] == [18, 19, 20]
    assert [r[0] for r in st.readings_from(18, pending=True)] == [18, 19, 20, 21, 22, 23, 24, 25]
    assert st.latest()[0] == 25


def test_reader_beyond_ram_matches_and_survives_reclaim():
    # Iterate slowly over the whole log while appending and flushing so
    # the sector being read is reclaimed under the iterator.
    f, st = _store("reclaim.bin", nsect=4, ram=50)
    _fill(st, 1500)
    st.flush()
    it = st.readings_from(0)
    last = 0
    n = 0
    for r in it:
        assert r[1:] == gen(r[0]) and r[0] > last
        last = r[0]
        n += 1
        if n % 20 == 0 and st.seq < 12000:
            _fill(st, 100)
            st.flush()
    assert last == st.committed()
    assert st.stats()["corrupt_records"] == 0


def _oracle_before(t, lo, hi):
    # delivered of the last seq in [lo, hi] with utc < t, from gen() only
    best = None
    for s in range(lo, hi + 1):
        r = gen(s)
        if r[0] < t:
            best = r[2]
        else:
            break
    return best


def test_queries_against_oracle():
    f, st = _store("query.bin", nsect=16, ram=200)
    _fill(st, 5000)  # ~5.5 hours, beyond the RAM ring
    st.flush()
    _fill(st, 30, 0)  # some pending
    lo = st.oldest_seq()
    hi = st.seq
    assert lo == 1
    assert st.latest() == (hi,) + gen(hi)
    # range_utc streams exactly the readings in [t0, t1)
    t0 = gen(1234)[0] - 1
    t1 = gen(4990)[0] + 2
    want = (s for s in range(lo, hi + 1) if t0 <= gen(s)[0] < t1)
    n = 0
    for r in st.range_utc(t0, t1):
        assert r[0] == next(want)
        n += 1
    assert n > 3000 and next(want, None) is None
    for r in st.range_utc(gen(4000)[0], gen(4003)[0]):
        assert r[1:] == gen(r[0])
    # energy since a time
    for s in (1, 2, 700, 3000, 4900, 5010, 5029):
        t = gen(s)[0]
        b = _oracle_before(t, lo, hi)
        want = gen(hi)[2] - (b if b is not None else gen(s)[2])
        assert st.energy_since(t) == want, (s, st.energy_since(t), want)
    # energy per hour for the last 6 hours
    now = gen(hi)[0]
    hours = st.hourly_wh(now, 6)
    h1 = now // 3600
    want = []
    for h in range(h1 - 5, h1 + 1):
        a = _oracle_before(h * 3600, lo, hi)
        if a is None:
            first = next((s for s in range(lo, hi + 1) if h * 3600 <= gen(s)[0] < (h + 1) * 3600), None)
            a = gen(first)[2] if first else None
        b = _oracle_before((h + 1) * 3600, lo, hi) if (h + 1) * 3600 <= now else gen(hi)[2]
        want.append(None if a is None or b is None else b - a)
    assert hours == want, (hours, want)
    assert st.hourly_wh(now, 6) == want  # from the cache
    f.close()
    f, st = _store("query.bin", nsect=16, ram=200, fresh=False)
    hi = st.seq
    want[-1] = gen(hi)[2] - (_oracle_before(h1 * 3600, lo, hi))
    assert st.hourly_wh(now, 6) == want


def _summation_before(genf, hi, t):
    # the last summation any reading 1..hi carries before time t (None: none)
    best = None
    for s in range(1, hi + 1):
        r = genf(s)
        if r[0] >= t:
            break
        if r[4] & 4:
            best = r[2]
    return best


def _check_queries(st, genf, hi, latest, seqs):
    # energy_since and hourly_wh against the summations the readings carry
    for s in seqs:
        t = genf(s)[0]
        want = latest - _summation_before(genf, hi, t)
        assert st.energy_since(t) == want, (s, st.energy_since(t), want)
    now = genf(hi)[0]
    h1 = now // 3600
    got = st.hourly_wh(now, 3)
    want = []
    for h in range(h1 - 2, h1 + 1):
        b = _summation_before(genf, hi, (h + 1) * 3600) if (h + 1) * 3600 <= now else latest
        want.append(b - _summation_before(genf, hi, h * 3600))
    assert got == want and None not in got, (got, want)


def _gen_nosum(seq):
    # every tenth reading without a summation: 0 and F_SUMMATION clear, as
    # the app stores readings whose summation the meter did not send
    r = gen(seq)
    if seq % 10 == 3:
        return (r[0], r[1], 0, r[3], r[4] & ~4)
    return r


def test_queries_skip_unknown_summations():
    f, st = _store("nosum.bin", nsect=16, ram=200)
    for _ in range(3000):
        st.append(*_gen_nosum(st.seq + 1))
        if st.seq % 100 == 0:
            st.flush()
    st.append(*_gen_nosum(st.seq + 1))  # newest: seq 3001
    st.append(*_gen_nosum(st.seq + 1))  # 3002
    st.append(*_gen_nosum(st.seq + 1))  # 3003, summation unknown
    st.flush()
    hi = st.seq
    latest = gen(hi - 1)[2]  # 3003 has no summation: 3002 counts
    _check_queries(st, _gen_nosum, hi, latest, (4, 13, 14, 23, 1500, 2993, 2994, 3003))


def _gen_sparse(seq):
    # a summation in one reading of 40 (a RAVEn stick: demand every few
    # seconds, summation every few minutes); the others carry demand only
    r = gen(seq)
    if seq % 40:
        return (r[0], r[1], 0, r[3], r[4] & ~4)
    return r


def test_queries_reach_sparse_summations():
    f, st = _store("sparse.bin", nsect=16, ram=200)
    for _ in range(3000):
        st.append(*_gen_sparse(st.seq + 1))
        if st.seq % 100 == 0:
            st.flush()
    st.flush()
    hi = st.seq
    latest = _summation_before(_gen_sparse, hi, _gen_sparse(hi)[0] + 1)
    _check_queries(st, _gen_sparse, hi, latest, (500, 1234, 2222, 2990))
    f.close()


def test_queries_cached_while_readings_arrive():
    # The display asks every few minutes while readings keep coming: the
    # cached boundaries (including "no reading before this hour", cached
    # once final) must give what a fresh computation over every reading
    # gives, at every step, with the log starting inside the 24 h window.
    f, st = _store("arrive.bin", nsect=16, ram=200)

    def before(t, hi):
        return _summation_before(_gen_nosum, hi, t)

    def first_in(t0, t1, hi):
        for s in range(1, hi + 1):
            r = _gen_nosum(s)
            if t0 <= r[0] < t1:
                if r[4] & 4:
                    return r[2]
                continue
            if r[0] >= t1:
                return None
        return None

    for step in range(12):
        for _ in range(170 + 13 * step):
            st.append(*_gen_nosum(st.seq + 1))
        if step % 3 == 0:
            st.flush()
        hi = st.seq
        now = _gen_nosum(hi)[0] + 7
        latest = before(now + 1, hi)
        h1 = now // 3600
        want = []
        for h in range(h1 - 23, h1 + 1):
            a = before(h * 3600, hi)
            if a is None:
                a = first_in(h * 3600, (h + 1) * 3600, hi)
            b = before((h + 1) * 3600, hi) if (h + 1) * 3600 <= now else latest
            want.append(None if a is None or b is None else max(0, b - a))
        got = st.hourly_wh(now, 24)
        assert got == want, (step, got, want)
        day = now - now % 86400
        b = before(day, hi)
        if b is None:
            b = first_in(day, now + 1, hi)
        assert st.energy_since(day) == latest - b, (step, st.energy_since(day), latest - b)
    f.close()


def test_seq_never_reused_below_a_persisted_cursor():
    # A cursor may pass readings that never reached flash (the uplink sent
    # pending ones, a new sector's header snapshot holds the cursor, then
    # the power went). After the reboot new readings must get seqs above
    # the cursor, or the uplink would skip them.
    f, st = _store("bump.bin")
    _fill(st, 100)
    st.flush()
    _fill(st, 50, 0)  # 101..150 pending
    st.set_cursor("uploaded", 140)
    assert st.log.open_next()  # a sector opens: its header carries the cursor
    f.close()  # power cut: 101..150 lost
    f, st = _store("bump.bin", fresh=False)
    assert st.cursor("uploaded") == 140 and st.committed() == 140
    assert [r[0] for r in st.readings_from(95)] == [95, 96, 97, 98, 99, 100]
    assert st.append(*gen(141)) == 141
    st.flush()
    f.close()
    f, st = _store("bump.bin", fresh=False)
    assert [r[0] for r in st.readings_from(99)] == [99, 100, 141]
    assert st.get(141) == (141,) + gen(141)
