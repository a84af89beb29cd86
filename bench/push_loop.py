"""The collector's push loop at fleet size: what one round (flush_rejects + push_pending,
run every second by `serve` on the datagram thread) costs with N devices that each have
a command queued by the CLI and have been silent longer than the push window (offline:
nothing can be pushed), plus the same N with one command already carried (in flight).

    bench/push_loop.py [--devices 10000] [--backend sqlite|postgresql|both] [--rounds 5]

Prints one JSON line: ms per round (median) and SQL statements per round, per backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from ihd.collector import db as collector_db  # noqa: E402

KEY = bytes(range(32))


class _Counting:
    """The store's connection, counting the statements it runs."""

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


def run(spec: str, n: int, rounds: int) -> dict:
    c = collector_db.open_collector(spec, clock=lambda: 1_000_000.0)
    c.db.execute("BEGIN")
    c.db.executemany(
        "INSERT INTO devices(device_id, key_id, key, seq_top, route_addr, route_at)"
        " VALUES(?,0,?,5,'[\"10.0.0.1\", 1]',?)",
        [(d, KEY, 1_000_000.0 - 3600) for d in range(1, n + 1)],
    )
    c.db.executemany(
        "INSERT INTO commands(device_id, kind, payload, created) VALUES(?,1,?,0)",
        [(d, b"\x00\x1e") for d in range(1, n + 1)],
    )
    c.db.executemany(  # in flight: carried by a reply, not done yet
        "INSERT INTO commands(device_id, kind, payload, created, sent) VALUES(?,2,?,0,1)",
        [(d, b"\x00\x1e") for d in range(1, n + 1)],
    )
    c.db.execute("COMMIT")
    c.sender = lambda *a: None
    cnt = _Counting(c.db)
    c.db = cnt
    times = []
    for _ in range(rounds):
        cnt.n = 0
        t = time.perf_counter()
        c.flush_rejects()
        pushed = c.push_pending()
        times.append((time.perf_counter() - t) * 1000)
    return {"ms_per_round": round(statistics.median(times), 2), "statements_per_round": cnt.n, "pushed": pushed}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args(argv)
    if a.devices <= 0 or a.rounds <= 0:
        print("push_loop: --devices and --rounds must be positive", file=sys.stderr)
        return 2
    out: dict = {"devices": a.devices}
    if a.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as d:
            out["sqlite"] = run(str(Path(d) / "c.db"), a.devices, a.rounds)
    if a.backend in ("postgresql", "both"):
        from ihd.dev import pgtmp

        srv = pgtmp.PgServer.start(fast=True)
        try:
            out["postgresql"] = run(srv.new_database(), a.devices, a.rounds)
        finally:
            srv.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
