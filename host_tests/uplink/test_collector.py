"""The collector: authenticates, decodes, de-duplicates, ACKs; counts and drops
forged, replayed, truncated, oversized and random datagrams without ever failing."""

from __future__ import annotations

import csv
import io
import random
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import db as dbsel  # noqa: E402
from ihd.collector import ingest as colmod  # noqa: E402
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

KEY = bytes(range(32))
DEV = 77
ADDR = ("127.0.0.1", 5555)
ROWS = [(1_700_000_000 + 3 * i, 400 + (i * 37) % 11, 9000 + i // 3, 0, 7) for i in range(50)]


def make(db: str, **kw) -> colmod.Collector:
    """A collector over `db` (the collector_db fixture: each test runs on SQLite and PostgreSQL)."""
    c = dbsel.open_collector(db, **kw)
    c.add_device(DEV, KEY, 2)
    return c


def data(seq: int, first: int, rows, key=KEY, kid=2, flags=0) -> bytes:
    payload, n = uc.encode(rows)
    return wire.build_data(key, DEV, kid, seq, first, n, flags, payload)


def test_data_is_stored_once_and_acked(collector_db):
    c = make(collector_db)
    out = c.handle(data(10, 1, ROWS[:30]), ADDR)
    assert len(out) == 1
    r = wire.parse(out[0])
    assert r.type == wire.T_REPLY and wire.verify(r, KEY, 0)
    assert (r.echo, r.first, r.count, r.commands) == (10, 1, 30, [])
    # an overlapping batch in a new datagram (a retransmission after a lost ACK)
    out = c.handle(data(11, 21, ROWS[20:50]), ADDR)
    assert wire.parse(out[0]).count == 30
    rows = c.db.execute("SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings").fetchall()
    assert rows == [(i + 1, *ROWS[i]) for i in range(50)]
    s = c.stats()
    dev = s["devices"][DEV]
    assert dev["duplicate_readings"] == 10 and dev["readings"] == 50
    assert dev["datagrams_in"] == 2 and dev["datagrams_out"] == 2
    assert dev["wire_bytes_in"] == dev["bytes_in"] + 2 * 28
    buf = io.StringIO()
    assert c.export_csv(buf, DEV) == 50
    lines = list(csv.reader(io.StringIO(buf.getvalue())))
    assert lines[0][:5] == ["utc_s", "demand_w", "delivered_wh", "received_wh", "flags"]
    assert [int(x) for x in lines[1][:5]] == list(ROWS[0])


def test_bad_datagrams_counted_by_reason_and_dropped(collector_db):
    c = make(collector_db)
    good = data(100, 1, ROWS[:5])
    assert c.handle(good, ADDR)
    forged = bytearray(data(101, 1, ROWS[:5]))
    forged[20] ^= 4
    bad = {
        "replay": [good],
        "bad_tag": [bytes(forged), data(102, 1, ROWS[:5], key=bytes(32))],
        "unknown_key": [data(103, 1, ROWS[:5], kid=3)],
        "truncated": [good[:5], good[:25], b""],
        "oversized": [good + bytes(1200)],
        "bad_type": [b"\x99" + good[1:], wire.build_reply(KEY, DEV, 2, 5, 100)],
        "malformed": [
            wire.build_data(KEY, DEV, 2, 104, 1, 9, 0, uc.encode(ROWS[:5])[0]),  # count mismatch
            wire.build_data(KEY, DEV, 2, 105, 1, 1, 0, b"\xff\xff\xff"),  # payload garbage, valid tag
        ],
        "unknown_device": [wire.build_hello(KEY, DEV + 1, 2, 1, 0, 0)],
    }
    for datagrams in bad.values():
        for d in datagrams:
            assert c.handle(d, ADDR) == []
    rej = c.stats()["rejects"]
    for reason, datagrams in bad.items():
        assert rej.get(reason) == len(datagrams), (reason, rej)
    assert c.stats()["devices"][DEV]["readings"] == 5
    assert c.errors == 0


def test_random_datagrams_never_crash(collector_db):
    c = make(collector_db)
    rng = random.Random(11)
    good = data(1, 1, ROWS)
    ka = wire.build_keepalive(KEY, DEV, 2)
    n = 4000
    for i in range(n):
        k = i % 4
        if k == 0:
            d = rng.randbytes(rng.randrange(0, 1400))
        elif k == 1:  # mutate a valid datagram
            b = bytearray(rng.choice((good, ka)))
            for j in rng.sample(range(len(b)), rng.randrange(1, 4)):
                b[j] ^= rng.randrange(1, 256)
            d = bytes(b)
        elif k == 2:  # right type byte and device, random rest
            d = bytes([rng.choice(list(wire.TYPE_NAMES))]) + DEV.to_bytes(4, "big") + rng.randbytes(rng.randrange(60))
        else:
            d = good[: rng.randrange(len(good))]
        assert c.handle(d, ADDR) == [] or k == 1
    rej = c.stats()["rejects"]
    assert c.errors == 0 and "internal_error" not in rej
    assert sum(rej.values()) >= n - 5
    assert c.stats()["devices"][DEV]["readings"] == 0


def test_keepalive_answered_only_with_commands_and_done_ends_them(collector_db):
    c = make(collector_db)
    assert c.handle(wire.build_keepalive(KEY, DEV, 7), ADDR) == []
    cid = c.request_realtime(DEV, 300)
    ota = c.queue_command(DEV, wire.CMD_OTA, b"http://ota/x.bin")
    out = c.handle(wire.build_keepalive(KEY, DEV, 8), ADDR)
    r = wire.parse(out[0])
    assert wire.verify(r, KEY, 0) and r.echo == 8
    assert r.commands == [(wire.CMD_REALTIME, cid, (300).to_bytes(2, "big")), (wire.CMD_OTA, ota, b"http://ota/x.bin")]
    assert c.handle(wire.build_keepalive(KEY, DEV, 8), ADDR) == []  # replayed keep-alive
    forged = bytearray(wire.build_keepalive(KEY, DEV, 9))
    forged[-1] ^= 1
    assert c.handle(bytes(forged), ADDR) == []
    assert c.handle(wire.build_keepalive(bytes(32), DEV, 9), ADDR) == []  # wrong key
    assert c.stats()["rejects"]["bad_keepalive"] == 2 and c.stats()["rejects"]["replay"] == 1
    # still the OTA one pending, but in the device's hands already: its DONE is awaited, no reply
    assert c.handle(wire.build_done(KEY, DEV, 2, 10, cid, 0), ADDR) == []
    out = c.handle(wire.build_hello(KEY, DEV, 2, 11, 0, 0), ADDR)
    assert wire.parse(out[0]).commands == [(wire.CMD_OTA, ota, b"http://ota/x.bin")]
    assert c.handle(wire.build_done(KEY, DEV, 2, 12, ota, 0), ADDR) == []
    assert c.handle(wire.build_keepalive(KEY, DEV, 13), ADDR) == []
    # keep-alives are taken up to KA_AHEAD seqs above the last full datagram (12:
    # lost keep-alives), not beyond, and never move the window; a HELLO (full
    # seq) brings the window to the device again
    c.request_realtime(DEV, 10)
    assert c.handle(wire.build_keepalive(KEY, DEV, 12 + wire.KA_AHEAD), ADDR)
    assert c.window(DEV).top == 12
    far = 14 + 2 * wire.KA_AHEAD
    assert c.handle(wire.build_keepalive(KEY, DEV, far), ADDR) == []
    assert c.stats()["rejects"]["bad_keepalive"] == 3
    assert c.handle(wire.build_hello(KEY, DEV, 2, far + 1, 0, 0), ADDR)
    assert c.handle(wire.build_keepalive(KEY, DEV, far + 5), ADDR)
    assert (c.window(DEV).top, c.window(DEV).latest()) == (far + 1, far + 5)


def test_command_pushed_at_once_to_last_address_then_with_keepalive_replies(collector_db):
    now = [1000.0]
    c = make(collector_db, clock=lambda: now[0], push_window_s=300)
    sent = []
    c.sender = lambda d, addr, via: sent.append((d, addr, via))
    assert c.request_realtime(DEV, 30) and sent == []  # never heard from: nowhere to push
    assert c.handle(wire.build_keepalive(KEY, DEV, 40), ADDR, "sock-a")  # carries the first command
    c.handle(wire.build_done(KEY, DEV, 2, 41, 1, 0), ADDR, "sock-a")
    other = ("127.0.0.1", 6666)
    assert c.handle(wire.build_keepalive(KEY, DEV, 42), other, "sock-b") == []
    now[0] += 50
    cid = c.request_realtime(DEV, 600)
    assert len(sent) == 1
    d, addr, via = sent[0]
    r = wire.parse(d)
    # authentic, echoing the device's latest datagram (its replay window accepts it),
    # to the address and socket that datagram came from
    assert wire.verify(r, KEY, 0) and (r.echo, r.first, r.count) == (42, 0, 0)
    assert r.commands == [(wire.CMD_REALTIME, cid, (600).to_bytes(2, "big"))]
    assert (addr, via) == (other, "sock-b")
    assert c.push_pending() == 0 and len(sent) == 1  # pushed once; then with every reply
    out = c.handle(wire.build_keepalive(KEY, DEV, 43), other, "sock-b")
    assert wire.parse(out[0]).commands == r.commands
    assert c.handle(wire.build_done(KEY, DEV, 2, 44, cid, 0), other, "sock-b") == []
    # a device not heard from within the window gets no push (the next keep-alive brings it)
    now[0] += 301
    c.request_realtime(DEV, 60)
    assert len(sent) == 1
    # a command queued by another process (the CLI) is pushed by the poll
    now[0] = 2000.0
    c.handle(wire.build_keepalive(KEY, DEV, 45), other, "sock-b")
    cli = dbsel.open_collector(collector_db)
    cid3 = cli.queue_command(DEV, wire.CMD_OTA, b"x")
    cli.db.close()
    assert c.push_pending() == 1 and [cmd[1] for cmd in wire.parse(sent[-1][0]).commands][-1] == cid3
    t = c.stats()["devices"][DEV]["traffic"]
    assert t["push"]["datagrams"] == 2 and t["keepalive"]["datagrams"] == 4 and t["command"]["datagrams"] == 3
    assert t["push"]["wire_bytes"] == t["push"]["bytes"] + 28 * 2


class _Counting:
    """The store's connection, counting the statements run on it."""

    def __init__(self, db) -> None:
        self._db, self.n = db, 0

    def execute(self, *a):
        self.n += 1
        return self._db.execute(*a)

    def executemany(self, *a):
        self.n += 1
        return self._db.executemany(*a)

    def __getattr__(self, k):
        return getattr(self._db, k)


def test_push_loop_looks_only_at_devices_it_can_push_to(collector_db):
    """The push loop's round (every second, on the datagram thread) with 500 devices that
    have a CLI-queued command and went silent long ago: one statement, not one per device
    (bench/push_loop.py measures 10,000); the one device heard recently is pushed to."""
    now = [1_000_000.0]
    c = make(collector_db, clock=lambda: now[0])
    c.db.execute("BEGIN")
    c.db.executemany(
        "INSERT INTO devices(device_id, key_id, key, seq_top, route_addr, route_at)"
        " VALUES(?,0,?,5,'[\"10.0.0.1\", 1]',?)",
        [(d, KEY, now[0] - 3600) for d in range(1000, 1500)],
    )
    c.db.executemany(
        "INSERT INTO commands(device_id, kind, payload, created) VALUES(?,1,?,0)",
        [(d, b"x") for d in range(1000, 1500)],
    )
    c.db.execute("COMMIT")
    sent: list = []
    c.sender = lambda d, addr, via: sent.append(addr)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 40, 0, 0), ADDR)
    c.db.execute("INSERT INTO commands(device_id, kind, payload, created) VALUES(?,1,?,0)", (DEV, b"y"))
    cnt = _Counting(c.db)
    c.db = cnt
    assert c.push_pending() == 1 and sent == [ADDR]
    assert cnt.n < 20, cnt.n  # the push's own transaction, and one query for the rest
    cnt.n = 0
    assert c.push_pending() == 0 and cnt.n == 1


def test_cli_and_server_over_udp(tmp_path):
    db = tmp_path / "c.db"
    py = sys.executable
    tool = ("-m", "ihd.collector")
    key = subprocess.run([py, *tool, "--db", db, "add-device", str(DEV)], capture_output=True, text=True, check=True)
    key_b = bytes.fromhex(key.stdout.strip())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    srv = subprocess.Popen(
        [py, *tool, "--db", db, "serve", "--listen", f"127.0.0.1:{port}", "--stats-every", "0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert "listening" in srv.stderr.readline()
        out = subprocess.run([py, *tool, "--db", db, "realtime", str(DEV), "--seconds", "60"], capture_output=True)
        assert out.returncode == 0 and b"queued" in out.stdout
        cl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        cl.settimeout(5)
        rng = random.Random(2)
        for _ in range(300):  # garbage first: the server must survive it
            cl.sendto(rng.randbytes(rng.randrange(1, 1300)), ("127.0.0.1", port))
        payload, n = uc.encode(ROWS)
        cl.settimeout(1)
        for seq in range(5, 15):  # the kernel may drop some if the garbage filled its buffer
            cl.sendto(wire.build_data(key_b, DEV, 0, seq, 1, n, 0, payload), ("127.0.0.1", port))
            try:
                r = wire.parse(cl.recv(2000))
                break
            except TimeoutError:
                continue
        assert wire.verify(r, key_b, 0) and (r.first, r.count) == (1, 50)
        assert r.commands and r.commands[0][0] == wire.CMD_REALTIME
        time.sleep(0.2)
        exp = subprocess.run([py, *tool, "--db", db, "export-csv"], capture_output=True, text=True, check=True)
        assert exp.stdout.splitlines()[0].startswith("utc_s,demand_w,")
        assert len(exp.stdout.splitlines()) == 51
        st = subprocess.run([py, *tool, "--db", db, "stats"], capture_output=True, text=True, check=True)
        assert "50 readings" in st.stdout and "rejected:" in st.stdout
        assert srv.poll() is None
    finally:
        srv.terminate()
        srv.wait(10)


# -- identity across state loss, commands (docs/uplink.md, "Identity across state loss") --


def test_other_values_under_a_held_number_are_refused_never_acked(collector_db):
    c = make(collector_db)
    assert wire.parse(c.handle(data(10, 1, ROWS[:30]), ADDR)[0]).count == 30
    other = [(u + 99, d, e, r, f) for u, d, e, r, f in ROWS[:30]]
    payload, n = uc.encode(other)
    out = c.handle(wire.build_data(KEY, DEV, 2, 11, 1, n, 0, payload), ADDR)
    r = wire.parse(out[0])
    assert r.type == wire.T_REFUSE and wire.verify(r, KEY, 0) and (r.echo, r.reason) == (11, wire.R_CONFLICT)
    held = c.db.execute("SELECT seq, utc_s FROM readings ORDER BY seq").fetchall()
    assert held == [(i + 1, ROWS[i][0]) for i in range(30)]  # untouched, nothing half-stored
    # the same readings under a new epoch are stored and acknowledged
    out = c.handle(wire.build_data(KEY, DEV, 2, 12, 1, n, 0, payload, epoch=7), ADDR)
    assert wire.parse(out[0]).count == 30
    assert c.db.execute("SELECT count(*) FROM readings WHERE epoch=7").fetchone()[0] == 30
    assert c.stats()["rejects"]["conflict"] == 1


def test_stale_hello_gets_an_authenticated_refusal_and_the_challenge_resets(collector_db):
    c = make(collector_db)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 5000, 0, 0, nonce=11), ADDR)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 5000, 0, 0, nonce=11), ADDR) == []  # a copy: just dropped
    # a new boot that lost its seqs: refused, bound to its nonce, told where to go
    out = c.handle(wire.build_hello(KEY, DEV, 2, 3, 0, 0, nonce=22), ("10.0.0.9", 1))
    r = wire.parse(out[0])
    assert r.type == wire.T_REFUSE and wire.verify(r, KEY, 22) and not wire.verify(r, KEY, 11)
    assert (r.echo, r.reason, r.min_seq) == (3, wire.R_STALE, 5001) and r.challenge
    assert c.route(DEV)[0] == ADDR and c.window(DEV).top == 5000  # moves nothing
    again = wire.parse(c.handle(wire.build_hello(KEY, DEV, 2, 4, 0, 0, nonce=33), ADDR)[0])
    assert again.challenge == r.challenge  # kept until answered: replays cannot move it
    # the device answers the challenge (as its nonce): the window starts afresh
    ok = wire.parse(c.handle(wire.build_hello(KEY, DEV, 2, 6, 0, 0, nonce=r.challenge), ADDR)[0])
    assert ok.type == wire.T_REPLY and wire.verify(ok, KEY, r.challenge)
    assert c.window(DEV).top == 6 and c._device(DEV)[3:] == (r.challenge, 0)
    assert c.stats()["rejects"]["stale"] == 2


def test_seq_near_2_32_costs_no_internal_error(collector_db):
    c = make(collector_db)
    top = 2**32 - 1
    out = c.handle(wire.build_hello(KEY, DEV, 2, top - 1, 0, 0, nonce=5), ADDR)
    assert wire.parse(out[0]).type == wire.T_REPLY
    c.request_realtime(DEV, 30)
    assert c.handle(wire.build_keepalive(KEY, DEV, top), ADDR)
    assert c.handle(data(top, 1, ROWS[:3]), ADDR) == []  # replay of the top
    out = c.handle(wire.build_hello(KEY, DEV, 2, 9, 0, 0, nonce=6), ADDR)
    assert wire.parse(out[0]).min_seq == top  # never 2^32: the device resets by the challenge
    assert c.errors == 0 and "internal_error" not in c.stats()["rejects"]


def test_new_key_starts_the_window_afresh(collector_db):
    c = make(collector_db)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 90000, 0, 0), ADDR)
    c.add_device(DEV, KEY, 2)  # the same key again: nothing changes
    assert c.handle(wire.build_hello(KEY, DEV, 2, 5, 0, 0), ADDR)[0][0] == wire.T_REFUSE
    key2 = bytes(range(1, 33))
    c.add_device(DEV, key2, 2)
    r = wire.parse(c.handle(wire.build_hello(key2, DEV, 2, 5, 0, 0, nonce=3), ADDR)[0])
    assert r.type == wire.T_REPLY and wire.verify(r, key2, 3)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 90001, 0, 0), ADDR) == []  # the old key: bad tag


def test_commands_lowest_first_capped_per_reply_and_above_the_device_mark(collector_db):
    c = make(collector_db)
    ids = [c.queue_command(DEV, 9, bytes([i])) for i in range(10)]
    r = wire.parse(c.handle(wire.build_hello(KEY, DEV, 2, 1, 0, 0), ADDR)[0])
    assert [x[1] for x in r.commands] == ids[: wire.CMDS_PER_REPLY]
    c.handle(wire.build_done(KEY, DEV, 2, 2, ids[0], 0), ADDR)
    r = wire.parse(c.handle(wire.build_keepalive(KEY, DEV, 3), ADDR)[0])
    assert [x[1] for x in r.commands] == ids[1 : 1 + wire.CMDS_PER_REPLY]
    # a device that ran commands up to 500 (of a collector database since lost):
    # new ids go above its mark, so it cannot take them for ones it ran
    c.handle(wire.build_hello(KEY, DEV, 2, 4, 0, 0, cmd_mark=500), ADDR)
    assert c.queue_command(DEV, 9, b"x") > 500


def test_version_1_database_is_migrated(tmp_path):
    db = sqlite3.connect(tmp_path / "c.db")
    db.executescript(
        """
        CREATE TABLE devices (device_id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, key BLOB NOT NULL,
            seq_top INTEGER NOT NULL DEFAULT -1, bytes_in INTEGER NOT NULL DEFAULT 0,
            bytes_out INTEGER NOT NULL DEFAULT 0, dgrams_in INTEGER NOT NULL DEFAULT 0,
            dgrams_out INTEGER NOT NULL DEFAULT 0, duplicates INTEGER NOT NULL DEFAULT 0,
            last_addr TEXT, last_seen REAL);
        CREATE TABLE readings (device_id INTEGER NOT NULL, seq INTEGER NOT NULL, utc_s INTEGER NOT NULL,
            demand_w INTEGER NOT NULL, delivered_wh INTEGER NOT NULL, received_wh INTEGER NOT NULL,
            flags INTEGER NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
        CREATE TABLE live (device_id INTEGER NOT NULL, seq INTEGER NOT NULL, utc_s INTEGER NOT NULL,
            demand_w INTEGER NOT NULL, received_at REAL NOT NULL, PRIMARY KEY (device_id, seq)) WITHOUT ROWID;
        """
    )
    db.execute("INSERT INTO devices(device_id, key_id, key, seq_top) VALUES(?,?,?,?)", (DEV, 2, KEY, 40))
    db.execute("INSERT INTO readings VALUES(?,?,?,?,?,?,?,?)", (DEV, 1, *ROWS[0], 1.0))
    db.commit()
    db.close()
    c = colmod.Collector(tmp_path / "c.db")
    assert c.db.execute("SELECT epoch, seq, utc_s FROM readings").fetchall() == [(0, 1, ROWS[0][0])]
    assert c._device(DEV) == (2, KEY, 40, 0, 0)
    assert wire.parse(c.handle(data(41, 2, ROWS[1:3]), ADDR)[0]).count == 2


def test_a_hello_mark_near_2_32_cannot_stop_commands_for_the_fleet(collector_db):
    # Any one device's key: a HELLO with cmd_mark 0xFFFFFFFF. Before, the
    # shared command counter went to it, the next command (for any device)
    # got id 2**32, and every reply carrying it failed (struct.error counted
    # internal_error): that device got no ACK and no reply, and the push task
    # died. Now a mark above CMD_MARK_MAX is ignored.
    c = make(collector_db)
    other, okey = 78, bytes(range(1, 33))
    c.add_device(other, okey, 2)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 1, 0, 0, cmd_mark=0xFFFFFFFF), ADDR)
    cid = c.queue_command(other, 9, b"x")
    assert cid < 2**31
    out = c.handle(wire.build_hello(okey, other, 2, 1, 0, 0), ("127.0.0.1", 5556))
    assert len(out) == 1 and [x[1] for x in wire.parse(out[0]).commands] == [cid]
    # a mark within the range still lifts the ids (a collector restored from a backup)
    c.handle(wire.build_hello(KEY, DEV, 2, 2, 0, 0, cmd_mark=1_000_000), ADDR)
    assert c.queue_command(DEV, 9, b"y") > 1_000_000


def test_rolled_back_datagrams_waste_no_reply_numbers(tmp_path):
    # A batch the database cannot store (a value past SQLite's int64) rolls
    # its transaction back. Before, each rollback also dropped the rest of the
    # reply-number block committed earlier (65,536 numbers), so one device
    # alternating HELLO and such batches ran the u32 reply numbers out for
    # the whole fleet in hours. SQLite only: PostgreSQL draws from a sequence.
    c = make(str(tmp_path / "c.db"))
    seq = 1
    for i in range(5):
        assert c.handle(wire.build_hello(KEY, DEV, 2, seq, 0, 0), ADDR)
        assert c.handle(data(seq + 1, 1 + i, [(1_700_000_000, 400, 2**63, 0, 0)]), ADDR) == []
        seq += 2
    block = c.db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()[0]
    assert block == 65536, block  # the first block still serves
    r = wire.parse(c.handle(data(seq, 1, ROWS[:3]), ADDR)[0])
    assert r.seq < 65536


def test_a_replayed_stale_hello_costs_no_transaction_beyond_a_few(collector_db):
    # One captured HELLO (they travel in clear), replayed: before, each copy
    # was a committed transaction and a REFUSE sent to a forgeable address
    # (300 replays: 300 commits, 300 REFUSEs). Now REFUSE_BURST, then one
    # each 1 / REFUSE_RATE s; the rest are counted in memory.
    now = [1000.0]
    c = make(collector_db, clock=lambda: now[0])
    assert c.handle(wire.build_hello(KEY, DEV, 2, 5000, 0, 0, nonce=11), ADDR)
    stale = wire.build_hello(KEY, DEV, 2, 3, 0, 0, nonce=22)
    refused = sum(len(c.handle(stale, ("192.0.2.7", 9))) for _ in range(300))
    assert refused == colmod.REFUSE_BURST, refused
    now[0] += 1 / colmod.REFUSE_RATE
    assert len(c.handle(stale, ("192.0.2.7", 9))) == 1
    st = c.stats()  # (writes the batched reject counts first)
    assert st["devices"][DEV]["traffic"]["refuse"]["datagrams"] == colmod.REFUSE_BURST + 1, st["devices"][DEV]
    assert st["rejects"]["stale_limited"] == 300 - colmod.REFUSE_BURST, st["rejects"]
