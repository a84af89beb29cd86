"""The collector at fleet scale: N simulated devices against collector processes.

    .venv/bin/python bench/fleet.py [--devices 1000] [--backend sqlite|postgresql|both]
        [--collectors 1] [--rate 20000] [--seconds 20] [--loss 0.01] [--dup 0.01]
        [--kill-at S]

Registers N devices (each its own key) in a fresh database, starts `--collectors`
`ihd collector serve` processes on loopback ports (PostgreSQL: a throw-away
durable server of tools/ihd/dev/pgtmp.py, fsync on), and plays the devices from one
process (bench/_fleetsim.py): real datagrams of the host wire format and codec,
full batches of 3-second household readings, `--loss` and `--dup` both ways.
The fleet's clock runs fast enough that the devices together produce `--rate`
readings a second (each device one reading every 3 simulated seconds); each
device talks to its shard's collector (tools/ihd/fleet/shards.py when present, else
device id mod collectors) and fails over to the next one after 3 silent attempts.
`--kill-at S` kill -9s collector 0 S seconds into the load and restarts it 2 s later.

After the run the database is read back: every acknowledged reading must be
there (readings_lost), none twice (readings_duplicated). Prints one JSON object
(the last line; with `--backend both` the two runs side by side):
  readings_per_s      readings acknowledged per second of the load window
  datagrams_per_s     datagrams the devices sent (batches, retransmissions,
                      keep-alives, HELLOs) per second
  p50/p99_ack_ms      a datagram's departure to its ACK's arrival
  p99_batch_ms        a batch's first departure to its ACK (retransmissions in)
  cpu_s_per_million_readings  CPU of the collectors (+ the PostgreSQL server)
                      per million acknowledged readings; collector_/db_ split
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BOTH_RUNTIMES = True  # ihd bench: no MicroPython here, run once
ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tools"), str(Path(__file__).resolve().parent)]
from _fleetsim import Dev, Fleet, batch_pool, device_key  # noqa: E402

from ihd.dev import pgtmp  # noqa: E402

try:
    from ihd.fleet import shards as fleet_shards
except ImportError:  # before sharded ingest: device id mod collectors
    fleet_shards = None
PY = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv").exists() else sys.executable
FIRST_ID = 100_000


def cpu_s(pid: int) -> float:
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu_s(postmaster: int) -> float:
    """The server's CPU: the postmaster and every process it started (backends, WAL writer...)."""
    total = cpu_s(postmaster)
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                f = (p / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(f[1]) == postmaster:
                total += (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return total


def register(db: str, ids: list[int], seed: int) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    from ihd.collector import ingest as collector

    opener = getattr(collector, "open_collector", collector.Collector)
    col = opener(db)
    begin = getattr(col, "_begin", lambda: col.db.execute("BEGIN"))
    commit = getattr(col, "_commit", lambda: col.db.execute("COMMIT"))
    begin()
    for dev in ids:
        col.add_device(dev, device_key(seed, dev), 0)
    commit()
    getattr(col, "close", lambda: None)()


def start_collector(db: str, port: int, log: Path) -> subprocess.Popen:
    n = 0
    while log.exists():  # a restarted collector: its own log
        n += 1
        log = log.with_name(f"{log.stem.split('.')[0]}.{n}.log")
    log.touch()
    cmd = [PY, "-m", "ihd.collector", "--db", db, "serve", "--listen", f"127.0.0.1:{port}"]
    p = subprocess.Popen(cmd + ["--stats-every", "0"], stderr=open(log, "ab"), stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "listening on" in log.read_text(errors="replace"):
            return p
        if p.poll() is not None:
            raise SystemExit(f"fleet: collector on port {port} exited: {log.read_text()[-1500:]}")
        time.sleep(0.05)
    raise SystemExit(f"fleet: collector on port {port} not listening after 120 s")


def db_bytes_per_reading(db: str) -> float:
    """Bytes on disk per stored reading: the readings table with its index (PostgreSQL:
    every partition), the whole file for SQLite (its other tables are small)."""
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as c:
            size = c.execute(
                "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent='readings'::regclass"
            ).fetchone()[0]
            n = c.execute("SELECT count(*) FROM readings").fetchone()[0]
    else:
        c = sqlite3.connect(db, timeout=30)
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = c.execute("PRAGMA page_count").fetchone()[0] * c.execute("PRAGMA page_size").fetchone()[0]
        n = c.execute("SELECT count(*) FROM readings").fetchone()[0]
        c.close()
    return round(int(size or 0) / max(n, 1), 1)


def stored(db: str, acked: dict[int, int]) -> tuple[int, int]:
    """(acknowledged readings missing, readings held twice) in the database."""
    rows = [(dev, top) for dev, top in acked.items()]
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db) as c:
            c.execute("CREATE TEMP TABLE acked (device_id bigint, top bigint)")
            with c.cursor().copy("COPY acked FROM STDIN") as cp:
                for r in rows:
                    cp.write_row(r)
            have = c.execute(
                "SELECT coalesce(sum(a.top),0) - (SELECT count(*) FROM readings r JOIN acked a USING (device_id)"
                " WHERE r.epoch=1 AND r.seq <= a.top) FROM acked a"
            ).fetchone()[0]
            dup = c.execute(
                "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT device_id, epoch, seq FROM readings) s)"
                " FROM readings"
            ).fetchone()[0]
        return int(have), int(dup)
    c = sqlite3.connect(db.removeprefix("sqlite:"), timeout=30)
    c.execute("CREATE TEMP TABLE acked (device_id INTEGER PRIMARY KEY, top INTEGER)")
    c.executemany("INSERT INTO acked VALUES (?,?)", rows)
    have = c.execute(
        "SELECT coalesce(sum(a.top),0) - (SELECT count(*) FROM readings r JOIN acked a USING (device_id)"
        " WHERE r.epoch=1 AND r.seq <= a.top) FROM acked a"
    ).fetchone()[0]
    dup = c.execute(
        "SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT device_id, epoch, seq FROM readings)) FROM readings"
    ).fetchone()[0]
    c.close()  # (open, its transaction kept the checkpoint below waiting)
    return int(have), int(dup)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(p * len(s)))], 1)


def run_one(a, backend: str, pool, tmp: Path) -> dict:
    srv = None
    if backend == "postgresql":
        srv = pgtmp.PgServer.start(tmp / "pg")  # durable: fsync on, as in production
        db = srv.new_database("fleet")
    else:
        db = str(tmp / "fleet.sqlite")
    ids = list(range(FIRST_ID, FIRST_ID + a.devices))
    t = time.monotonic()
    register(db, ids, a.seed)
    reg_s = time.monotonic() - t
    ports = [pgtmp.free_port() for _ in range(a.collectors)]
    if fleet_shards is not None:
        smap = fleet_shards.ShardMap([("127.0.0.1", p) for p in ports])
        endpoints = {d: smap.endpoints(d) for d in ids}
    else:
        endpoints = {d: [("127.0.0.1", ports[(d + i) % len(ports)]) for i in range(len(ports))] for d in ids}
    logs = [tmp / f"collector{i}.log" for i in range(a.collectors)]
    procs = [start_collector(db, p, lg) for p, lg in zip(ports, logs, strict=True)]
    postmaster = int((srv.folder / "data" / "postmaster.pid").read_text().split()[0]) if srv else 0
    devs = [Dev(d, device_key(a.seed, d), i * 7, 0) for i, d in enumerate(ids)]
    speed = a.rate * 3 / a.devices
    fleet = Fleet(devs, endpoints, pool, speed, a.loss, a.dup, a.seed)
    kills = []

    async def go():
        loop = asyncio.get_running_loop()
        tr, _ = await loop.create_datagram_endpoint(lambda: fleet, local_addr=("127.0.0.1", 0))
        tr.get_extra_info("socket").setsockopt(__import__("socket").SOL_SOCKET, 8, 8 << 20)  # SO_RCVBUF

        def kill():
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            kills.append(time.monotonic())
            loop.call_later(2.0, restart)

        def restart():
            procs[0] = start_collector(db, ports[0], logs[0])
            kills.append(time.monotonic())

        res = {}

        async def measure():
            res.update(await fleet.run(a.seconds, a.drain))

        task = asyncio.ensure_future(measure())
        await fleet.load_started.wait()
        if a.kill_at:
            loop.call_later(a.kill_at, kill)
        await task
        tr.close()
        return res

    cpu0 = [cpu_s(p.pid) for p in procs]
    db0 = pg_cpu_s(postmaster) if srv else 0.0
    gen0 = time.process_time()
    r = asyncio.run(go())
    ccpu = sum(cpu_s(p.pid) for p in procs) - sum(cpu0)
    dcpu = (pg_cpu_s(postmaster) - db0) if srv else 0.0
    gcpu = time.process_time() - gen0
    for p in procs:
        p.send_signal(signal.SIGINT)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    lost, dup = stored(db, {d.id: d.first - 1 for d in devs})
    bpr = db_bytes_per_reading(db)
    # a killed collector's devices: answered again after its restart (by it or by the one they failed over to)
    mine = [d for d in devs if endpoints[d.id][0] == ("127.0.0.1", ports[0])]
    again = sum(1 for d in mine if d.acked_at > kills[-1]) if kills else 0
    if srv:
        srv.stop()
    window = r["t1"] - r["t0"]
    in_window = sum(n for t, n in fleet.acks if r["t0"] <= t <= r["t1"])
    acked = fleet.c["acked_readings"]
    return {
        "backend": backend,
        "devices": a.devices,
        "collectors": a.collectors,
        "seconds": round(window, 1),
        "offered_readings_per_s": a.rate,
        "readings_per_s": round(in_window / window),
        "datagrams_per_s": round(fleet.c["datagrams"] / (window + r["drain_s"])),
        "readings_acked": acked,
        "readings_lost": lost,
        "readings_duplicated": dup,
        "batches_unacked_at_end": sum(1 for d in devs if d.fly is not None),
        "batches_due_unsent_at_end": sum(max(d.due, 0) for d in devs),
        "p50_ack_ms": pct(fleet.ack_ms, 0.5),
        "p99_ack_ms": pct(fleet.ack_ms, 0.99),
        "p99_batch_ms": pct(fleet.batch_ms, 0.99),
        "cpu_s_per_million_readings": round((ccpu + dcpu) / max(acked, 1) * 1e6, 1),
        "collector_cpu_s_per_million_readings": round(ccpu / max(acked, 1) * 1e6, 1),
        "db_cpu_s_per_million_readings": round(dcpu / max(acked, 1) * 1e6, 1),
        "generator_cpu_s": round(gcpu, 1),
        "db_bytes_per_reading": bpr,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "retransmits_during_load": fleet.c["retransmits"] - fleet.c_at_load["retransmits"],
        "readings_per_batch": round(acked / max(fleet.c["acked_batches"], 1)),
        "loss": a.loss,
        "dup": a.dup,
        "kills": len(kills) // 2,
        "killed_collector_devices": len(mine),
        "killed_collector_devices_acked_after_restart": again,
        "register_s": round(reg_s, 1),
        "hello_s": round(r["hello_s"], 1),
        **{k: v for k, v in fleet.c.items() if k not in ("acked_readings",)},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--collectors", type=int, default=1)
    ap.add_argument("--rate", type=float, default=20000, help="readings a second the fleet produces")
    ap.add_argument("--seconds", type=float, default=20, help="load window (s)")
    ap.add_argument("--drain", type=float, default=15, help="wait for batches in flight at the end (s)")
    ap.add_argument("--loss", type=float, default=0.01)
    ap.add_argument("--dup", type=float, default=0.01)
    ap.add_argument("--kill-at", type=float, default=0, help="kill -9 collector 0 this many s into the load")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--households", type=int, default=2, help="households whose days make the batches")
    a = ap.parse_args(argv)
    if a.devices < 1 or a.collectors < 1 or a.rate <= 0 or a.seconds <= 0:
        print("fleet: --devices, --collectors, --rate and --seconds must be positive", file=sys.stderr)
        return 2
    t = time.monotonic()
    pool = batch_pool(max(1, a.households))
    print(f"fleet: {len(pool)} batches of readings encoded in {time.monotonic() - t:.1f} s", file=sys.stderr)
    runs = []
    try:
        for backend in ("sqlite", "postgresql") if a.backend == "both" else (a.backend,):
            with tempfile.TemporaryDirectory(prefix="ihd-fleet-") as tmp:
                os.chmod(tmp, 0o755)
                runs.append(run_one(a, backend, pool, Path(tmp)))
                print(f"fleet: {json.dumps(runs[-1])}", file=sys.stderr)
    except pgtmp.PgError as e:
        print(f"fleet: {e}", file=sys.stderr)
        return 2
    if len(runs) == 1:
        print(json.dumps(runs[0]))
    else:
        side = {f"{r['backend']}_{k}": v for r in runs for k, v in r.items() if k != "backend"}
        keys = ("readings_per_s", "p99_ack_ms", "cpu_s_per_million_readings", "db_bytes_per_reading")
        pairs = {f"postgresql_{k}": f"sqlite_{k}" for k in keys}  # ihd bench: PostgreSQL beside SQLite
        print(
            json.dumps(
                {"backend": "both", "devices": a.devices, "collectors": a.collectors, **side, "baselines": pairs}
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
