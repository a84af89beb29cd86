"""The collector's SQLite side: schema, readings and live rows, the command queue,
per-device byte, datagram, traffic-kind and reject accounting, reply sequence
numbers, and the reports built from them (stats, CSV export).

No protocol logic here: tools/collector.py decides what a datagram means and
calls these methods inside its own transactions. Everything lives in one
database (WAL) so the CLI and a running `serve` talk through it.
"""

from __future__ import annotations

import ast
import csv
import functools
import sqlite3
from pathlib import Path

import uplink_wire as wire

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, key BLOB NOT NULL,
    seq_top INTEGER NOT NULL DEFAULT -1,
    nonce INTEGER NOT NULL DEFAULT 0, challenge INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0,
    dgrams_in INTEGER NOT NULL DEFAULT 0, dgrams_out INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0, last_addr TEXT, last_seen REAL);
CREATE TABLE IF NOT EXISTS readings (
    device_id INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, utc_s INTEGER NOT NULL,
    demand_w INTEGER NOT NULL, delivered_wh INTEGER NOT NULL, received_wh INTEGER NOT NULL,
    flags INTEGER NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (device_id, epoch, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS live (
    device_id INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, utc_s INTEGER NOT NULL,
    demand_w INTEGER NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (device_id, epoch, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS commands (
    cmd_id INTEGER PRIMARY KEY AUTOINCREMENT, device_id INTEGER NOT NULL,
    kind INTEGER NOT NULL, payload BLOB NOT NULL, created REAL NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0, done REAL, status INTEGER);
CREATE TABLE IF NOT EXISTS rejects (
    device_id INTEGER NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (device_id, reason));
CREATE TABLE IF NOT EXISTS traffic (
    device_id INTEGER NOT NULL, kind TEXT NOT NULL, datagrams INTEGER NOT NULL, bytes INTEGER NOT NULL,
    PRIMARY KEY (device_id, kind)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS health (
    device_id INTEGER NOT NULL, received_utc REAL NOT NULL, seq INTEGER,
    version TEXT, build TEXT, faults TEXT NOT NULL DEFAULT '', reset_cause TEXT, boot_count INTEGER,
    heap_min INTEGER, store_fill_pct REAL, store_health TEXT, meter_lqi INTEGER, wifi_rssi INTEGER,
    ota_state TEXT);
CREATE INDEX IF NOT EXISTS health_by_device ON health (device_id, received_utc);
"""
# Schema versions (meta 'schema'): 2 = wire version 2 (below); 3 adds the
# `health` table (HEALTH datagrams, docs/console.md "health table contract").
# Opening an older database brings it to the current version.
SCHEMA_VERSION = 3
HEALTH_KEEP = 2000  # health rows kept per device, newest (~4 a day plus fault changes: over a year)
FAULTS_PY = Path(__file__).resolve().parent.parent / "firmware" / "faults.py"


@functools.cache
def fault_codes() -> dict[int, str]:
    """{fault number: code} from firmware/faults.py's TABLE (parsed, never imported)."""
    tree = ast.parse(FAULTS_PY.read_text())
    nums = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and node.value.args:
            arg = node.value.args[0]
            if isinstance(arg, ast.Constant) and isinstance(node.targets[0], ast.Name):
                nums[node.targets[0].id] = arg.value
    codes = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "TABLE":
            for row in node.value.elts:  # type: ignore[attr-defined]
                codes[nums[row.elts[0].id]] = row.elts[1].value
    return codes


# Wire version 2 (docs/wire-format.md): readings and live rows are keyed by
# (device, epoch, seq) and devices carry the boot nonce, the outstanding
# challenge and the epoch of the latest HELLO. A version-1 database is
# migrated when opened: its readings become epoch 0.
_MIGRATE = """
ALTER TABLE devices ADD COLUMN nonce INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN challenge INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN epoch INTEGER NOT NULL DEFAULT 0;
ALTER TABLE readings RENAME TO readings_v1;
ALTER TABLE live RENAME TO live_v1;
"""
_COPY = """
INSERT INTO readings SELECT device_id, 0, seq, utc_s, demand_w, delivered_wh, received_wh, flags, received_at
    FROM readings_v1;
INSERT INTO live SELECT device_id, 0, seq, utc_s, demand_w, received_at FROM live_v1;
DROP TABLE readings_v1;
DROP TABLE live_v1;
"""
# Reply sequence numbers reserved per database write: a restarted collector
# starts past the last block, so it never reuses a number (the device's replay
# window would drop the reply).
SEQ_BLOCK = 65536
# Traffic kinds (table `traffic`: what each byte of the day was for): in,
# data, data_repeat (every reading held already: a retransmission after a lost
# or late ACK), realtime, keepalive, hello, done; out, ack, hello_reply,
# command (a reply carrying commands), push (a command sent unasked).


class Store:
    """One SQLite database; the collector's protocol state lives in its subclass."""

    def __init__(self, db_path: str | Path) -> None:
        self.db = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(devices)")]
        if cols and "nonce" not in cols:
            self.db.executescript("BEGIN;" + _MIGRATE + SCHEMA + _COPY + "COMMIT;")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
        self.seq = self.reserved = 0

    # -- devices and commands --------------------------------------------------
    def _devices(self) -> list[tuple[int, bytes, int]]:
        return [(d, bytes(k), t) for d, k, t in self.db.execute("SELECT device_id, key, seq_top FROM devices")]

    def _device(self, device_id: int) -> tuple[int, bytes, int, int, int] | None:
        """(key_id, key, seq_top, nonce, challenge) of a registered device, else None."""
        row = self.db.execute(
            "SELECT key_id, key, seq_top, nonce, challenge FROM devices WHERE device_id=?", (device_id,)
        ).fetchone()
        return None if row is None else (row[0], bytes(row[1]), row[2], row[3], row[4])

    def _upsert_device(self, device_id: int, key: bytes, key_id: int) -> int:
        """Register a device or change its key; returns its replay-window top. A new key
        (re-provisioning) starts the window, boot nonce and challenge afresh: nothing
        tagged with the old key verifies any more, so there is nothing left to replay."""
        self.db.execute(
            "INSERT INTO devices(device_id, key_id, key) VALUES(?,?,?) "
            "ON CONFLICT(device_id) DO UPDATE SET key_id=excluded.key_id, key=excluded.key, "
            "seq_top=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN seq_top ELSE -1 END, "
            "nonce=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN nonce ELSE 0 END, "
            "challenge=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN challenge ELSE 0 END",
            (device_id, key_id, key),
        )
        return self.db.execute("SELECT seq_top FROM devices WHERE device_id=?", (device_id,)).fetchone()[0]

    def _set_boot(self, device_id: int, nonce: int, epoch: int, cmd_mark: int) -> None:
        """An accepted HELLO: replies are bound to its nonce from now on; command ids go above cmd_mark."""
        self.db.execute("UPDATE devices SET nonce=?, epoch=?, challenge=0 WHERE device_id=?", (nonce, epoch, device_id))
        row = self.db.execute("SELECT seq FROM sqlite_sequence WHERE name='commands'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO sqlite_sequence(name, seq) VALUES('commands', ?)", (cmd_mark,))
        elif row[0] < cmd_mark:
            self.db.execute("UPDATE sqlite_sequence SET seq=? WHERE name='commands'", (cmd_mark,))

    def _set_challenge(self, device_id: int, challenge: int) -> None:
        self.db.execute("UPDATE devices SET challenge=? WHERE device_id=?", (challenge, device_id))

    def _insert_command(self, device_id: int, kind: int, payload: bytes, now: float) -> int:
        cur = self.db.execute(
            "INSERT INTO commands(device_id, kind, payload, created) VALUES(?,?,?,?)",
            (device_id, kind, bytes(payload), now),
        )
        return int(cur.lastrowid or 0)

    def _unsent_devices(self) -> list[int]:
        """Devices with a command that no reply has carried yet."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT device_id FROM commands WHERE sent=0 AND done IS NULL")]

    def _pending(self, device_id: int) -> list[tuple[int, int, bytes]]:
        """[(kind, cmd_id, payload)] not done yet, lowest id first, at most CMDS_PER_REPLY and
        as many as fit one reply. Lowest first is what lets the device keep a single mark
        of what it ran (firmware/uplink/state.py CmdLog): it never sees a command before
        every lower one of the same device is done or in the same reply."""
        room = wire.MAX_DGRAM - wire.REPLY_HEAD - wire.TAG
        out: list[tuple[int, int, bytes]] = []
        for cid, kind, payload in self.db.execute(
            "SELECT cmd_id, kind, payload FROM commands WHERE device_id=? AND done IS NULL ORDER BY cmd_id LIMIT ?",
            (device_id, wire.CMDS_PER_REPLY),
        ):
            need = 7 + len(payload)
            if need > room:
                break
            room -= need
            out.append((kind, cid, bytes(payload)))
        return out

    def _in_flight(self, cmds: list[tuple[int, int, bytes]]) -> bool:
        """Any of these commands already carried by a reply (and not done)."""
        if not cmds:
            return False
        q = "SELECT count(*) FROM commands WHERE sent>0 AND cmd_id IN (%s)" % ",".join("?" * len(cmds))
        return self.db.execute(q, [c[1] for c in cmds]).fetchone()[0] > 0

    def _mark_sent(self, cmds: list[tuple[int, int, bytes]]) -> None:
        self.db.executemany("UPDATE commands SET sent=sent+1 WHERE cmd_id=?", [(c[1],) for c in cmds])

    def _mark_done(self, device_id: int, cmd_id: int, status: int, now: float) -> None:
        self.db.execute(
            "UPDATE commands SET done=?, status=? WHERE cmd_id=? AND device_id=? AND done IS NULL",
            (now, status, cmd_id, device_id),
        )

    def _store_health(self, device_id: int, seq: int, h: dict, now: float) -> None:
        """One health report (a row each, its history bounded to HEALTH_KEEP per device)."""
        codes = fault_codes()
        faults = ",".join(codes.get(n, str(n)) for n in h["fault_numbers"])
        self.db.execute(
            "INSERT INTO health (device_id, received_utc, seq, version, build, faults, reset_cause, boot_count,"
            " heap_min, store_fill_pct, store_health, meter_lqi, wifi_rssi, ota_state)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                device_id,
                now,
                seq,
                h["version"],
                h["build"],
                faults,
                h["reset_cause"],
                h["boot_count"],
                h["heap_min"],
                h["store_fill_pct"],
                h["store_health"],
                h["meter_lqi"],
                h["wifi_rssi"],
                h["ota_state"],
            ),
        )
        self.db.execute(
            "DELETE FROM health WHERE device_id=? AND rowid NOT IN"
            " (SELECT rowid FROM health WHERE device_id=? ORDER BY received_utc DESC, rowid DESC LIMIT ?)",
            (device_id, device_id, HEALTH_KEEP),
        )

    # -- readings ----------------------------------------------------------------
    def _store_live(self, device_id: int, epoch: int, first: int, rows, now: float) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO live VALUES(?,?,?,?,?,?)",
            [(device_id, epoch, first + i, r[0], r[1], now) for i, r in enumerate(rows)],
        )

    def _conflicts(self, device_id: int, epoch: int, first: int, rows) -> int:
        """How many of a batch's readings are held with another value under the same
        (device, epoch, seq): such a batch must be refused, never stored nor ACKed."""
        held = self.db.execute(
            "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings "
            "WHERE device_id=? AND epoch=? AND seq BETWEEN ? AND ?",
            (device_id, epoch, first, first + len(rows) - 1),
        ).fetchall()
        return sum(1 for s, *v in held if tuple(v) != tuple(rows[s - first]))

    def _store_readings(self, device_id: int, epoch: int, first: int, rows, now: float) -> int:
        """Insert a batch keyed by (device, epoch, seq); returns how many were held already
        (with the same values: the caller checked _conflicts first)."""
        before = self.db.total_changes
        self.db.executemany(
            "INSERT OR IGNORE INTO readings VALUES(?,?,?,?,?,?,?,?,?)",
            [(device_id, epoch, first + i, *r, now) for i, r in enumerate(rows)],
        )
        dups = len(rows) - (self.db.total_changes - before)
        if dups:
            self.db.execute("UPDATE devices SET duplicates=duplicates+? WHERE device_id=?", (dups, device_id))
        return dups

    # -- accounting ----------------------------------------------------------------
    def _reject(self, device_id: int, reason: str) -> None:
        self.db.execute(
            "INSERT INTO rejects VALUES(?,?,1) ON CONFLICT(device_id, reason) DO UPDATE SET count=count+1",
            (device_id, reason),
        )

    def _count(self, device_id: int, kind: str, nbytes: int) -> None:
        self.db.execute(
            "INSERT INTO traffic VALUES(?,?,1,?) ON CONFLICT(device_id, kind) "
            "DO UPDATE SET datagrams=datagrams+1, bytes=bytes+excluded.bytes",
            (device_id, kind, nbytes),
        )

    def _account_in(self, device_id: int, top: int, nin: int, nout: int, dgrams_out: int, addr, now: float) -> None:
        """One authentic datagram in and its replies out; the replay-window top persists with it."""
        self.db.execute(
            "UPDATE devices SET seq_top=?, bytes_in=bytes_in+?, bytes_out=bytes_out+?, dgrams_in=dgrams_in+1, "
            "dgrams_out=dgrams_out+?, last_addr=?, last_seen=? WHERE device_id=?",
            (top, nin, nout, dgrams_out, str(addr), now, device_id),
        )

    def _account_out(self, device_id: int, nout: int) -> None:
        self.db.execute(
            "UPDATE devices SET bytes_out=bytes_out+?, dgrams_out=dgrams_out+1 WHERE device_id=?", (nout, device_id)
        )

    def _next_seq(self) -> int:
        if self.seq >= self.reserved:
            row = self.db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()
            self.seq = row[0] if row else 0
            self.reserved = self.seq + SEQ_BLOCK
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('seq', ?)", (self.reserved,))
        self.seq += 1
        return self.seq - 1

    # -- reports ------------------------------------------------------------------
    def stats(self) -> dict:
        devs = {}
        for row in self.db.execute(
            "SELECT device_id, bytes_in, bytes_out, dgrams_in, dgrams_out, duplicates, last_seen, "
            "(SELECT count(*) FROM readings r WHERE r.device_id=d.device_id) FROM devices d"
        ):
            devs[row[0]] = {
                "bytes_in": row[1],
                "bytes_out": row[2],
                "datagrams_in": row[3],
                "datagrams_out": row[4],
                "wire_bytes_in": row[1] + wire.IP_UDP_OVERHEAD * row[3],
                "wire_bytes_out": row[2] + wire.IP_UDP_OVERHEAD * row[4],
                "duplicate_readings": row[5],
                "last_seen": row[6],
                "readings": row[7],
                "traffic": {},
            }
        for dev, kind, n, nbytes in self.db.execute("SELECT device_id, kind, datagrams, bytes FROM traffic"):
            if dev in devs:
                devs[dev]["traffic"][kind] = {
                    "datagrams": n,
                    "bytes": nbytes,
                    "wire_bytes": nbytes + wire.IP_UDP_OVERHEAD * n,
                }
        rejects: dict[str, int] = {}
        for _dev, reason, count in self.db.execute("SELECT device_id, reason, count FROM rejects"):
            rejects[reason] = rejects.get(reason, 0) + count
        cmds = self.db.execute("SELECT count(*), count(done) FROM commands").fetchone()
        return {"devices": devs, "rejects": rejects, "commands_queued": cmds[0], "commands_done": cmds[1]}

    def export_csv(self, fh, device_id: int | None = None) -> int:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["utc_s", "demand_w", "delivered_wh", "received_wh", "flags", "device_id", "seq", "epoch"])
        q = "SELECT utc_s, demand_w, delivered_wh, received_wh, flags, device_id, seq, epoch FROM readings"
        args: tuple = ()
        if device_id is not None:
            q += " WHERE device_id=?"
            args = (device_id,)
        n = 0
        for row in self.db.execute(q + " ORDER BY device_id, utc_s, epoch, seq", args):
            w.writerow(row)
            n += 1
        return n
