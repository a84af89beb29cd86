"""The gas meter's readings on the wire (version-3 DATA) and at the collector.

* The firmware encoder (MicroPython) puts readings flagged F_GAS in the
  batch's gas section, byte-identical to the host port, and the host decoder
  (decode3) gives back exactly the readings in order; a batch without gas is
  a version-2 payload, byte for byte as before.
* Bytes a day: a 3-second electricity day with a gas reading every 30
  minutes costs at most the headroom the 500x target leaves (bench/report.md:
  20,189,501 B of HTTP baseline / 500 = 40,379 B against 39,283 B measured).
* The collector stores gas readings in their own table (`gas`), apart from
  `readings`, on SQLite and PostgreSQL; a version-2 DATA from a device
  without gas is stored as before; a database of schema 5 opens (migrated).
"""

from __future__ import annotations

import random
import sqlite3
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from harness import fw_batches  # noqa: E402

from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

GAS = 96  # firmware/uplink/uplink.py _GAS_BYTES
F_GAS = 32


def day(n: int, gas_every: int, seed: int = 3, t0: int = 1_767_225_600):
    """Electricity every 3 s (realistic), a gas reading (litres, F_GAS) every gas_every s."""
    rng = random.Random(seed)
    rows, t, d, de, frac, litres, next_gas = [], t0, 350, 4_000_000, 0, 1_234_567, t0 + 7
    for _ in range(n):
        t += 3
        d = max(40, d + round(rng.gauss(0, 4)) + (rng.choice((1800, -1800)) if rng.random() < 0.003 else 0))
        frac += d * 3
        de += frac // 3600
        frac %= 3600
        rows.append((t, d, de, 0, 7))
        if gas_every and t >= next_gas:
            litres += rng.randrange(0, 400)
            rows.append((t + 1, 0, litres, 0, 1 | 4 | F_GAS))
            next_gas += gas_every
    return rows


def test_firmware_gas_section_equals_the_port_and_decodes_exactly():
    rows = day(3000, 600)  # a gas reading every 10 minutes: several per batch
    batches = fw_batches(rows, 1166, gas=GAS)
    i = 0
    saw3 = 0
    for n, payload in batches:
        port, m = uc.encode(rows[i:], 1166, gas=GAS)
        assert (m, port) == (n, payload), f"firmware and host encoders differ at reading {i}"
        part = rows[i : i + n]
        if any(r[4] & F_GAS for r in part):
            saw3 += 1
            assert uc.decode3(payload) == part
        else:
            assert uc.decode(payload) == part
        i += n
    assert i == len(rows) and saw3 == len(batches)


def test_a_batch_without_gas_is_version_2_byte_for_byte():
    rows = day(2000, 0)
    assert fw_batches(rows, 1166, gas=GAS) == fw_batches(rows, 1166)


@pytest.mark.runtimes()
def test_gas_only_and_gas_first_batches():
    rows = [(1_767_225_600 + 1800 * k, 0, 1000 + 37 * k, 0, 5 | F_GAS) for k in range(4)]
    payload, n = uc.encode(rows, 1166, gas=GAS)
    assert n == 4 and uc.decode3(payload) == rows
    mixed = rows[:1] + day(50, 0)
    payload, n = uc.encode(mixed, 1166, gas=GAS)
    assert n == 51 and uc.decode3(payload) == mixed
    with pytest.raises(uc.CodecError):
        uc.decode3(payload[:-1])
    with pytest.raises(uc.CodecError):
        uc.decode3(payload[:3])


@pytest.mark.runtimes()
def test_bytes_a_day_with_gas_stay_within_the_500x_target():
    # the host port (byte-identical to the firmware: test above) over a 3-second day
    def payload_bytes(rows):
        total, i = 0, 0
        while i < len(rows):
            p, n = uc.encode(rows[i:], 1166, gas=GAS)
            total += len(p) + 22 + 12 + 28  # DATA header, tag, IPv4+UDP (as bench/uplink.py counts)
            i += n
        return total

    base = payload_bytes(day(28_800, 0))
    with_gas = payload_bytes(day(28_800, 1800))
    extra = with_gas - base
    # 48 gas readings a day; headroom to 500x: 40,379 - 39,283 = 1,096 B
    assert 0 < extra <= 700, extra
    print(
        f"gas: {extra} B a day more ({base} -> {with_gas}); 20,189,501 / (39,283 + {extra}) = "
        f"{20_189_501 / (39_283 + extra):.1f}x"
    )


@pytest.mark.runtimes()
def test_collector_stores_gas_apart_and_takes_version_2(collector_db):
    from ihd.collector import db as dbsel

    key = bytes(range(32))
    c = dbsel.open_collector(collector_db)
    c.add_device(7, key, 0)
    rows = day(40, 30)
    gas_rows = [r for r in rows if r[4] & F_GAS]
    assert gas_rows
    hello = wire.build_hello(key, 7, 0, 1, 0, 0, epoch=5, nonce=9, cmd_mark=0)
    c.handle(hello, ("127.0.0.1", 1))
    payload, n = uc.encode(rows, 1166, gas=GAS)
    assert n == len(rows)
    c.handle(wire.build_data(key, 7, 0, 2, 1, n, 0, payload, epoch=5, version=3), ("127.0.0.1", 1))
    db = c.db
    elec = db.execute("SELECT utc_s, demand_w, delivered_wh, received_wh, flags FROM readings ORDER BY seq").fetchall()
    gas = db.execute("SELECT seq, utc_s, delivered, flags FROM gas ORDER BY seq").fetchall()
    assert [tuple(r) for r in elec] == [r for r in rows if not r[4] & F_GAS]
    assert [(u, dl, f) for _, u, dl, f in gas] == [(r[0], r[2], r[4]) for r in gas_rows]
    assert [s for s, *_ in gas] == [1 + i for i, r in enumerate(rows) if r[4] & F_GAS]
    # the same batch again: held already, nothing twice
    c.handle(wire.build_data(key, 7, 0, 3, 1, n, 0, payload, epoch=5, version=3), ("127.0.0.1", 1))
    assert db.execute("SELECT count(*) FROM gas").fetchone()[0] == len(gas_rows)
    # an older device: version-2 DATA, electricity only, as before
    old = day(30, 0, seed=9, t0=1_767_300_000)
    p2, m = uc.encode(old, 1166)
    c.handle(wire.build_data(key, 7, 0, 4, 1 + n, m, 0, p2, epoch=5), ("127.0.0.1", 1))
    got = db.execute("SELECT count(*) FROM readings").fetchone()[0]
    assert got == len(elec) + len(old)
    c.db.close()


@pytest.mark.runtimes()
def test_a_schema_5_database_opens_with_the_gas_table(tmp_path):
    from ihd.collector import ingest as coll
    from ihd.collector import schema as cs

    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(cs.SCHEMA.split("CREATE TABLE IF NOT EXISTS gas")[0])
    db.execute("INSERT INTO meta VALUES('schema', 5)")
    db.commit()
    db.close()
    c = coll.Collector(str(path))
    assert c.db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()[0] == 6
    assert c.db.execute("SELECT count(*) FROM gas").fetchone()[0] == 0
    c.db.close()
