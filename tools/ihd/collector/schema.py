"""The collector's database shape: the SQLite schema and its migrations, and the
records the store hands to and takes from the protocol (DeviceState: a device's
row; Commit: all one authentic datagram changes; Outcome: what storing it
found). tools/ihd/collector/store.py implements them over SQLite; another backend
implements the same Store methods over the same records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    device_id INTEGER PRIMARY KEY, key_id INTEGER NOT NULL, key BLOB NOT NULL,
    seq_top INTEGER NOT NULL DEFAULT -1,
    nonce INTEGER NOT NULL DEFAULT 0, challenge INTEGER NOT NULL DEFAULT 0, epoch INTEGER NOT NULL DEFAULT 0,
    bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0,
    dgrams_in INTEGER NOT NULL DEFAULT 0, dgrams_out INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0, last_addr TEXT, last_seen REAL,
    seq_bits INTEGER NOT NULL DEFAULT -1, ka_bits INTEGER NOT NULL DEFAULT 0,
    route_addr TEXT, route_via TEXT, route_at REAL,
    dg_tokens REAL, rd_tokens REAL, bucket_at REAL, hello_at REAL);
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
CREATE INDEX IF NOT EXISTS commands_unsent ON commands (device_id) WHERE sent=0 AND done IS NULL;
CREATE TABLE IF NOT EXISTS gas (
    device_id INTEGER NOT NULL, epoch INTEGER NOT NULL, seq INTEGER NOT NULL, utc_s INTEGER NOT NULL,
    demand INTEGER NOT NULL, delivered INTEGER NOT NULL, flags INTEGER NOT NULL, received_at REAL NOT NULL,
    PRIMARY KEY (device_id, epoch, seq)) WITHOUT ROWID;
"""
# Schema versions (meta 'schema'): 2 = wire version 2 (below); 3 adds the
# `health` table (HEALTH datagrams, docs/console.md "health table contract");
# 4 persists the whole replay window (seq_bits beside seq_top), the route
# (where pushes go) and the per-device rate buckets, so a restart (or kill -9)
# forgets nothing a reply depended on. Opening an older database brings it
# to the current version (an older window's bits are unknown: all taken as
# seen). 5 adds ka_bits (keep-alives are found by device id and taken above
# the window without moving it: docs/uplink.md, "Keep-alive and routing")
# and hello_at (when the device's latest boot was heard: its HELLO taken).
# 6 adds `gas`: the gas meter's readings (flag F_GAS; wire version 3's gas
# section, docs/wire-format.md), numbered in the device's one reading
# sequence but kept apart from `readings` (electricity), delivered in litres
# (or Wh for a meter that counts kWh), demand in l/h.
SCHEMA_VERSION = 6
_V4 = {
    "seq_bits": "INTEGER NOT NULL DEFAULT -1",
    "ka_bits": "INTEGER NOT NULL DEFAULT 0",
    "route_addr": "TEXT",
    "route_via": "TEXT",
    "route_at": "REAL",
    "dg_tokens": "REAL",
    "rd_tokens": "REAL",
    "bucket_at": "REAL",
    "hello_at": "REAL",
}

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


_U64 = 2**64 - 1


def _s64(v: int) -> int:
    """A 64-bit window bitmap as SQLite's signed INTEGER."""
    return v - 2**64 if v >= 2**63 else v


@dataclass
class DeviceState:
    """One device's row, as the protocol uses it (Store.device_state)."""

    device_id: int
    key_id: int
    key: bytes
    top: int  # replay window: highest seq accepted (-1: none)
    bits: int  # and bit i = top - i accepted
    nonce: int  # boot nonce of the latest accepted HELLO (replies are tagged over it)
    challenge: int  # outstanding STALE challenge (0: none)
    route: tuple | None  # (addr, via key, time) of the last authentic datagram
    dg_tokens: float | None  # rate buckets (ihd collector: limits); None: full
    rd_tokens: float | None
    bucket_at: float | None
    ka_bits: int  # keep-alive seqs taken above top (bit i = top + 1 + i)


@dataclass
class Commit:
    """What one authentic datagram changes (Store.commit_datagram)."""

    device_id: int
    kind: str  # traffic kind in
    nbytes: int
    now: float
    window: tuple[int, int, int]  # (top, bits, keep-alive bits) with this datagram accepted
    route: tuple  # (addr, via key, time) pushes go to from now on
    buckets: tuple[float, float]  # (datagram tokens, reading tokens) left
    readings: tuple | None = None  # (epoch, first seq, rows)
    live: tuple | None = None  # (epoch, first seq, rows)
    health: tuple | None = None  # (seq, fields)
    boot: tuple | None = None  # (nonce, epoch, cmd_mark) of an accepted HELLO
    done: tuple | None = None  # (cmd_id, status)


@dataclass
class Outcome:
    conflict: bool  # other values held under the batch's numbers: nothing stored
    duplicates: int  # readings of the batch held already
    pending: list = field(default_factory=list)  # commands not done, lowest first, as fit one reply
