"""The collector's PostgreSQL store (tools/ihd/collector/pg.py): versioned migrations,
readings partitioned by month of reading time, reply numbers shared by every
collector of one database, the CLI on a postgresql:// URL."""

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import db as collector_db  # noqa: E402
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

pytest.importorskip("psycopg", reason="psycopg is not installed: `make venv` installs requirements.txt")
from ihd.collector import pg as collector_pg  # noqa: E402

KEY = bytes(range(32))
DEV = 91
ADDR = ("127.0.0.1", 5555)


def batch(seq: int, first: int, rows, epoch: int = 1) -> bytes:
    payload, n = uc.encode(rows)
    return wire.build_data(KEY, DEV, 0, seq, first, n, 0, payload, epoch=epoch)


def test_migrations_are_versioned_and_applied_once(pg_server, pg_url):
    db = pg_url.rsplit("/", 1)[1]
    pg_server.psql("CREATE TABLE schema_migrations (version integer PRIMARY KEY, description text NOT NULL,"
                   " applied_at timestamptz NOT NULL DEFAULT now())", db)  # fmt: skip
    pg_server.psql(collector_pg.MIGRATIONS[0][2], db)  # a database made before migration 2
    pg_server.psql("INSERT INTO schema_migrations (version, description) VALUES (1, 'v1')", db)
    c = collector_db.open_collector(pg_url)
    applied = pg_server.psql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_migrations", db)
    assert applied == "1,2,3,4,5,6"  # 4 push index, 5 reply seq per device, 6 gas
    assert c.migrate() == []  # nothing left to apply
    c.add_device(DEV, KEY)
    assert c.db.execute("SELECT seq_bits FROM devices").fetchone()[0] == -1  # migration 2's column
    assert c.db.execute("SELECT ka_bits FROM devices").fetchone()[0] == 0  # migration 3's


def test_readings_go_to_the_month_of_their_time(pg_url):
    c = collector_db.open_collector(pg_url)
    c.add_device(DEV, KEY)
    now = int(time.time())
    rows = [(now - 3600 + 3 * i, 500, 1000 + i, 0, 7) for i in range(20)]
    old = [(1_500_000_000 + 3 * i, 500, 1000 + i, 0, 7) for i in range(5)]  # a clock far off
    assert wire.parse(c.handle(batch(10, 1, rows), ADDR)[0]).count == 20
    assert wire.parse(c.handle(batch(11, 1, old, epoch=2), ADDR)[0]).count == 5
    parts = dict(c.db.execute("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1").fetchall())
    month = time.strftime("readings_%Y_%m", time.gmtime(rows[0][0]))
    assert parts == {month: 20, "readings_default": 5}
    assert (
        c.db.execute("SELECT partstrat FROM pg_partitioned_table WHERE partrelid='readings'::regclass").fetchone()[0]
        == "r"
    )
    # a copy of a held batch is acknowledged and stored once, across partitions
    assert wire.parse(c.handle(batch(12, 1, rows), ADDR)[0]).count == 20
    assert c.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 25
    assert c.stats()["devices"][DEV]["duplicate_readings"] == 20
    # the same numbers with another time are refused: held readings are never replaced
    moved = [(u + 86400 * 40, *v) for u, *v in rows]
    r = wire.parse(c.handle(batch(13, 1, moved), ADDR)[0])
    assert r.type == wire.T_REFUSE and r.reason == wire.R_CONFLICT
    assert c.db.execute("SELECT count(*) FROM readings").fetchone()[0] == 25


def test_reply_numbers_rise_across_collectors_of_one_database(pg_url):
    a = collector_db.open_collector(pg_url)
    a.add_device(DEV, KEY)
    b = collector_db.open_collector(pg_url)
    seqs = []
    for i, col in enumerate([a, b, a, b]):
        out = col.handle(wire.build_hello(KEY, DEV, 0, 100 + i, 0, 0, nonce=5), ADDR)
        seqs.append(wire.parse(out[0]).seq)
    assert seqs == sorted(seqs) and len(set(seqs)) == 4  # a device failing over accepts the next one's


def test_cli_on_a_postgresql_url(pg_url):
    tool = [sys.executable, "-m", "ihd.collector", "--db", pg_url]
    r = subprocess.run([*tool, "add-device", str(DEV), "--key", KEY.hex()], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    c = collector_db.open_collector(pg_url)
    c.handle(batch(10, 1, [(1_800_000_000 + 3 * i, 400, 10 + i, 0, 7) for i in range(7)]), ADDR)
    r = subprocess.run([*tool, "stats"], capture_output=True, text=True)
    assert r.returncode == 0 and f"device {DEV}: 7 readings" in r.stdout, r.stderr
    r = subprocess.run([*tool, "export-csv"], capture_output=True, text=True)
    assert len(r.stdout.splitlines()) == 8
    gone = pg_url.rsplit(":", 1)[0] + ":1/x"
    r = subprocess.run([*tool[:-1], gone, "stats"], capture_output=True, text=True)
    assert r.returncode == 2 and "cannot reach PostgreSQL" in r.stderr and "Traceback" not in r.stderr


def test_two_collectors_never_both_accept_for_one_device(pg_url):
    """Failover overlap: collector B takes a datagram of the device between A reading its
    row and A storing; A drops its datagram (the device sends again) instead of writing a
    window that forgets B's."""
    a = collector_db.open_collector(pg_url)
    a.add_device(DEV, KEY)
    b = collector_db.open_collector(pg_url)
    rows = [(1_800_000_000 + 3 * i, 400, 10 + i, 0, 7) for i in range(9)]
    read = a.device_state

    def racing(device_id):
        st = read(device_id)
        a.device_state = read
        assert b.handle(wire.build_hello(KEY, DEV, 0, 21, 0, 0, nonce=6), ADDR)  # meanwhile, at B
        return st

    a.device_state = racing
    assert a.handle(batch(22, 1, rows), ADDR) == []
    assert a.stats()["rejects"] == {"contended": 1} and a.stats()["devices"][DEV]["readings"] == 0
    r = wire.parse(a.handle(batch(23, 1, rows), ADDR)[0])  # sent again: read afresh, stored, ACKed
    assert wire.verify(r, KEY, 6) and (r.first, r.count) == (1, 9)
    assert a.window(DEV).seen(21) and a.window(DEV).seen(23) and not a.window(DEV).seen(22)


def test_command_ids_start_at_1_and_go_above_the_device_mark(pg_url):
    c = collector_db.open_collector(pg_url)
    c.add_device(DEV, KEY)
    c.handle(wire.build_hello(KEY, DEV, 0, 10, 0, 0, nonce=3), ADDR)  # mark 0: nothing run yet
    assert c.request_realtime(DEV, 30) == 1
    c.handle(wire.build_hello(KEY, DEV, 0, 11, 0, 0, nonce=4, cmd_mark=40), ADDR)
    assert c.request_realtime(DEV, 30) == 41
    c.handle(wire.build_hello(KEY, DEV, 0, 12, 0, 0, nonce=5, cmd_mark=7), ADDR)  # a lower mark moves nothing
    assert c.request_realtime(DEV, 30) == 42


def test_server_restart_under_a_running_collector(pg_server, pg_url):
    """PostgreSQL restarts (stop, datagrams arrive, start on the same port): nothing is
    ACKed while it is down, the collector reconnects by itself and the device's
    retransmissions are stored; every ACKed reading is there exactly once."""
    c = collector_db.open_collector(pg_url)
    c.add_device(DEV, KEY)
    assert c.handle(wire.build_hello(KEY, DEV, 0, 10, 0, 0, nonce=5), ADDR)
    acked: set[int] = set()
    unacked: list[tuple[int, bytes]] = []
    seq = 11

    def send(first: int, dgram: bytes) -> bool:
        out = c.handle(dgram, ADDR)
        if not out:
            return False
        r = wire.parse(out[0])
        acked.update(range(r.first, r.first + r.count))
        return True

    def batch_at(first: int) -> bytes:
        nonlocal seq
        seq += 1
        return batch(seq, first, [(1_800_000_000 + 3 * (first + i), 400, first + i, 0, 7) for i in range(5)])

    for first in (1, 6, 11):
        assert send(first, batch_at(first))
    pg_server.pause()
    try:
        for first in (16, 21, 26):
            assert not send(first, batch_at(first))  # down: not stored, not ACKed
            unacked.append((first, batch_at(first)))
    finally:
        pg_server.resume()
    deadline = time.monotonic() + 10
    while unacked and time.monotonic() < deadline:  # the device retransmits until ACKed
        first, _ = unacked[0]
        if send(first, batch_at(first)):
            unacked.pop(0)
        else:
            time.sleep(0.05)
    assert not unacked, "the collector never stored again after the restart"
    assert acked == set(range(1, 31))
    n, distinct = c.db.execute("SELECT count(*), count(DISTINCT seq) FROM readings").fetchone()
    assert n == distinct == 30  # 0 ACKed readings lost, none twice
    assert c.db.outages == 1 and c.db.down_since is None
    assert c.stats()["rejects"]["db_unavailable"] >= 3  # the datagrams dropped meanwhile, in stats


def test_partitions_follow_the_collector_clock_across_months(pg_url):
    """A collector running for months (its clock hook stepping a month at a time, as
    --speed does) keeps making partitions ahead: each month's readings land in their
    own partition, never in DEFAULT; a second collector's maintenance is a no-op."""
    t = [time.time()]
    a = collector_db.open_collector(pg_url, clock=lambda: t[0])
    b = collector_db.open_collector(pg_url, clock=lambda: t[0])
    a.add_device(DEV, KEY)
    months = []
    for k in range(5):
        t[0] += 31 * 86400
        rows = [(int(t[0]) - 60 + 3 * i, 400, 10 * k + i, 0, 7) for i in range(5)]
        months.append(time.strftime("readings_%Y_%m", time.gmtime(rows[0][0])))
        assert wire.parse(a.handle(batch(10 + k, 1 + 5 * k, rows), ADDR)[0]).count == 5
        assert b.maintain(t[0]) == []  # a made them: idempotent across collectors
    parts = dict(a.db.execute("SELECT tableoid::regclass::text, count(*) FROM readings GROUP BY 1").fetchall())
    assert parts == {m: 5 for m in months}


def _race(a, b_acts):
    """A's next device_state() is followed at once by b_acts() (collector B serving the
    same device from its own connection) before A decides and stores."""
    read = a.device_state

    def racing(device_id):
        st = read(device_id)
        a.device_state = read
        b_acts()
        return st

    a.device_state = racing


def test_two_collectors_keepalive_bits_are_contended(pg_url):
    """B takes keep-alive 101 between A's read and A's store of keep-alive 102: A must
    not write back keep-alive bits that forget 101 (101 would replay)."""
    a = collector_db.open_collector(pg_url)
    a.add_device(DEV, KEY)
    b = collector_db.open_collector(pg_url)
    assert a.handle(wire.build_hello(KEY, DEV, 0, 100, 0, 0, nonce=6), ADDR)
    _race(a, lambda: b.handle(wire.build_keepalive(KEY, DEV, 101), ADDR))
    a.handle(wire.build_keepalive(KEY, DEV, 102), ADDR)
    assert a.stats()["rejects"] == {"contended": 1}
    a.handle(wire.build_keepalive(KEY, DEV, 101), ADDR)  # a replay of B's
    assert a.stats()["rejects"] == {"contended": 1, "replay": 1}


def test_two_collectors_refusals_take_the_row_lock(pg_url):
    """A stale HELLO reaches A and B at once: B refuses it with a challenge; A, having read
    the row before, must not overwrite that challenge, or the device's answer to B's
    REFUSE is refused again."""
    a = collector_db.open_collector(pg_url)
    a.add_device(DEV, KEY)
    b = collector_db.open_collector(pg_url)
    assert a.handle(wire.build_hello(KEY, DEV, 0, 500, 0, 0, nonce=6), ADDR)
    stale = wire.build_hello(KEY, DEV, 0, 3, 0, 0, nonce=7)  # a device that lost its numbers
    got = []
    _race(a, lambda: got.extend(b.handle(stale, ADDR)))
    assert a.handle(stale, ADDR) == []  # contended: B has answered
    ref = wire.parse(got[0])
    assert ref.type == wire.T_REFUSE and ref.challenge
    r = wire.parse(a.handle(wire.build_hello(KEY, DEV, 0, 4, 0, 0, nonce=ref.challenge), ADDR)[0])
    assert r.type == wire.T_REPLY  # B's challenge answered: accepted


def test_two_collectors_push_a_command_once(pg_url):
    """Both collectors' push loops see the same unsent command: only one pushes it."""
    a = collector_db.open_collector(pg_url)
    a.add_device(DEV, KEY)
    b = collector_db.open_collector(pg_url)
    assert a.handle(wire.build_hello(KEY, DEV, 0, 100, 0, 0, nonce=6), ADDR)
    sent = []
    a.sender = b.sender = lambda data, addr, via: sent.append(data)
    a._insert_command(DEV, wire.CMD_REALTIME, b"\x00\x1e", time.time())  # as the CLI queues it
    _race(a, lambda: b.push_pending())
    a.push_pending()
    assert len(sent) == 1


def test_read_state_does_not_grow_per_device(pg_url):
    """2,500 registered devices each send one datagram that is dropped (bad tag): the
    store keeps nothing per device in memory for it."""
    import tracemalloc

    c = collector_db.open_collector(pg_url)
    c.db.execute(
        "INSERT INTO devices(device_id, key_id, key) SELECT g, 0, ? FROM generate_series(1000, 3499) g", (KEY,)
    )
    bad = bytes(32)
    c.handle(wire.build_hello(bad, 999, 0, 1, 0, 0), ADDR)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for dev in range(1000, 3500):
        c.handle(wire.build_hello(bad, dev, 0, 1, 0, 0), ADDR)
    c.flush_rejects()
    grown = sum(
        s.size_diff
        for s in tracemalloc.take_snapshot().compare_to(before, "filename")
        if "collector" in s.traceback[0].filename
    )
    tracemalloc.stop()
    assert grown < 80_000, grown  # before: 361,509 B for 4,000 devices


def test_reply_numbers_are_per_device_and_continue_above_the_shared_sequence(pg_server, pg_url):
    """Replies to other devices take none of this device's u32 of reply numbers; a device
    replied to from the shared sequence before continues above what it has seen."""
    c = collector_db.open_collector(pg_url)
    c.add_device(DEV, KEY)
    c.add_device(DEV + 1, KEY)
    pg_server.psql("SELECT setval('reply_seq', 3000000000)", pg_url.rsplit("/", 1)[1])  # a fleet's years of replies
    first = wire.parse(c.handle(wire.build_hello(KEY, DEV, 0, 10, 0, 0, nonce=5), ADDR)[0]).seq
    assert first > 3_000_000_000
    for i in range(5):  # another device's replies
        c.handle(wire.build_hello(KEY, DEV + 1, 0, 10 + i, 0, 0, nonce=5 + i), ADDR)
    nxt = wire.parse(c.handle(wire.build_hello(KEY, DEV, 0, 11, 0, 0, nonce=6), ADDR)[0]).seq
    assert nxt == first + 1
