"""Two collector processes (`ihd collector serve`) on one PostgreSQL database, a device's
stale HELLO reaching both at once (a failover overlap): at most one challenge is made,
so the device's answer to either REFUSE restarts its window (tools/ihd/collector/pg.py,
the device row lock; docs/fleet.md "Two collectors, one device")."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import db as collector_db  # noqa: E402
from ihd.dev import pgtmp  # noqa: E402
from ihd.uplink import wire  # noqa: E402

pytest.importorskip("psycopg", reason="psycopg is not installed: `make venv` installs requirements.txt")
RUNTIMES = ()  # no MicroPython here
KEY = bytes(range(32))
DEVS = range(300, 320)


def _serve(db: str, port: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "ihd.collector", "--db", db, "serve", "--listen", f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd + ["--stats-every", "0"], stderr=subprocess.PIPE, text=True)
    assert "listening" in p.stderr.readline()
    return p


def test_two_collector_processes_make_one_challenge(pg_url):
    c = collector_db.open_collector(pg_url)
    for dev in DEVS:
        c.add_device(dev, KEY)
        assert c.handle(wire.build_hello(KEY, dev, 0, 500, 0, 0, nonce=6), ("127.0.0.1", 9))
    ports = [pgtmp.free_port(), pgtmp.free_port()]
    procs = [_serve(pg_url, p) for p in ports]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(1.0)
    try:
        split = []
        for dev in DEVS:
            stale = wire.build_hello(KEY, dev, 0, 3, 0, 0, nonce=7)  # a device that lost its numbers
            for p in ports:
                s.sendto(stale, ("127.0.0.1", p))
            got = set()
            try:
                for _ in ports:
                    r = wire.parse(s.recv(2048))
                    assert r.type == wire.T_REFUSE and r.device_id == dev
                    got.add(r.challenge)
                    s.settimeout(0.05)
            except TimeoutError:
                pass
            s.settimeout(1.0)
            held = c.db.execute("SELECT challenge FROM devices WHERE device_id=?", (dev,)).fetchone()[0]
            assert got, dev
            if got != {held}:
                split.append((dev, got, held))
    finally:
        for p in procs:
            p.terminate()
            p.wait(5)
        s.close()
    assert split == [], f"{len(split)} of {len(DEVS)} devices got a challenge the database does not hold"
