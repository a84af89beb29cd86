"""The collector's bounds (docs/uplink.md, "Persistence and limits"): datagrams
from unknown or unauthenticated device ids cost no row and no memory per id;
one device's valid key buys at most MAX_READINGS readings a datagram and the
rate buckets' datagrams and readings, and the bytes stored and sent per byte
received are measured and held under a stated bound."""

from __future__ import annotations

import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from test_collector import ADDR, DEV, KEY, ROWS, data, make  # noqa: E402  (the same device and helpers)

from ihd.collector import ingest as colmod  # noqa: E402
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

RUNTIMES = ()  # no MicroPython here
# Measured by test_flood_with_one_valid_key_is_bounded (docs/uplink.md): the
# worst case is a batch of MAX_READINGS identical readings, ~1 bit each.
STORED_PER_BYTE_MAX = 200
SENT_PER_BYTE_MAX = 12


def _rows(n: int) -> list[tuple]:
    return [(1_700_000_000 + 3 * i, 400, 9000, 0, 0) for i in range(n)]


def test_unknown_and_unauthenticated_ids_cost_no_row_and_no_memory(tmp_path):
    c = make(str(tmp_path / "c.db"))
    assert c.handle(data(1, 1, ROWS[:5]), ADDR)
    rng = random.Random(5)
    other = bytes(32)

    def flood(n: int) -> None:
        for _ in range(n):
            dev = rng.randrange(2**32)
            seq = rng.randrange(2**32)
            for d in (
                wire.build_hello(other, dev, 0, seq, 0, 0),
                wire.build_data(other, dev, 0, seq, 1, 1, 0, b"\x00" * 8),
                wire.build_reply(other, dev, 0, seq, 1),  # reflection type, claimed id
                wire.build_refuse(other, dev, 0, seq, 1, 1, 1, 1, 1),
                wire.build_done(other, DEV, 2, seq, 1, 0),  # the real id, wrong key
                rng.randbytes(wire.KA_LEN),  # a guessed keep-alive
            ):
                assert c.handle(d, ADDR) == []

    flood(200)  # warm up caches
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    flood(3000)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grew = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert grew < 64 * 1024, f"{grew} bytes more after 18,000 datagrams of 3,000 claimed ids"
    ids = {r[0] for r in c.db.execute("SELECT device_id FROM rejects UNION SELECT device_id FROM traffic")}
    assert ids <= {0, DEV}
    assert c.db.execute("SELECT count(*) FROM devices").fetchone()[0] == 1
    # the bound: (registered devices + 1) x reasons rows of counters, whatever arrives
    assert c.db.execute("SELECT count(*) FROM rejects").fetchone()[0] <= 2 * 16
    assert c.stats()["devices"][DEV]["readings"] == 5


def _db_bytes(c: colmod.Collector) -> int:
    c.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return c.db.execute("PRAGMA page_count").fetchone()[0] * c.db.execute("PRAGMA page_size").fetchone()[0]


def test_flood_with_one_valid_key_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(colmod, "READING_BURST", 8 * colmod.MAX_READINGS)  # a smaller store, a quicker test
    monkeypatch.setattr(colmod, "DGRAM_BURST", 24.0)
    now = [1000.0]
    c = colmod.Collector(tmp_path / "c.db", clock=lambda: now[0])
    c.add_device(DEV, KEY, 2)
    # more readings than a datagram may carry: refused whole, nothing stored
    payload, n = uc.encode(_rows(colmod.MAX_READINGS + 1), cap=2000)
    big = wire.build_data(KEY, DEV, 2, 1, 1, n, 0, payload)
    assert n == colmod.MAX_READINGS + 1 and len(big) <= wire.MAX_DGRAM
    assert c.handle(big, ADDR) == [] and c.stats()["rejects"]["too_many_readings"] == 1
    base = _db_bytes(c)
    # The flood: the cheapest datagram for the most readings, fresh seqs and
    # numbers (every epoch its own namespace), as fast as it can.
    payload, n = uc.encode(_rows(colmod.MAX_READINGS), cap=2000)
    sent_in = sent_out = taken = taken_in = 0
    seq = 10
    for _second in range(6):
        for _i in range(40):
            seq += 1
            d = wire.build_data(KEY, DEV, 2, seq, 1, n, 0, payload, epoch=seq)
            out = c.handle(d, ADDR)
            sent_in += len(d)
            sent_out += sum(map(len, out))
            taken += bool(out)
            taken_in += len(d) if out else 0
        now[0] += 1
    stored = c.stats()["devices"][DEV]["readings"]
    # readings: the burst, plus the rate for the 6 s; datagrams likewise
    assert stored <= colmod.READING_BURST + colmod.READING_RATE * 6 + colmod.MAX_READINGS
    assert taken <= colmod.DGRAM_BURST + colmod.DGRAM_RATE * 6
    assert c.stats()["rejects"]["rate_limited"] == 240 - taken
    grown = _db_bytes(c) - base
    per_byte = grown / taken_in  # per byte of the datagrams taken: the worst case, not diluted by refusals
    print(
        f"flood: {taken} of 240 taken, {stored} readings, {grown} B stored for {taken_in} B taken: {per_byte:.1f} B/B"
    )
    assert per_byte <= STORED_PER_BYTE_MAX and sent_out <= sent_in
    # keep-alives with a command pending: every one answered with it
    c.request_realtime(DEV, 30)
    now[0] += 1000  # buckets full again
    ka_in = ka_out = 0
    top = c.window(DEV).top
    for s in range(top + 1, top + 200):
        d = wire.build_keepalive(KEY, DEV, s)
        out = c.handle(d, ADDR)
        ka_in += len(d)
        ka_out += sum(map(len, out))
    print(f"keep-alive flood: {ka_out} B sent for {ka_in} B in: {ka_out / ka_in:.1f} B/B")
    assert ka_out / ka_in <= SENT_PER_BYTE_MAX
