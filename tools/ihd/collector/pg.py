"""The collector's PostgreSQL backend (`--db postgresql://...`; docs/fleet.md).

PgStore is collector_store.Store over PostgreSQL (psycopg 3): the same methods on
the same records, so ihd collector's protocol runs unchanged on either. SQL
that both databases read alike is inherited as written (a thin connection
wrapper takes SQLite's `?` parameters); what differs is here:

* schema migrations, versioned (table `schema_migrations`), each applied once in
  its own transaction under an advisory lock (several collectors may start at once);
* `readings` partitioned by reading time (declarative RANGE partitions on utc_s,
  a month each, created ahead by `maintain()`; a DEFAULT partition takes readings
  of devices whose clock is far off), deduplicated by (device, epoch, seq) per
  partition and checked across partitions before a batch is stored;
* a batch is written by one multi-row INSERT (unnest of arrays) in the transaction
  that advances the device's replay window; the ACK leaves only after COMMIT;
* the device's row is locked (SELECT ... FOR UPDATE) in that transaction, and a
  datagram whose window another collector moved meanwhile is dropped
  (`contended`): two collectors serving one device (failover) never both accept;
* reply sequence numbers per device, in its row (the wire's u32 is per device; a
  shared sequence ran out fleet-wide), so every collector's replies to a device
  rise together (a device that fails over accepts the next one's).
"""

from __future__ import annotations

import datetime as dt
import sys
import time

import psycopg

from ihd.collector.store import CMD_MARK_MAX, Store

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "the collector's tables (SQLite schema 3), readings partitioned by month of utc_s",
        """
CREATE TABLE devices (
    device_id bigint PRIMARY KEY, key_id integer NOT NULL, key bytea NOT NULL,
    seq_top bigint NOT NULL DEFAULT -1,
    nonce bigint NOT NULL DEFAULT 0, challenge bigint NOT NULL DEFAULT 0, epoch bigint NOT NULL DEFAULT 0,
    bytes_in bigint NOT NULL DEFAULT 0, bytes_out bigint NOT NULL DEFAULT 0,
    dgrams_in bigint NOT NULL DEFAULT 0, dgrams_out bigint NOT NULL DEFAULT 0,
    duplicates bigint NOT NULL DEFAULT 0, last_addr text, last_seen double precision);
CREATE TABLE readings (
    device_id bigint NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL, utc_s bigint NOT NULL,
    demand_w integer NOT NULL, delivered_wh bigint NOT NULL, received_wh bigint NOT NULL,
    flags integer NOT NULL, received_at double precision NOT NULL,
    PRIMARY KEY (device_id, epoch, seq, utc_s)) PARTITION BY RANGE (utc_s);
CREATE TABLE readings_default PARTITION OF readings DEFAULT;
CREATE TABLE live (
    device_id bigint NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL, utc_s bigint NOT NULL,
    demand_w integer NOT NULL, received_at double precision NOT NULL,
    PRIMARY KEY (device_id, epoch, seq));
CREATE TABLE commands (
    cmd_id bigserial PRIMARY KEY, device_id bigint NOT NULL,
    kind integer NOT NULL, payload bytea NOT NULL, created double precision NOT NULL,
    sent integer NOT NULL DEFAULT 0, done double precision, status integer);
CREATE INDEX commands_open ON commands (device_id, cmd_id) WHERE done IS NULL;
CREATE TABLE rejects (
    device_id bigint NOT NULL, reason text NOT NULL, count bigint NOT NULL, PRIMARY KEY (device_id, reason));
CREATE TABLE traffic (
    device_id bigint NOT NULL, kind text NOT NULL, datagrams bigint NOT NULL, bytes bigint NOT NULL,
    PRIMARY KEY (device_id, kind));
CREATE TABLE meta (k text PRIMARY KEY, v bigint NOT NULL);
CREATE TABLE health (
    id bigserial PRIMARY KEY,
    device_id bigint NOT NULL, received_utc double precision NOT NULL, seq bigint,
    version text, build text, faults text NOT NULL DEFAULT '', reset_cause text, boot_count bigint,
    heap_min integer, store_fill_pct double precision, store_health text, meter_lqi integer, wifi_rssi integer,
    ota_state text);
CREATE INDEX health_by_device ON health (device_id, received_utc);
CREATE SEQUENCE reply_seq START 65536;
""",
    ),
    (
        2,
        "the replay window's bits, the route and the rate buckets in the device's row (SQLite schema 4)",
        """
ALTER TABLE devices ADD COLUMN seq_bits bigint NOT NULL DEFAULT -1, ADD COLUMN route_addr text,
    ADD COLUMN route_via text, ADD COLUMN route_at double precision, ADD COLUMN dg_tokens double precision,
    ADD COLUMN rd_tokens double precision, ADD COLUMN bucket_at double precision;
""",
    ),
    (
        3,
        "keep-alive seqs taken above the window, when the latest boot was heard (SQLite schema 5)",
        """
ALTER TABLE devices ADD COLUMN ka_bits bigint NOT NULL DEFAULT 0, ADD COLUMN hello_at double precision;
""",
    ),
    (
        4,
        "commands no reply has carried yet, indexed: the push loop finds them without a scan",
        """
CREATE INDEX commands_unsent ON commands (device_id) WHERE sent=0 AND done IS NULL;
""",
    ),
    (
        5,
        "reply numbers per device (NULL: not replied to since; starts above the shared reply_seq)",
        """
ALTER TABLE devices ADD COLUMN reply_seq bigint;
""",
    ),
    (
        6,
        "the gas meter's readings apart from electricity (SQLite schema 6, wire version 3)",
        """
CREATE TABLE gas (
    device_id bigint NOT NULL, epoch bigint NOT NULL, seq bigint NOT NULL, utc_s bigint NOT NULL,
    demand integer NOT NULL, delivered bigint NOT NULL, flags integer NOT NULL, received_at double precision NOT NULL,
    PRIMARY KEY (device_id, epoch, seq));
""",
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]
MONTHS_BACK, MONTHS_AHEAD = 12, 2  # partitions maintain() keeps ready around today
_LOCK = 0x1D0C011  # advisory lock id: migrations and partition creation


def _signed(v: int) -> int:
    return v - 2**64 if v >= 2**63 else v


# What a transaction locking a device's row compares with what was read before deciding:
# the replay window (keep-alive bits included) and the stale-HELLO challenge.
_LOCKED = "seq_top, seq_bits, ka_bits, challenge"


class Contended(Exception):
    """Another collector moved this device's window after we read it."""


# Reconnecting after the server went away (restart, failover): first try at once,
# then waits doubling from RECONNECT_MIN_S to RECONNECT_MAX_S, so a collector
# receiving thousands of datagrams a second tries a few times a second at most.
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.05, 5.0


class _Db:
    """psycopg connection speaking like sqlite3's: execute(sql with ?, params) -> cursor.
    Autocommit: transactions are the explicit BEGIN / COMMIT of the store.
    A lost connection (server restart) is opened again by the next statement after
    a backoff; until then each statement raises psycopg.OperationalError, so the
    datagram it served is dropped unacknowledged (the device sends it again)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn = psycopg.connect(url, autocommit=True)
        self._sql: dict[str, str] = {}
        self.outages = 0  # connections lost so far
        self.down_since: float | None = None  # monotonic time the loss was noticed
        self.dropped = 0  # statements refused while down (one per dropped datagram or so)
        self._retry_at = 0.0
        self._wait = RECONNECT_MIN_S

    def ensure(self) -> None:
        """Reconnect if the connection is lost and the backoff allows; else raise."""
        if not self.conn.closed:
            return
        now = time.monotonic()
        if self.down_since is None:
            self.down_since, self._retry_at, self._wait = now, now, RECONNECT_MIN_S
            self.outages += 1
            print(f"collector: PostgreSQL connection lost (outage {self.outages}); reconnecting", file=sys.stderr)
        if now < self._retry_at:
            self.dropped += 1
            raise psycopg.OperationalError(f"PostgreSQL down, next try in {self._retry_at - now:.2f} s")
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=2)
        except psycopg.OperationalError:
            self.dropped += 1
            self._retry_at, self._wait = now + self._wait, min(self._wait * 2, RECONNECT_MAX_S)
            raise
        self.conn = conn
        print(
            f"collector: PostgreSQL back after {now - self.down_since:.1f} s (outage {self.outages},"
            f" {self.dropped} datagrams dropped unacknowledged)",
            file=sys.stderr,
        )
        self.down_since = None

    def _tr(self, sql: str) -> str:
        s = self._sql.get(sql)
        if s is None:
            s = self._sql[sql] = sql.replace("%", "%%").replace("?", "%s")
        return s

    def execute(self, sql: str, params=()):
        self.ensure()
        return self.conn.execute(self._tr(sql), params)

    def executemany(self, sql: str, seq):
        self.ensure()
        cur = self.conn.cursor()
        cur.executemany(self._tr(sql), list(seq))
        return cur

    def close(self) -> None:
        self.conn.close()


def _month(t: int) -> int:
    d = dt.datetime.fromtimestamp(t, dt.timezone.utc)
    return d.year * 12 + d.month - 1


def _month_start(m: int) -> int:
    return int(dt.datetime(m // 12, m % 12 + 1, 1, tzinfo=dt.timezone.utc).timestamp())


class PgStore(Store):
    """collector_store.Store over PostgreSQL. Put it after the protocol class in the
    bases (class PgCollector(Collector, PgStore)) so its methods replace Store's."""

    Error = psycopg.Error

    def __init__(self, db_path) -> None:
        url = str(db_path)
        try:
            self.db = _Db(url)
        except psycopg.OperationalError as e:
            raise ValueError(f"cannot reach PostgreSQL at {url}: {str(e).strip().splitlines()[0]}") from None
        self.url = url
        self.migrate()
        self._maintained_until = 0
        self.maintain()
        self.seq = self.reserved = 0
        self.crash_hook = None
        self._lock_for: int | None = None  # the device whose row _begin locks
        self._async_commit = False  # this transaction's COMMIT need not wait for the WAL flush
        # (device, (seq_top, seq_bits, ka_bits, challenge)) as device_state() last read them:
        # one slot, as every transaction that locks a row follows the read of that row at
        # once (a dict of every device read grew by one entry per device for ever).
        self._read: tuple[int, tuple] | None = None
        self._rejects: dict[tuple[int, str], int] = {}  # Store._reject's counts not yet written
        self._rejects_at = time.monotonic()

    # -- schema ------------------------------------------------------------------
    def migrate(self) -> list[int]:
        """Apply the migrations this database lacks, in order; returns those applied."""
        done = []
        c = self.db
        c.execute("BEGIN")
        try:
            c.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
            c.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            have = {r[0] for r in c.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, what, sql in MIGRATIONS:
                if version not in have:
                    c.conn.execute(sql)
                    c.execute("INSERT INTO schema_migrations (version, description) VALUES (?, ?)", (version, what))
                    done.append(version)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        return done

    def maintain(self, now: float | None = None) -> list[str]:
        """Monthly readings partitions from MONTHS_BACK before to MONTHS_AHEAD after `now`
        (at start, then again by commit_datagram() each time the collector's clock enters
        a new month: a collector running for months always has MONTHS_AHEAD ready).
        Idempotent, and safe with several collectors at once (CREATE ... IF NOT EXISTS
        under an advisory lock). A month whose readings already went to the DEFAULT
        partition keeps them there."""
        m0 = _month(int(time.time() if now is None else now))
        have = {
            r[0]
            for r in self.db.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid=i.inhrelid"
                " JOIN pg_class p ON p.oid=i.inhparent WHERE p.relname='readings'"
            ).fetchall()
        }
        made = []
        for m in range(m0 - MONTHS_BACK, m0 + MONTHS_AHEAD + 1):
            name = f"readings_{m // 12:04d}_{m % 12 + 1:02d}"
            if name in have:
                continue
            self.db.execute("BEGIN")
            try:
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_LOCK,))
                self.db.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings"
                    f" FOR VALUES FROM ({_month_start(m)}) TO ({_month_start(m + 1)})"
                )
                self.db.execute("COMMIT")
                made.append(name)
            except psycopg.errors.CheckViolation:  # the DEFAULT partition holds that month
                self.db.execute("ROLLBACK")
                print(f"collector: partition {name} not made: its readings are in readings_default", file=sys.stderr)
        self._maintained_until = _month_start(m0 + 1)  # the next maintain() is due then
        return made

    def close(self) -> None:
        self.db.close()

    # -- transactions --------------------------------------------------------------
    def _begin(self) -> None:
        self._async_commit = False
        dev = self._lock_for
        if dev is None:
            self.db.execute("BEGIN")
            return
        self.db.ensure()
        # one round trip for both (the id is an int: nothing to quote)
        cur = self.db.conn.execute(f"BEGIN; SELECT {_LOCKED} FROM devices WHERE device_id={int(dev)} FOR UPDATE")
        cur.nextset()
        read = self._read
        if read is None or read[0] != dev or cur.fetchone() != read[1]:  # moved since device_state() read it
            self.db.execute("ROLLBACK")
            raise Contended

    def _commit(self) -> None:
        if self.crash_hook is not None:
            self.crash_hook("in_txn")
        if self._async_commit:
            self.db.conn.execute("SET LOCAL synchronous_commit TO off; COMMIT")
        else:
            self.db.execute("COMMIT")

    def _rollback(self) -> None:
        if self.db.conn.closed:
            return  # the server dropped the transaction with the connection
        self.db.execute("ROLLBACK")

    def device_state(self, device_id: int):
        st = super().device_state(device_id)
        if st is not None:
            self._read = (device_id, (st.top, _signed(st.bits), _signed(st.ka_bits), st.challenge))  # as stored
        return st

    def _locked(self, device_id: int, run):
        """run() in a transaction begun by locking the device's row (_begin): raises
        Contended if another collector changed the row since device_state() read it."""
        self._lock_for = device_id
        try:
            return run()
        finally:
            self._lock_for = None
            self._read = None

    def commit_datagram(self, c, respond) -> list[bytes]:
        if c.now >= self._maintained_until:  # a new month on the collector's clock: partitions ahead
            try:
                self.maintain(c.now)
            except psycopg.Error as e:  # next datagram tries again; readings meanwhile go to DEFAULT
                print(f"collector: partition maintenance failed: {e}", file=sys.stderr)

        def respond_then(outcome):
            replies, carried = respond(outcome)
            if not replies:
                # Nothing leaves, so nothing depends on this commit (a keep-alive, a DONE):
                # do not wait for the WAL flush. A crash of the server (not of this
                # process) may forget it; the device's next datagram says it all again.
                self._async_commit = True  # COMMIT with SET LOCAL synchronous_commit TO off
            return replies, carried

        try:
            return self._locked(c.device_id, lambda: super(PgStore, self).commit_datagram(c, respond_then))
        except Contended:
            self._reject(c.device_id, "contended")  # dropped: the device sends again, we read afresh
            return []

    def commit_refusal(self, device_id: int, nbytes_in: int, challenge: int, new_challenge: bool, build):
        """Store.commit_refusal under the device's row lock: two collectors refusing one
        device's stale HELLO at once must not both set a challenge (the device would answer
        the first with a challenge the second overwrote). None if contended."""
        try:
            return self._locked(
                device_id,
                lambda: super(PgStore, self).commit_refusal(device_id, nbytes_in, challenge, new_challenge, build),
            )
        except Contended:
            self._reject(device_id, "contended")
            return None

    def commit_push(self, device_id: int, cmds, build):
        """Store.commit_push under the device's row lock, and only if no other collector has
        carried these commands meanwhile (else two collectors push the same). None if not."""
        ids = [c[1] for c in cmds]

        def build_unsent() -> bytes:
            if not self.db.execute(
                "SELECT 1 FROM commands WHERE cmd_id = ANY(?) AND sent=0 LIMIT 1", (ids,)
            ).fetchone():
                raise Contended
            return build()

        try:
            return self._locked(device_id, lambda: super(PgStore, self).commit_push(device_id, cmds, build_unsent))
        except Contended:
            return None

    # -- what SQLite says otherwise -------------------------------------------------
    def _upsert_device(self, device_id: int, key: bytes, key_id: int) -> int:
        same = "devices.key=excluded.key AND devices.key_id=excluded.key_id"
        return self.db.execute(
            "INSERT INTO devices(device_id, key_id, key) VALUES(?,?,?) "
            "ON CONFLICT(device_id) DO UPDATE SET key_id=excluded.key_id, key=excluded.key, "
            f"seq_top=CASE WHEN {same} THEN devices.seq_top ELSE -1 END, "
            f"ka_bits=CASE WHEN {same} THEN devices.ka_bits ELSE 0 END, "
            f"nonce=CASE WHEN {same} THEN devices.nonce ELSE 0 END, "
            f"challenge=CASE WHEN {same} THEN devices.challenge ELSE 0 END "
            "RETURNING seq_top",
            (device_id, key_id, bytes(key)),
        ).fetchone()[0]

    def _set_boot(self, device_id: int, nonce: int, epoch: int, cmd_mark: int, now: float) -> None:
        self.db.execute(
            "UPDATE devices SET nonce=?, epoch=?, challenge=0, hello_at=? WHERE device_id=?",
            (nonce, epoch, now, device_id),
        )
        if 0 < cmd_mark <= CMD_MARK_MAX:  # command ids go above what the device ran (collector_store.CMD_MARK_MAX)
            self.db.execute(
                "SELECT setval('commands_cmd_id_seq', ?) FROM commands_cmd_id_seq"
                " WHERE CASE WHEN is_called THEN last_value ELSE last_value - 1 END < ?",
                (cmd_mark, cmd_mark),
            )

    def _insert_command(self, device_id: int, kind: int, payload: bytes, now: float) -> int:
        return self.db.execute(
            "INSERT INTO commands(device_id, kind, payload, created) VALUES(?,?,?,?) RETURNING cmd_id",
            (device_id, kind, bytes(payload), now),
        ).fetchone()[0]

    def _store_health(self, device_id: int, seq: int, h: dict, now: float) -> None:
        Store._store_health(_HealthShim(self), device_id, seq, h, now)  # type: ignore[arg-type]

    # The arrays go in binary (%b): as text, quoting each element cost psycopg 14 ms of a
    # batch's 31 ms of collector CPU (cProfile, 100 batches of ~1,650 readings).
    def _store_live(self, device_id: int, epoch: int, first: int, rows, now: float) -> None:
        self.db.conn.execute(
            "INSERT INTO live SELECT %s, %s, s, u, d, %s FROM unnest(%b::bigint[], %b::bigint[], %b::int[])"
            " AS t(s, u, d) ON CONFLICT DO NOTHING",
            (device_id, epoch, now, [first + i for i in range(len(rows))], [r[0] for r in rows], [r[1] for r in rows]),
        )

    def _store_readings(self, device_id: int, epoch: int, first: int, rows, now: float) -> int:
        """One multi-row INSERT of the batch; returns how many were held already."""
        cols = list(zip(*rows, strict=True))
        cur = self.db.conn.execute(
            "INSERT INTO readings SELECT %s, %s, s, u, d, dl, rc, f, %s FROM unnest(%b::bigint[], %b::bigint[],"
            " %b::int[], %b::bigint[], %b::bigint[], %b::int[]) AS t(s, u, d, dl, rc, f) ON CONFLICT DO NOTHING",
            (device_id, epoch, now, list(range(first, first + len(rows))), *(list(c) for c in cols)),
        )
        dups = len(rows) - cur.rowcount
        if dups:
            self.db.execute("UPDATE devices SET duplicates=duplicates+? WHERE device_id=?", (dups, device_id))
        return dups

    def _count(self, device_id: int, kind: str, nbytes: int) -> None:
        self.db.execute(
            "INSERT INTO traffic VALUES(?,?,1,?) ON CONFLICT(device_id, kind) "
            "DO UPDATE SET datagrams=traffic.datagrams+1, bytes=traffic.bytes+excluded.bytes",
            (device_id, kind, nbytes),
        )

    def _next_seq(self, device_id: int = 0) -> int:
        """The device's next reply number, from its row (locked by the transaction that
        sends the reply, so every collector's replies to it rise together). One number
        space per device: a shared sequence ran the wire's u32 out for the whole fleet
        (~186 days at a million devices); a device takes ~100 replies a day, i.e.
        40 million days. A device replied to before migration 5 continues above the
        shared sequence's last value, so it accepts the next reply."""
        return self.db.execute(
            "UPDATE devices SET reply_seq=COALESCE(reply_seq, (SELECT last_value FROM reply_seq))+1"
            " WHERE device_id=? RETURNING reply_seq",
            (device_id,),
        ).fetchone()[0]


class _HealthShim:
    """Store._store_health's SQL with the health rows' id for SQLite's rowid."""

    def __init__(self, store: PgStore) -> None:
        self._s = store

    class _Exec:
        def __init__(self, db: _Db) -> None:
            self._db = db

        def execute(self, sql: str, params=()):
            return self._db.execute(sql.replace("rowid", "id"), params)

    @property
    def db(self):
        return self._Exec(self._s.db)


def pg_collector(collector_cls):
    """The collector class over PostgreSQL: protocol first, then PgStore, then Store."""
    return type("PgCollector", (collector_cls, PgStore), {})
