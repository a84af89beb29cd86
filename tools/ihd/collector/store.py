"""The collector's SQLite side: readings and live rows, the command queue, the
per-device protocol state (replay window, boot, route, rate buckets), byte,
datagram, traffic-kind and reject accounting, reply sequence numbers; the schema
and records are in collector/schema.py, the reports (stats, CSV) in
collector/reports.py.

No protocol logic here: ihd collector decides what a datagram means; the
store commits all one datagram changes in one transaction (commit_datagram,
commit_refusal, commit_push), so a crash at any point leaves a reply sent only
for what is on disk. Everything lives in one database (WAL) so the CLI and a
running `serve` talk through it.
"""

from __future__ import annotations

import ast
import functools
import json
import sqlite3
import time
from pathlib import Path

from ihd.collector.reports import Reports
from ihd.collector.schema import _COPY, _MIGRATE, _U64, _V4, SCHEMA, SCHEMA_VERSION, Commit, DeviceState, Outcome, _s64
from ihd.uplink import wire

__all__ = ["SCHEMA_VERSION", "Commit", "DeviceState", "Outcome", "Store"]

HEALTH_KEEP = 2000  # health rows kept per device, newest (~4 a day plus fault changes: over a year)
FAULTS_PY = Path(__file__).resolve().parents[3] / "firmware" / "faults.py"


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


# Reply sequence numbers reserved per database write: a restarted collector
# starts past the last block, so it never reuses a number (the device's replay
# window would drop the reply).
SEQ_BLOCK = 65536
# A HELLO's cmd_mark (the highest command id the device ran) lifts the
# collector's command ids above it, for a collector restored from an older
# backup. Ids are u32 on the wire: a mark near 2^32, from any one device's
# key, made the next id 2^32 and every reply carrying it fail for the whole
# fleet. A mark above this is ignored, leaving 2^31 ids whatever happens.
CMD_MARK_MAX = 0x7FFFFFFF
# Traffic kinds (table `traffic`: what each byte of the day was for): in,
# data, data_repeat (every reading held already: a retransmission after a lost
# or late ACK), realtime, keepalive, hello, done; out, ack, hello_reply,
# command (a reply carrying commands), push (a command sent unasked).


F_GAS = 32  # firmware/meter/reading.py: the gas meter's reading


def _split(first: int, rows):
    """A batch's readings -> ([(first seq, electricity rows)] in runs of consecutive seqs,
    [(seq, gas row)]): the gas meter's readings go to their own table."""
    runs: list = []
    gas = []
    cur: list = []
    start = first
    for i, r in enumerate(rows):
        if r[4] & F_GAS:
            gas.append((first + i, r))
            if cur:
                runs.append((start, cur))
            cur = []
            start = first + i + 1
        else:
            cur.append(r)
    if cur:
        runs.append((start, cur))
    return runs, gas


class Store(Reports):
    """One SQLite database; the collector's protocol state lives in its subclass."""

    def __init__(self, db_path: str | Path) -> None:
        self.db = sqlite3.connect(str(db_path), timeout=30, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the ACK that depends on it leaves,
        # even if the machine (not only the process) dies next.
        self.db.execute("PRAGMA synchronous=FULL")
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(devices)")]
        if cols and "nonce" not in cols:
            self.db.executescript("BEGIN;" + _MIGRATE + SCHEMA + _COPY + "COMMIT;")
        cols = [r[1] for r in self.db.execute("PRAGMA table_info(devices)")]
        for c, decl in _V4.items():
            if cols and c not in cols:
                self.db.execute(f"ALTER TABLE devices ADD COLUMN {c} {decl}")
        self.db.executescript(SCHEMA)
        self.db.execute("INSERT OR REPLACE INTO meta VALUES('schema', ?)", (SCHEMA_VERSION,))
        self.seq = self.reserved = 0
        self._block_in_txn = False  # the reply-number block was reserved in the open transaction
        self.crash_hook = None  # test hook: crash_hook(point) may kill the process there
        self._rejects: dict[tuple[int, str], int] = {}  # counts not yet written (_reject)
        self._rejects_at = time.monotonic()

    # -- devices and commands --------------------------------------------------
    def _device(self, device_id: int) -> tuple[int, bytes, int, int, int] | None:
        """(key_id, key, seq_top, nonce, challenge) of a registered device, else None."""
        st = self.device_state(device_id)
        return None if st is None else (st.key_id, st.key, st.top, st.nonce, st.challenge)

    def device_state(self, device_id: int) -> DeviceState | None:
        """Everything the protocol keeps about a registered device (one row), else None.
        Nothing of it is cached in memory: each datagram reads it and commits it back."""
        row = self.db.execute(
            "SELECT key_id, key, seq_top, seq_bits, nonce, challenge, route_addr, route_via, route_at,"
            " dg_tokens, rd_tokens, bucket_at, ka_bits FROM devices WHERE device_id=?",
            (device_id,),
        ).fetchone()
        if row is None:
            return None
        route = None if row[6] is None else (tuple(json.loads(row[6])), row[7], row[8])
        top, bits, ka = row[2], row[3] & _U64, row[12] & _U64
        return DeviceState(device_id, row[0], bytes(row[1]), top, bits, row[4], row[5], route, *row[9:12], ka)

    def route(self, device_id: int) -> tuple | None:
        """(addr, via key, time) the device's last authentic datagram came from, else None."""
        st = self.device_state(device_id)
        return None if st is None else st.route

    def window(self, device_id: int) -> wire.Window:
        st = self.device_state(device_id)
        return wire.Window() if st is None else wire.Window(st.top, st.bits, st.ka_bits)

    # -- the transactions: all a datagram changes, or nothing -------------------
    def _begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        self._block_in_txn = False

    def _commit(self) -> None:
        if self.crash_hook is not None:
            self.crash_hook("in_txn")  # test hook: everything written, not committed
        self.db.execute("COMMIT")

    def _rollback(self) -> None:
        self.db.execute("ROLLBACK")
        if self._block_in_txn:
            # the reservation made in it is undone with it: reserve again. A
            # block committed before stays ours (resetting here threw away up
            # to SEQ_BLOCK reply numbers a rollback, and a device able to make
            # its own batches fail could run the u32 out for the fleet).
            self.seq = self.reserved = 0

    def commit_datagram(self, c: Commit, respond) -> list[bytes]:
        """One authentic, fresh datagram, in one transaction: its readings (or live rows,
        health report, boot, DONE), the replay window with it accepted, the route, the
        rate buckets, the commands its replies carry and the accounting. `respond(Outcome)`
        runs inside it and returns ([(traffic kind, reply datagram)], commands carried).
        Returns the replies, to be sent only now: nothing they say is uncommitted."""
        dev = c.device_id
        self._begin()
        try:
            conflict, dups = False, 0
            if c.readings is not None:
                epoch, first, rows = c.readings
                runs, gas = _split(first, rows)  # electricity runs; the gas meter's readings apart
                if any(self._conflicts(dev, epoch, f, r) for f, r in runs) or self._gas_conflicts(dev, epoch, gas):
                    conflict = True  # other values under these numbers: store nothing, ACK nothing
                else:
                    dups = sum(self._store_readings(dev, epoch, f, r, c.now) for f, r in runs)
                    dups += self._store_gas(dev, epoch, gas, c.now)
            if c.live is not None:
                self._store_live(dev, *c.live, c.now)
            if c.health is not None:
                self._store_health(dev, *c.health, c.now)
            if c.boot is not None:
                self._set_boot(dev, *c.boot, c.now)
            if c.done is not None:
                self._mark_done(dev, *c.done, c.now)
            pending = [] if conflict else self._pending(dev)
            replies, carried = respond(Outcome(conflict, dups, pending))
            if carried:
                self._mark_sent(carried)
            kind = c.kind
            if c.readings is not None:
                kind = "data_conflict" if conflict else "data_repeat" if dups == len(c.readings[2]) else kind
            if conflict:
                self._reject_now(dev, "conflict")
            for k, r in replies:
                self._count(dev, k, len(r))
            self._count(dev, kind, c.nbytes)
            top, bits, ka = c.window
            addr, via, route_at = c.route
            self.db.execute(
                "UPDATE devices SET seq_top=?, seq_bits=?, ka_bits=?, route_addr=?, route_via=?, route_at=?,"
                " dg_tokens=?, rd_tokens=?, bucket_at=?, bytes_in=bytes_in+?, bytes_out=bytes_out+?,"
                " dgrams_in=dgrams_in+1, dgrams_out=dgrams_out+?, last_addr=?, last_seen=? WHERE device_id=?",
                (
                    top,
                    _s64(bits),
                    _s64(ka),
                    json.dumps(list(addr)),
                    via,
                    route_at,
                    *c.buckets,
                    c.now,
                    c.nbytes,
                    sum(len(r) for _, r in replies),
                    len(replies),
                    str(addr),
                    c.now,
                    dev,
                ),
            )
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return [r for _, r in replies]

    def commit_refusal(self, device_id: int, nbytes_in: int, challenge: int, new_challenge: bool, build) -> bytes:
        """An authentic HELLO refused as stale: the challenge (if new), the counts, and the
        REFUSE that `build()` makes inside the transaction. Moves no window, route or boot."""
        self._begin()
        try:
            if new_challenge:
                self._set_challenge(device_id, challenge)
            ref = build()
            self._reject_now(device_id, "stale")
            self._count(device_id, "hello_stale", nbytes_in)
            self._count(device_id, "refuse", len(ref))
            self._account_out(device_id, len(ref))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return ref

    def commit_push(self, device_id: int, cmds, build) -> bytes:
        """Commands pushed unasked: marked sent with the push `build()` makes, then sent."""
        self._begin()
        try:
            reply = build()
            self._mark_sent(cmds)
            self._account_out(device_id, len(reply))
            self._count(device_id, "push", len(reply))
            self._commit()
        except BaseException:
            self._rollback()
            raise
        return reply

    def _upsert_device(self, device_id: int, key: bytes, key_id: int) -> int:
        """Register a device or change its key; returns its replay-window top. A new key
        (re-provisioning) starts the window, boot nonce and challenge afresh: nothing
        tagged with the old key verifies any more, so there is nothing left to replay."""
        self.db.execute(
            "INSERT INTO devices(device_id, key_id, key) VALUES(?,?,?) "
            "ON CONFLICT(device_id) DO UPDATE SET key_id=excluded.key_id, key=excluded.key, "
            "seq_top=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN seq_top ELSE -1 END, "
            "ka_bits=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN ka_bits ELSE 0 END, "
            "nonce=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN nonce ELSE 0 END, "
            "challenge=CASE WHEN key=excluded.key AND key_id=excluded.key_id THEN challenge ELSE 0 END",
            (device_id, key_id, key),
        )
        return self.db.execute("SELECT seq_top FROM devices WHERE device_id=?", (device_id,)).fetchone()[0]

    def _set_boot(self, device_id: int, nonce: int, epoch: int, cmd_mark: int, now: float) -> None:
        """An accepted HELLO: replies are bound to its nonce from now on; command ids go above cmd_mark."""
        self.db.execute(
            "UPDATE devices SET nonce=?, epoch=?, challenge=0, hello_at=? WHERE device_id=?",
            (nonce, epoch, now, device_id),
        )
        if cmd_mark > CMD_MARK_MAX:
            return  # see CMD_MARK_MAX
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

    def _unsent_devices(self, heard_since: float) -> list[int]:
        """Devices with a command that no reply has carried yet, heard from (a route, a
        window) since `heard_since`: one indexed query. Those silent longer cannot be
        pushed to and are not looked at (each cost a query a second, for ever: 875 ms a
        round on PostgreSQL with 10,000 such devices, bench/push_loop.py)."""
        return [
            r[0]
            for r in self.db.execute(
                "SELECT DISTINCT c.device_id FROM commands c JOIN devices d ON d.device_id=c.device_id"
                " WHERE c.sent=0 AND c.done IS NULL AND d.seq_top >= 0 AND d.route_at >= ?",
                (heard_since,),
            )
        ]

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

    def _gas_held(self, device_id: int, epoch: int, gas) -> dict:
        if not gas:
            return {}
        held = self.db.execute(
            "SELECT seq, utc_s, demand, delivered, flags FROM gas"
            " WHERE device_id=? AND epoch=? AND seq BETWEEN ? AND ?",
            (device_id, epoch, gas[0][0], gas[-1][0]),
        ).fetchall()
        return {r[0]: tuple(r[1:]) for r in held}

    def _gas_conflicts(self, device_id: int, epoch: int, gas) -> int:
        """The gas readings of a batch held with other values (seq, (utc, demand, delivered, _, flags))."""
        held = self._gas_held(device_id, epoch, gas)
        return sum(1 for s, r in gas if s in held and held[s] != (r[0], r[1], r[2], r[4]))

    def _store_gas(self, device_id: int, epoch: int, gas, now: float) -> int:
        """The gas meter's readings into `gas`; returns how many were held already."""
        held = self._gas_held(device_id, epoch, gas)
        for s, r in gas:
            if s not in held:
                self.db.execute(
                    "INSERT INTO gas VALUES(?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                    (device_id, epoch, s, r[0], r[1], r[2], r[4], now),
                )
        dups = sum(1 for s, _ in gas if s in held)
        if dups:
            self.db.execute("UPDATE devices SET duplicates=duplicates+? WHERE device_id=?", (dups, device_id))
        return dups

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
    _ADD_REJECTS = (  # SQLite and PostgreSQL alike
        "INSERT INTO rejects VALUES(?,?,?) ON CONFLICT(device_id, reason)"
        " DO UPDATE SET count=rejects.count+excluded.count"
    )

    def _reject(self, device_id: int, reason: str) -> None:
        """Count a dropped datagram (outside a transaction). Kept in memory (at most
        (registered devices + 1) x reasons entries, written at 256 or after a second):
        a write, with its fsync, per forged or flooded datagram would make garbage cost
        the collector a disk write each. A crash loses at most a second of these
        counters, never a reading."""
        k = (device_id, reason)
        self._rejects[k] = self._rejects.get(k, 0) + 1
        if len(self._rejects) >= 256 or time.monotonic() - self._rejects_at > 1.0:
            self.flush_rejects()

    def _reject_now(self, device_id: int, reason: str) -> None:
        """Count a refusal inside the transaction that sends it (stale, conflict)."""
        self.db.execute(self._ADD_REJECTS, (device_id, reason, 1))

    def flush_rejects(self) -> None:
        """Write the counts _reject() kept (the server does every poll, stats() first)."""
        if self._rejects:
            rows = [(d, r, n) for (d, r), n in self._rejects.items()]
            self._rejects.clear()
            self.db.execute("BEGIN")
            try:
                self.db.executemany(self._ADD_REJECTS, rows)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        self._rejects_at = time.monotonic()

    def _count(self, device_id: int, kind: str, nbytes: int) -> None:
        self.db.execute(
            "INSERT INTO traffic VALUES(?,?,1,?) ON CONFLICT(device_id, kind) "
            "DO UPDATE SET datagrams=datagrams+1, bytes=bytes+excluded.bytes",
            (device_id, kind, nbytes),
        )

    def _account_out(self, device_id: int, nout: int) -> None:
        self.db.execute(
            "UPDATE devices SET bytes_out=bytes_out+?, dgrams_out=dgrams_out+1 WHERE device_id=?", (nout, device_id)
        )

    def _next_seq(self, device_id: int = 0) -> int:  # one counter for all devices here (pg.py: per device)
        if self.seq >= self.reserved:
            row = self.db.execute("SELECT v FROM meta WHERE k='seq'").fetchone()
            self.seq = row[0] if row else 0
            self.reserved = self.seq + SEQ_BLOCK
            self.db.execute("INSERT OR REPLACE INTO meta VALUES('seq', ?)", (self.reserved,))
            self._block_in_txn = True
        self.seq += 1
        return self.seq - 1
