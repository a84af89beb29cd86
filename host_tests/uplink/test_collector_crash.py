"""The collector killed with SIGKILL at each point of a datagram's life (inside its
transaction, committed but the reply not sent, reply sent) and started again:
nothing acknowledged is lost, a replay of the datagrams it took is refused, a
replayed HELLO is refused and moves neither the route nor the boot, and a
command queued afterwards is pushed to the device's real address
(docs/uplink.md, "Persistence and limits")."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import db as dbsel  # noqa: E402
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

RUNTIMES = ()  # no MicroPython here
TOOL = ("-m", "ihd.collector")
KEY = bytes(range(32))
DEV = 4242
ROWS = [(1_700_000_000 + 3 * i, 300 + (i * 13) % 7, 5000 + i // 4, 0, 7) for i in range(50)]


def _sock() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.05)
    return s


def _serve(db: str, port: int, kill: str | None = None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("IHD_COLLECTOR_KILL", None)
    if kill:
        env["IHD_COLLECTOR_KILL"] = kill
    cmd = [sys.executable, *TOOL, "--db", str(db), "serve", "--listen", f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd + ["--stats-every", "0", "--poll", "0.05"], env=env, stderr=subprocess.PIPE, text=True)
    assert "listening" in p.stderr.readline()
    return p


def _recv(s: socket.socket, wait: float, n: int = 0) -> list[bytes]:
    """What arrives within `wait` seconds (or the first n datagrams)."""
    out, end = [], time.monotonic() + wait
    while time.monotonic() < end and not (n and len(out) >= n):
        try:
            out.append(s.recv(2000))
        except TimeoutError:
            pass
    return out


def _data(seq: int, first: int, rows) -> bytes:
    payload, n = uc.encode(rows)
    return wire.build_data(KEY, DEV, 0, seq, first, n, 0, payload, epoch=5)


@pytest.mark.parametrize("point", ["in_txn", "committed", "sent"])
def test_kill_9_then_replays_are_refused_and_the_route_stays(collector_db, point):
    db = collector_db  # SQLite and PostgreSQL (host_tests/pg_plugin.py)
    c = dbsel.open_collector(db)
    c.add_device(DEV, KEY, 0)
    c.db.close()
    probe = _sock()
    port = probe.getsockname()[1]
    probe.close()
    dev, atk = _sock(), _sock()  # the device, and a replayer elsewhere
    to = ("127.0.0.1", port)
    hello = wire.build_hello(KEY, DEV, 0, 100, 0, 0, epoch=5, nonce=7)
    d1, d2 = _data(101, 1, ROWS[:30]), _data(102, 31, ROWS[30:])
    # Killed the 3rd time a datagram reaches the point: while handling d2 (the
    # collector's test hook); after the ACK has left, the test kills it itself.
    srv = _serve(db, port, None if point == "sent" else f"{point}:3")
    acked = set()
    try:
        for dgram in (hello, d1, d2):
            dev.sendto(dgram, to)
            for r in _recv(dev, 0.5 if point == "sent" or dgram is not d2 else 0.1, n=1):
                p = wire.parse(r)
                acked.update(range(p.first, p.first + p.count))
        if point == "sent":
            srv.kill()
        assert srv.wait(10) == -9
    finally:
        srv.kill()
    assert acked == set(range(1, 51 if point == "sent" else 31))
    srv = _serve(db, port)
    try:
        if point != "sent":  # the device sends its unacknowledged batch again, with a new seq
            dev.sendto(_data(103, 31, ROWS[30:]), to)
            p = wire.parse(_recv(dev, 1, n=1)[0])
            assert (p.first, p.count) == (31, 20)
        # Everything the device sent, replayed from another address, and its HELLO again
        committed = [hello, d1] if point == "in_txn" else [hello, d1, d2]
        for dgram in committed + [hello]:
            atk.sendto(dgram, to)
        assert _recv(atk, 0.3) == []  # refused: no ACK, no HELLO reply
        if point == "in_txn":  # d2 was never committed: late, taken, but it moves no route
            atk.sendto(d2, to)
            _recv(atk, 0.2)
        q = subprocess.run([sys.executable, *TOOL, "--db", str(db), "realtime", str(DEV)], capture_output=True)
        assert q.returncode == 0
        pushed = _recv(dev, 1.0, n=1)  # the push goes where the device really is
        assert pushed and wire.parse(pushed[0]).commands and wire.verify(wire.parse(pushed[0]), KEY, 7)
        assert _recv(atk, 0.1) == []
    finally:
        srv.terminate()
        srv.wait(10)
    db2 = dbsel.open_collector(db).db
    got = db2.execute("SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings ORDER BY seq")
    assert got.fetchall() == [(i + 1, *ROWS[i]) for i in range(50)]  # nothing acknowledged lost, nothing twice
    nonce, route = db2.execute("SELECT nonce, route_addr FROM devices WHERE device_id=?", (DEV,)).fetchone()
    assert nonce == 7 and str(dev.getsockname()[1]) in route
    replays = db2.execute("SELECT count FROM rejects WHERE reason='replay' AND device_id=?", (DEV,)).fetchone()
    assert replays[0] == len(committed) + 1
