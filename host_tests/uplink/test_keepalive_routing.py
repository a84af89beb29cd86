"""Keep-alives and routing (docs/uplink.md, "Keep-alive and routing"): a guessed
keep-alive costs the collector no memory and fits one device only; even one
that matched could neither desynchronise the device (its own keep-alives and
batches are still taken) nor keep its pushes; the route moves only on
authenticated contact, to the newest datagram; the collector holds no
per-device memory."""

from __future__ import annotations

import random
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from test_collector import ADDR, DEV, KEY, ROWS, data, make  # noqa: E402

from ihd.collector import ingest as colmod  # noqa: E402
from ihd.uplink import wire  # noqa: E402

RUNTIMES = ()  # no MicroPython here
EVIL = ("203.0.113.66", 4444)


def _pushed_to(c: colmod.Collector) -> list:
    sent: list = []
    c.sender = lambda d, addr, via: sent.append(addr)
    c.request_realtime(DEV, 30)
    return sent


def test_guessed_keepalives_cost_nothing_and_move_nothing(tmp_path):
    c = make(str(tmp_path / "c.db"))
    assert c.handle(wire.build_hello(KEY, DEV, 2, 1000, 0, 0, nonce=3), ADDR)
    rng = random.Random(9)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(20000):
        dev = DEV if i % 2 else rng.randrange(2**32)  # the real device's id, and any other
        assert c.handle(dev.to_bytes(4, "big") + rng.randbytes(5), EVIL) == []
    grew = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grew < 64 * 1024, grew
    rej = c.stats()["rejects"]
    assert rej["bad_keepalive"] + rej["unknown_device"] == 20000
    assert c.route(DEV)[0] == ADDR and c.window(DEV).top == 1000
    assert _pushed_to(c) == [ADDR]


def test_a_matching_keepalive_from_elsewhere_cannot_desynchronise_the_device(collector_db):
    # Suppose a forger's keep-alive matched (2^-32 a guess): the one for seq top + 30.
    now = [100.0]
    c = make(collector_db, clock=lambda: now[0])
    assert c.handle(wire.build_hello(KEY, DEV, 2, 1000, 0, 0, nonce=3), ADDR)
    assert c.handle(wire.build_keepalive(KEY, DEV, 1030), EVIL) == []
    assert c.window(DEV).top == 1000  # the window did not move
    # The device carries on from 1001: every keep-alive and its next batch are taken
    # (before, the hit moved the window to 1030 and the index on with it: the
    # device's keep-alives 1001..1029 were bad_keepalive until a HELLO, hours later).
    for s in range(1001, 1006):
        now[0] += 180
        c.handle(wire.build_keepalive(KEY, DEV, s), ADDR)
    assert c.route(DEV)[0] == ADDR  # its next keep-alive took the route back
    assert wire.parse(c.handle(data(1006, 1, ROWS[:10]), ADDR)[0]).count == 10
    assert c.stats()["devices"][DEV]["traffic"]["keepalive"]["datagrams"] == 6
    assert "bad_keepalive" not in c.stats()["rejects"]
    assert c.handle(wire.build_keepalive(KEY, DEV, 1030), EVIL) == []  # and it cannot be replayed
    assert c.route(DEV)[0] == ADDR and _pushed_to(c) == [ADDR]


def test_route_moves_only_on_authenticated_contact_and_to_the_newest(collector_db):
    c = make(collector_db)
    hello = wire.build_hello(KEY, DEV, 2, 50, 0, 0, nonce=3)
    ka = wire.build_keepalive(KEY, DEV, 51)
    d = data(52, 1, ROWS[:5])
    for dgram in (hello, ka, d):
        assert c.handle(dgram, ADDR) or dgram is ka
    late = data(49, 6, ROWS[5:8])  # an older datagram of the device, delivered late from elsewhere
    assert c.handle(late, EVIL)  # taken (and ACKed) ...
    assert c.route(DEV)[0] == ADDR  # ... but it is not the newest: the route stays
    forged = bytearray(data(60, 1, ROWS[:5]))
    forged[-1] ^= 1
    for dgram in (hello, ka, d, bytes(forged), wire.build_hello(bytes(32), DEV, 2, 61, 0, 0)):
        assert c.handle(dgram, EVIL) == []
    assert c.route(DEV)[0] == ADDR and _pushed_to(c) == [ADDR]


def test_a_late_keepalive_does_not_move_the_route(collector_db):
    """Keep-alive 1001 leaves through the old NAT mapping, 1002 through the new one and
    arrives first; 1001, late, is taken but the route stays on the newer address."""
    old, new = ("198.51.100.7", 40001), ("198.51.100.7", 40002)
    c = make(collector_db)
    assert c.handle(wire.build_hello(KEY, DEV, 2, 1000, 0, 0, nonce=3), old)
    c.handle(wire.build_keepalive(KEY, DEV, 1002), new)
    assert c.route(DEV)[0] == new
    c.handle(wire.build_keepalive(KEY, DEV, 1001), old)  # late
    assert c.route(DEV)[0] == new and _pushed_to(c) == [new]
    assert c.stats()["devices"][DEV]["traffic"]["keepalive"]["datagrams"] == 2  # taken all the same
    c.handle(wire.build_keepalive(KEY, DEV, 1003), old)  # the device's next one moves it again
    assert c.route(DEV)[0] == old


def test_collector_memory_per_device_is_constant(tmp_path):
    c = colmod.Collector(tmp_path / "c.db")
    n = 1000
    for dev in range(1, n + 1):
        c.add_device(dev, KEY, 0)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for dev in range(1, n + 1):
        c.handle(wire.build_hello(KEY, dev, 0, 10, 0, 0, nonce=1), ADDR)
        c.handle(wire.build_keepalive(KEY, dev, 11), ADDR)
    grew = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    # before: 64 keep-alive tokens a device in an index, ~9.5 KB each (190 MB for 20,000)
    assert grew < 64 * 1024, f"{grew / n:.0f} bytes a device"
