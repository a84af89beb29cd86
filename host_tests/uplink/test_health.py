"""Device health in the cloud (issue 15 item 2): the HEALTH datagram.

The real firmware (uplink/health.py, on MicroPython) reports at boot, on every
change of its fault set and every 6 h, to the real collector, which stores each
report in its `health` table (the support console's contract, docs/console.md)
before acknowledging it; forged, replayed and malformed reports are dropped and
never acknowledged; a database from before the table gains it when opened."""

from __future__ import annotations

import sys
from pathlib import Path

from harness import DEV, Net, run_device

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import ingest as colmod  # noqa: E402
from ihd.collector import store as collector_store  # noqa: E402
from ihd.uplink import wire  # noqa: E402

KEY = bytes(range(32))
ADDR = ("127.0.0.1", 5555)
H = dict(
    version="1.1.0",
    build="esp32-s3",
    reset_cause="watchdog",
    boot_count=7,
    meter_lqi=180,
    wifi_rssi=-67,
    store_fill_pct=12,
    store_health="ok",
    heap_min=20480,
    ota_state="confirmed",
    fault_numbers=[14, 21],
)
COLS = "device_id, version, faults, reset_cause, boot_count, heap_min, store_fill_pct, meter_lqi, wifi_rssi, ota_state"


def rows(c) -> list[tuple]:
    return c.db.execute(f"SELECT {COLS} FROM health ORDER BY rowid").fetchall()


def test_health_stored_then_acked_forged_and_replayed_dropped(tmp_path):
    c = colmod.Collector(tmp_path / "c.db")
    c.add_device(DEV, KEY)
    dg = wire.build_health(KEY, DEV, 0, 100, H)
    out = c.handle(dg, ADDR)
    assert len(out) == 1
    r = wire.parse(out[0])
    assert r.type == wire.T_REPLY and wire.verify(r, KEY, 0) and (r.echo, r.count) == (100, 0)
    want = (DEV, "1.1.0", "M05,N02", "watchdog", 7, 20480, 12.0, 180, -67, "confirmed")
    assert rows(c) == [want]
    # replayed: the same datagram again is dropped, not stored twice, not answered
    assert c.handle(dg, ADDR) == []
    # forged: another key (or one flipped byte) never verifies
    assert c.handle(wire.build_health(bytes(32), DEV, 0, 101, H), ADDR) == []
    bad = bytearray(wire.build_health(KEY, DEV, 0, 102, H))
    bad[20] ^= 1
    assert c.handle(bytes(bad), ADDR) == []
    # malformed: fault count says 3, two follow (correctly tagged): nothing stored, no ACK
    body = wire.build_health(KEY, DEV, 0, 103, H)[: -wire.TAG]
    body = body[:-3] + b"\x03" + body[-2:]
    assert c.handle(wire.seal(KEY, body), ADDR) == []
    assert rows(c) == [want]
    s = c.stats()
    assert s["rejects"].get("replay") == 1 and s["rejects"].get("bad_tag") == 2, s["rejects"]
    assert s["rejects"].get("malformed") == 1, s["rejects"]
    traffic = s["devices"][DEV]["traffic"]
    assert traffic["health"]["datagrams"] == 1 and traffic["health_ack"]["datagrams"] == 1, traffic


def test_health_not_acked_when_not_stored(tmp_path):
    c = colmod.Collector(tmp_path / "c.db")
    c.add_device(DEV, KEY)
    c.db.execute("CREATE TRIGGER no_health BEFORE INSERT ON health BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    assert c.handle(wire.build_health(KEY, DEV, 0, 100, H), ADDR) == []
    assert c.db.execute("SELECT count(*) FROM health").fetchone()[0] == 0


def test_health_history_is_bounded_per_device(tmp_path, monkeypatch):
    monkeypatch.setattr(collector_store, "HEALTH_KEEP", 5)
    t = [1000.0]
    c = colmod.Collector(tmp_path / "c.db", clock=lambda: t[0])
    c.add_device(DEV, KEY)
    c.add_device(DEV + 1, KEY)
    for i in range(12):
        t[0] += 60
        assert c.handle(wire.build_health(KEY, DEV, 0, 100 + i, {**H, "boot_count": i}), ADDR)
    assert c.handle(wire.build_health(KEY, DEV + 1, 0, 100, H), ADDR)
    got = c.db.execute("SELECT boot_count FROM health WHERE device_id=? ORDER BY received_utc", (DEV,)).fetchall()
    assert [g[0] for g in got] == [7, 8, 9, 10, 11]
    assert c.db.execute("SELECT count(*) FROM health WHERE device_id=?", (DEV + 1,)).fetchone()[0] == 1


def test_version_2_database_gains_the_health_table(tmp_path):
    db = tmp_path / "v2.db"
    c = colmod.Collector(db)
    c.add_device(DEV, KEY)
    c.db.execute("DROP TABLE health")
    c.db.execute("DELETE FROM meta WHERE k='schema'")
    c.db.close()
    c = colmod.Collector(db)
    assert c.db.execute("SELECT v FROM meta WHERE k='schema'").fetchone()[0] == collector_store.SCHEMA_VERSION == 6
    assert c.handle(wire.build_health(KEY, DEV, 0, 100, H), ADDR)
    assert len(rows(c)) == 1


SPEED = 1000
T0 = 1_767_225_600


def test_firmware_reports_at_boot_on_fault_change_and_every_6_hours(tmp_path):
    # the firmware runs on each runtime ([mp32], [wheel]: the autouse `runtime` fixture)
    net = Net(tmp_path / "c.db")
    try:
        # 12.5 device hours, a reading a minute; M05 (14) raised at 600 s, cleared at 1,200 s
        env = {"IHD_CLOCK": f"utc={T0},speed={SPEED}", "UPL_EPS": net.endpoints(), "UPL_RUN_S": 45000}
        env.update({"UPL_INTERVAL": 60, "UPL_FAULTS": "600:14,1200:-14"})
        st, _ = run_device(tmp_path / "dev", env)
        got = net.call(
            lambda: net.col.db.execute(
                "SELECT seq, received_utc, version, faults, reset_cause, boot_count, heap_min, store_fill_pct,"
                " meter_lqi, wifi_rssi, ota_state, store_health FROM health WHERE device_id=? ORDER BY seq",
                (DEV,),
            ).fetchall()
        )
        assert [g[3] for g in got] == ["", "M05", "", "", ""], (got, st)
        assert st["health_sent"] == st["health_acked"] == 5, st
        for g in got:
            assert g[2] == "9.8.7-test" and g[4] == "watchdog" and g[5] == 1 and g[10] == "idle", g
            assert g[6] > 0 and g[8] == 200 and g[9] == -61 and g[11] == "ok" and g[7] is not None, g
        # device seconds between reports (the collector's wall clock x SPEED): the
        # fault reports as the fault changed, then one every 6 h
        gaps = [(b[1] - a[1]) * SPEED for a, b in zip(got, got[1:], strict=False)]
        # (each real ms on the collector's clock is a device second at 1000x: a
        # loaded CI host delayed one report 122 ms, 722 s; the 6 h ones are far apart)
        assert 500 < gaps[0] < 900 and 500 < gaps[1] < 900, gaps
        assert all(21600 - 300 < x < 21600 + 600 for x in gaps[2:]), gaps
        # the next boot reports again, counted
        env.update({"UPL_RUN_S": 120, "UPL_FAULTS": ""})
        run_device(tmp_path / "dev", env)
        last = net.call(lambda: net.col.db.execute("SELECT boot_count FROM health ORDER BY seq DESC").fetchone())
        assert last[0] == 2
    finally:
        net.stop()


def test_no_health_source_no_reports(tmp_path):
    net = Net(tmp_path / "c.db")
    try:
        env = {"IHD_CLOCK": f"utc={T0},speed={SPEED}", "UPL_EPS": net.endpoints(), "UPL_RUN_S": 600}
        env.update({"UPL_INTERVAL": 60, "UPL_NO_HEALTH": 1})
        st, _ = run_device(tmp_path / "dev", env)
        assert st["health_sent"] == 0 and st["datagrams_down"] >= 1, st  # heard, yet no report
        n = net.call(lambda: net.col.db.execute("SELECT count(*) FROM health").fetchone()[0])
        assert n == 0
    finally:
        net.stop()
