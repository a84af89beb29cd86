"""The console's read layer, auth and command buttons against the database a real
collector wrote during a real simulated run (conftest.sim_run)."""

import re
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from console_helpers import ROOT, TOOLS, Console, add_health, copy_db

from ihd.collector.console import actions, data, make_app

RUNTIMES = ()  # CPython only (the sim inside runs the firmware on the default runtime)


def _q(db_path, sql, *args):
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute(sql, args).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


def test_fault_table_is_the_firmware_table_and_the_doc(tmp_path):
    table = data.fault_table()
    assert len(table) == 21 and table[0] == (1, "C01", "Not set up yet: run the provisioning tool.")
    # docs/faults.md lists the same rows in the same order (the display test keeps it in step)
    doc = [
        (int(m[2]), m[1], m[3].strip())
        for m in re.finditer(r"^\| ([A-Z]\d\d) \| (\d+) \| ([^|]+) \|", (ROOT / "docs" / "faults.md").read_text(), re.M)
    ]
    assert doc == list(table)
    assert data.parse_faults("N02,M01") == [("M01", table[3][2]), ("N02", table[10][2])]
    assert data.parse_faults(" 21, 10 ,10") == data.parse_faults("M01,N02")  # numbers as sent on the wire
    assert data.parse_faults("") == [] and data.parse_faults(None) == []
    assert data.parse_faults("Z99,M05")[0][0] == "M05" and data.parse_faults("Z99")[0][0] == "Z99"


def test_fleet_without_health_table(sim_db, summary):
    # a database from a collector before the HEALTH datagram (issue 15 item 2)
    _q(sim_db, "DROP TABLE health")
    (dev, seen, n), *more = _q(
        sim_db, "SELECT device_id, last_seen, (SELECT count(*) FROM readings) FROM devices ORDER BY device_id"
    )
    assert not more
    db = data.connect(sim_db)
    assert not data.has_health(db)
    rows = data.fleet(db)
    assert [r["device_id"] for r in rows] == [dev]
    r = rows[0]
    assert r["last_seen"] == seen and r["readings"] == n == summary["readings_stored"]
    assert r["version"] is None and (r["fault"], r["sentence"]) == ("—", "No health report yet.")
    assert data.health_history(db, dev) is None
    assert data.filter_fleet(rows, "—") == rows and data.filter_fleet(rows, "M01") == []


def test_fleet_and_history_with_health_table(sim_db):
    dev = _q(sim_db, "SELECT device_id FROM devices")[0][0]
    _q(sim_db, "DELETE FROM health")  # only these rows (the collector's own: test_collector_health_rows)
    # a second device that never reported health, to sort and filter against
    _q(sim_db, "INSERT INTO devices(device_id, key_id, key) VALUES(7, 0, x'00')")
    add_health(
        sim_db,
        dev,
        [
            {"received_utc": 1000.0, "version": "1.0.0", "faults": "", "reset_cause": "power-on", "boot_count": 1},
            {"received_utc": 2000.0, "version": "1.10.0", "faults": "N01,M05", "heap_min": 41000, "meter_lqi": 200},
        ],
    )
    conn = data.connect(sim_db)
    rows = {r["device_id"]: r for r in data.fleet(conn)}
    assert set(rows) == {dev, 7}
    r = rows[dev]
    assert r["version"] == "1.10.0" and r["fault"] == "M05"  # M05 outranks N01 (firmware order)
    assert r["sentence"] == "Paired, but no reading from the meter for 5 minutes."
    assert rows[7]["fault"] == "—" and rows[7]["readings"] == 0
    hist = data.health_history(conn, dev)
    assert [h["version"] for h in hist] == ["1.10.0", "1.0.0"]
    assert hist[0]["heap_min"] == 41000 and hist[1]["reset_cause"] == "power-on" and hist[1]["fault_list"] == []
    assert hist[0]["wifi_rssi"] is None  # a column without a value
    both = list(rows.values())
    assert [x["device_id"] for x in data.filter_fleet(both, "N01")] == [dev]  # any active fault, not only the first
    assert [x["device_id"] for x in data.filter_fleet(both, "—")] == [7]
    assert [x["device_id"] for x in data.sort_fleet(both, "device", descending=True)] == [dev, 7]
    assert [x["device_id"] for x in data.sort_fleet(both, "version")] == [dev, 7]  # no version: last
    assert data._version_key("1.10.0") > data._version_key("1.9.2")


def test_health_table_with_other_columns(sim_db):
    # the collector's own table may differ: missing columns read None, extra ones are ignored
    db = sqlite3.connect(sim_db)
    db.execute("DROP TABLE health")
    db.execute("CREATE TABLE health (device_id INTEGER, received_utc REAL, faults TEXT, build TEXT)")
    db.execute("INSERT INTO health VALUES(1001, 5.0, '14', 'abc')")
    db.commit()
    db.close()
    h = data.latest_health(data.connect(sim_db), 1001)
    assert h["version"] is None and h["fault_list"] == [("M05", data.fault_table()[7][2])]


def test_collector_health_rows(sim_db, summary):
    """The collector's own health table, written from the simulated device's HEALTH
    datagrams during the run, read by the console as its contract says."""
    db = data.connect(sim_db)
    assert data.has_health(db)
    (dev,) = _q(sim_db, "SELECT device_id FROM devices")[0]
    stored = _q(
        sim_db,
        "SELECT version, faults, reset_cause, boot_count, heap_min, store_fill_pct, meter_lqi, wifi_rssi, ota_state"
        " FROM health WHERE device_id=? ORDER BY received_utc DESC",
        dev,
    )
    assert stored, "the collector stored no HEALTH report of the run"
    version, faults, cause, boots, heap_min, fill, _lqi, rssi, ota = stored[0]
    # the boot report: the simulated device runs 1.0.0, booted once from power-on, OTA idle
    assert (version, cause, boots, ota) == ("1.0.0", "power-on", 1, "idle"), stored[0]
    assert 0 < heap_min < 96 * 1024 and 0 <= fill <= 100 and rssi is not None, stored[0]
    hist = data.health_history(db, dev)
    assert len(hist) == len(stored)
    assert [(h["version"], h["faults"], h["boot_count"], h["heap_min"]) for h in hist] == [
        (s[0], s[1], s[3], s[4]) for s in stored
    ]
    (row,) = data.fleet(db)
    assert row["version"] == "1.0.0"
    want = data.current_fault(data.latest_health(db, dev))
    assert (row["fault"], row["sentence"]) == want
    assert want[0] == (data.parse_faults(faults)[0][0] if faults else "OK"), (faults, want)


def test_chart_series_are_the_readings(sim_db):
    dev = _q(sim_db, "SELECT device_id FROM devices")[0][0]
    conn = data.connect(sim_db)
    t0, t1 = data.reading_span(conn, dev)
    t1 += 1
    # only values their flags vouch for (F_DEMAND 2, F_SUMMATION 4): the others are stored as 0
    ((n, wmax, wmin),) = _q(sim_db, "SELECT count(*), max(demand_w), min(demand_w) FROM readings WHERE flags & 2")
    ((dmin, dmax),) = _q(sim_db, "SELECT min(delivered_wh), max(delivered_wh) FROM readings WHERE flags & 4")
    assert _q(sim_db, "SELECT count(*) FROM readings WHERE flags & 2 = 0 AND demand_w = 0")[0][0] > 0  # they exist
    series = data.demand_series(conn, dev, t0, t1, points=1_000_000)
    assert sum(1 for _ in series) <= n and max(s[2] for s in series) == wmax and min(s[1] for s in series) >= wmin
    few = data.demand_series(conn, dev, t0, t1, points=20)
    assert 10 <= len(few) <= 21 and max(s[2] for s in few) == wmax
    energy = data.energy_per_hour(conn, dev, t0, t1)
    assert energy and all(h % 3600 == 0 for h, _wh in energy)
    assert sum(wh for _h, wh in energy) == dmax - dmin > 0  # the register only rises in a run
    live = data.live_since(conn, dev)
    assert len(live) == _q(sim_db, "SELECT count(*) FROM live")[0][0] > 0
    assert data.live_since(conn, dev, live[-1][0]) == []


def _login(client, token):
    r = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)[1]
    r = client.post("/login", data={"token": token, "csrf": csrf})
    assert r.status_code == 302, r.text
    new = re.search(r'name="csrf" value="([^"]+)"', client.get("/").text)[1]
    assert new != csrf  # a login starts a new session: its CSRF token too
    return new


def test_auth_and_csrf(sim_db):
    token = "t" * 32
    c = make_app(sim_db, token).test_client()
    assert c.get("/").headers["Location"].startswith("/login")
    assert c.get("/device/1001/live.json").status_code == 401
    r = c.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', r.text)[1]
    assert c.post("/login", data={"token": "wrong" * 8, "csrf": csrf}).status_code == 200  # form again
    assert c.get("/").status_code == 302
    assert c.post("/login", data={"token": token}).status_code == 400  # no CSRF token
    csrf = _login(c, token)
    assert c.get("/").status_code == 200
    before = _q(sim_db, "SELECT count(*) FROM commands")[0][0]
    assert c.post("/device/1001/realtime", data={"seconds": "600"}).status_code == 400
    assert c.post("/device/1001/realtime", data={"seconds": "600", "csrf": "x" + csrf}).status_code == 400
    assert _q(sim_db, "SELECT count(*) FROM commands")[0][0] == before
    # a session signed under another token is not accepted
    other = make_app(sim_db, "u" * 32).test_client()
    other.set_cookie("ihd_console", c.get_cookie("ihd_console").value)
    assert other.get("/").status_code == 302


def test_realtime_button_queues_what_the_cli_queues(sim_db, tmp_path):
    c = make_app(sim_db, "t" * 32).test_client()
    csrf = _login(c, "t" * 32)
    r = c.post("/device/1001/realtime", data={"seconds": "300", "csrf": csrf})
    assert r.status_code == 302
    page = c.get("/device/1001").text
    ((cid, kind, payload, done),) = _q(
        sim_db, "SELECT cmd_id, kind, hex(payload), done FROM commands WHERE done IS NULL"
    )
    assert f"Command {cid} queued: real-time mode for 300 s" in page and f'data-cmd="{cid}"' in page
    assert done is None
    # the CLI on a copy of the same database queues the same command
    cli_db = tmp_path / "cli.sqlite"
    copy_db(sim_db, cli_db)
    _q(cli_db, "DELETE FROM commands WHERE cmd_id=?", cid)
    r = subprocess.run(
        [sys.executable, "-m", "ihd.collector", "--db", str(cli_db), "realtime", "1001", "--seconds", "300"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert _q(cli_db, "SELECT kind, hex(payload) FROM commands WHERE done IS NULL") == [(kind, payload)]
    assert (kind, payload) == (1, "012C")
    # an unknown device: one line, nothing queued
    with pytest.raises(actions.ActionError, match="not registered"):
        actions.request_realtime(sim_db, 4242)


def test_ota_button(sim_db, tmp_path):
    ota = [sys.executable, "-m", "ihd.ota"]
    img = tmp_path / "img"
    img.mkdir()
    for args in (
        ["make-image", "--output", str(tmp_path / "raw.bin"), "--version", "1.2.3", "--size", "65536"],
        ["keygen", str(tmp_path / "key.pem")],
        ["sign", "-k", str(tmp_path / "key.pem"), "-o", str(img / "fw-1.2.3.bin"), str(tmp_path / "raw.bin")],
    ):
        r = subprocess.run(ota + args, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    (img / "junk.bin").write_bytes(b"x" * 100)
    c = make_app(sim_db, "t" * 32, ota_dir=img, ota_url="http://127.0.0.1:8070/").test_client()
    csrf = _login(c, "t" * 32)
    page = c.get("/device/1001").text
    assert "<option>fw-1.2.3.bin</option>" in page
    c.post("/device/1001/ota", data={"image": "fw-1.2.3.bin", "csrf": csrf})
    page = c.get("/device/1001").text
    ((cid, kind, payload),) = _q(sim_db, "SELECT cmd_id, kind, payload FROM commands WHERE done IS NULL")
    assert kind == 2 and b"1.2.3" in payload and b"http://127.0.0.1:8070/fw-1.2.3.bin" in payload
    assert f"Command {cid} queued: update to 1.2.3 from http://127.0.0.1:8070/fw-1.2.3.bin" in page
    # what `ihd ota request-update --print` would queue
    r = subprocess.run(
        ota
        + ["request-update", "--device", "1001", "--url", "http://127.0.0.1:8070/fw-1.2.3.bin", "--print"]
        + [str(img / "fw-1.2.3.bin")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert f'"payload": "{payload.hex()}"' in r.stdout
    c.post("/device/1001/ota", data={"image": "junk.bin", "csrf": csrf})
    assert "Not queued: not a signed image" in c.get("/device/1001").text
    c.post("/device/1001/ota", data={"image": "../raw.bin", "csrf": csrf})
    assert "Not queued: no image" in c.get("/device/1001").text
    assert _q(sim_db, "SELECT count(*) FROM commands WHERE done IS NULL")[0][0] == 1


def _console(*args, timeout=20):
    cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "ihd.collector.console", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={"PYTHONPATH": str(TOOLS)})


def test_clear_errors(sim_db, tmp_path):
    tok = tmp_path / "cfg" / "token"
    r = _console("--db", tmp_path / "nope.sqlite", "--token-file", tok)
    assert r.returncode == 1 and r.stdout == ""
    assert (
        r.stderr == f"console: collector database {tmp_path / 'nope.sqlite'} does not exist "
        "(give the --db of `ihd collector serve`)\n"
    )
    assert not tok.exists()  # a wrong --db creates no token
    (tmp_path / "junk.sqlite").write_text("not a database\n" * 100)
    r = _console("--db", tmp_path / "junk.sqlite", "--token-file", tok)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1 and "cannot be read" in r.stderr, r.stderr
    empty = tmp_path / "empty.sqlite"
    sqlite3.connect(empty).execute("CREATE TABLE t(x)").connection.close()
    r = _console("--db", empty, "--token-file", tok)
    assert r.returncode == 1 and "is not a collector database" in r.stderr and "Traceback" not in r.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _console("--db", sim_db, "--token-file", tok, "--port", port)
    assert r.returncode == 1
    assert (
        r.stderr == f"console: port {port} on 127.0.0.1 is in use: stop what holds it or give --port another number\n"
    )
    # the token: made 0600 at the first start and printed then only
    assert tok.stat().st_mode & 0o777 == 0o600 and tok.parent.stat().st_mode & 0o777 == 0o700
    assert tok.read_text().strip() in r.stdout
    tok.chmod(0o644)
    r = _console("--db", sim_db, "--token-file", tok)
    assert (
        r.returncode == 1
        and r.stderr == f"console: token file {tok} is readable by others (mode 644): chmod 600 {tok}\n"
    )


def test_runs_as_written_from_any_folder(tmp_path):
    # `ihd collector console` (the .venv's console script) from another folder, no venv in the environment
    ihd = str(Path(sys.executable).parent / "ihd")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TOOLS)}
    r = subprocess.run(
        [ihd, "collector", "console", "--db", "nope.sqlite"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=30,
    )
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr.startswith("console: collector database nope.sqlite does not exist"), r.stderr


def test_token_printed_once_and_checked(sim_db, tmp_path):
    tok = tmp_path / "token"
    a = Console(sim_db, tok)
    try:
        token = tok.read_text().strip()
        assert any(token in ln for ln in a.lines)
    finally:
        a.stop()
    b = Console(sim_db, tok)
    try:
        assert not any(token in ln for ln in b.lines)
        with urllib.request.urlopen(b.url + "/") as resp:  # follows the redirect to the login form
            assert resp.url.startswith(b.url + "/login") and "Operator login" in resp.read().decode()
    finally:
        b.stop()
