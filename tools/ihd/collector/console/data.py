"""The console's read layer: everything it shows, read from the collector's
SQLite database (tools/ihd/collector/store.py owns that schema; this module never
creates or alters a table).

Device health comes from the collector's `health` table, one row per HEALTH
datagram (issue 15 item 2; schema version 3). In a database without it every
health field reads None (the pages show "—"). The columns the console expects are listed in
HEALTH_COLUMNS and in docs/console.md; a missing column reads None too, so a
table with fewer or more columns still works.

The fault table is parsed from firmware/faults.py with `ast` (the firmware is
never imported into CPython): one definition for the display and the console.
"""

from __future__ import annotations

import ast
import functools
import sqlite3
import time
from pathlib import Path

# The checkout this module lives in: the nearest folder above holding firmware/faults.py
# (so the console can move within tools/ without a path to change).
ROOT = next(
    (p for p in Path(__file__).resolve().parents if (p / "firmware" / "faults.py").is_file()),
    Path(__file__).resolve().parents[4],
)
FAULTS_PY = ROOT / "firmware" / "faults.py"

# What the console reads from `health` (docs/console.md, "The health table").
HEALTH_COLUMNS = (
    "device_id",
    "received_utc",
    "version",
    "faults",
    "reset_cause",
    "boot_count",
    "heap_min",
    "store_fill_pct",
    "meter_lqi",
    "wifi_rssi",
    "ota_state",
)
OK_SENTENCE = "No fault: everything is working."
DASH = "—"


class DataError(Exception):
    """The database cannot be read as a collector database (one line, for the user)."""


# -- faults ---------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def fault_table(path: Path = FAULTS_PY) -> tuple[tuple[int, str, str], ...]:
    """((number, code, sentence), ...) in priority order, from firmware/faults.py's
    TABLE and its const() names, read with ast."""
    tree = ast.parse(path.read_text(), str(path))
    consts: dict[str, int] = {}
    table = None
    for node in tree.body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1 or not isinstance(node.targets[0], ast.Name):
            continue
        name, val = node.targets[0].id, node.value
        if isinstance(val, ast.Call) and getattr(val.func, "id", None) == "const" and val.args:
            consts[name] = ast.literal_eval(val.args[0])
        elif name == "TABLE" and isinstance(val, ast.Tuple):
            table = val
    if table is None:
        raise DataError(f"{path}: no TABLE of faults found")
    out = []
    for row in table.elts:
        if not isinstance(row, ast.Tuple) or len(row.elts) != 3:
            raise DataError(f"{path}: a TABLE row is not (number, code, sentence)")
        num_node, code_node, text_node = row.elts
        num = consts[num_node.id] if isinstance(num_node, ast.Name) else ast.literal_eval(num_node)
        out.append((int(num), ast.literal_eval(code_node), ast.literal_eval(text_node)))
    return tuple(out)


def parse_faults(value) -> list[tuple[str, str]]:
    """A health row's `faults` ("M01,N02", or fault numbers "10,21") as
    [(code, sentence)] in priority order (the first is the one the display shows).
    Unknown entries keep their text and say so, after the known ones."""
    if value is None:
        return []
    table = fault_table()
    by_code = {c: (i, c, s) for i, (_n, c, s) in enumerate(table)}
    by_num = {str(n): (i, c, s) for i, (n, c, s) in enumerate(table)}
    known, unknown = [], []
    for part in str(value).replace(";", ",").split(","):
        p = part.strip()
        if not p:
            continue
        hit = by_code.get(p.upper()) or by_num.get(p)
        if hit is None:
            unknown.append((p, "Unknown fault code: check the firmware version against docs/faults.md."))
        elif hit not in known:
            known.append(hit)
    known.sort()
    return [(c, s) for _i, c, s in known] + unknown


# -- the database -------------------------------------------------------------------
def connect(db_path: str | Path) -> sqlite3.Connection:
    """Open the collector's database (mode=rw: no file is created, and a WAL database
    needs its -shm writable; the console itself only reads); DataError if it is missing,
    not SQLite, or not a collector database."""
    p = Path(db_path)
    if not p.is_file():
        raise DataError(f"collector database {p} does not exist (give the --db of `ihd collector serve`)")
    try:
        db = sqlite3.connect(f"file:{p.resolve()}?mode=rw", uri=True, timeout=10, check_same_thread=False)
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as e:
        raise DataError(f"collector database {p} cannot be read: {e}")
    missing = {"devices", "readings", "live", "commands"} - tables
    if missing:
        db.close()
        raise DataError(f"{p} is not a collector database (no table {', '.join(sorted(missing))})")
    db.row_factory = sqlite3.Row
    return db


def has_health(db: sqlite3.Connection) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='health'").fetchone() is not None


def _health_select(db: sqlite3.Connection) -> str:
    """SELECT list over `health` giving every HEALTH_COLUMNS name (NULL where the table lacks it)."""
    have = {r[1] for r in db.execute("PRAGMA table_info(health)")}
    return ", ".join(c if c in have else f"NULL AS {c}" for c in HEALTH_COLUMNS)


def _health_dict(row) -> dict:
    h = {c: (row[c] if row is not None else None) for c in HEALTH_COLUMNS}
    h["fault_list"] = parse_faults(h["faults"]) if row is not None else None
    return h


def latest_health(db: sqlite3.Connection, device_id: int) -> dict:
    """The device's latest health row; every field None when there is none (or no table)."""
    return _latest_health_all(db, device_id).get(device_id) or _health_dict(None)


def health_history(db: sqlite3.Connection, device_id: int, limit: int = 100) -> list[dict] | None:
    """Newest first; None when the collector has no health table yet."""
    if not has_health(db):
        return None
    rows = db.execute(
        f"SELECT {_health_select(db)} FROM health WHERE device_id=? ORDER BY received_utc DESC LIMIT ?",
        (device_id, limit),
    ).fetchall()
    return [_health_dict(r) for r in rows]


def current_fault(h: dict) -> tuple[str, str]:
    """(code, sentence) the display would show: the first active fault, "OK", or "—" unknown."""
    if h.get("fault_list") is None:
        return (DASH, "No health report yet.")
    if not h["fault_list"]:
        return ("OK", OK_SENTENCE)
    return h["fault_list"][0]


def _latest_health_all(db: sqlite3.Connection, device_id: int | None = None) -> dict[int, dict]:
    """{device_id: latest health} in one query (empty without a health table)."""
    if not has_health(db):
        return {}
    where, args = ("WHERE h.device_id=?", (device_id,)) if device_id is not None else ("", ())
    rows = db.execute(
        f"SELECT {_health_select(db)} FROM health h {where} "
        f"{'AND' if where else 'WHERE'} h.received_utc = "
        "(SELECT max(received_utc) FROM health x WHERE x.device_id=h.device_id)",
        args,
    ).fetchall()
    return {r["device_id"]: _health_dict(r) for r in rows}


def fleet(db: sqlite3.Connection, device_id: int | None = None) -> list[dict]:
    """Every registered device (or just `device_id`): last contact, readings held,
    commands pending, firmware and current fault from its latest health report."""
    where, args = ("WHERE d.device_id=?", (device_id,)) if device_id is not None else ("", ())
    health = _latest_health_all(db, device_id)
    out = []
    for r in db.execute(
        "SELECT d.device_id, d.last_seen, d.last_addr, d.epoch, "
        "(SELECT count(*) FROM readings r WHERE r.device_id=d.device_id) AS readings, "
        "(SELECT count(*) FROM commands c WHERE c.device_id=d.device_id AND c.done IS NULL) AS pending "
        f"FROM devices d {where} ORDER BY d.device_id",
        args,
    ):
        h = health.get(r["device_id"]) or _health_dict(None)
        code, sentence = current_fault(h)
        out.append(
            {
                "device_id": r["device_id"],
                "last_seen": r["last_seen"],
                "last_addr": r["last_addr"],
                "readings": r["readings"],
                "pending": r["pending"],
                "version": h["version"],
                "health": h,
                "fault": code,
                "sentence": sentence,
            }
        )
    return out


SORT_KEYS = ("device", "last", "version", "fault", "readings")


def sort_fleet(rows: list[dict], key: str, descending: bool = False) -> list[dict]:
    """Sort by one of SORT_KEYS; rows without the value (never seen, no health) go last."""
    order = {c: i for i, (_n, c, _s) in enumerate(fault_table())}

    def k(r):
        if key == "last":
            v = r["last_seen"]
        elif key == "version":
            v = _version_key(r["version"])
        elif key == "fault":
            v = -1 if r["fault"] == "OK" else order.get(r["fault"], len(order)) if r["fault"] != DASH else None
        elif key == "readings":
            v = r["readings"]
        else:
            v = r["device_id"]
        return v

    present = [r for r in rows if k(r) is not None]
    absent = [r for r in rows if k(r) is None]
    return sorted(present, key=k, reverse=descending) + absent


def _version_key(v):
    if v is None:
        return None
    parts = []
    for p in str(v).replace("-", ".").split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


def filter_fleet(rows: list[dict], fault: str) -> list[dict]:
    """Rows whose active faults include `fault` ("OK": none active; "—": no health; "" all)."""
    if not fault:
        return rows
    if fault in ("OK", DASH):
        return [r for r in rows if r["fault"] == fault]
    return [r for r in rows if any(c == fault for c, _s in (r["health"]["fault_list"] or []))]


def device(db: sqlite3.Connection, device_id: int) -> dict | None:
    """The fleet row of one device, with its last reading's time (device clock), or None."""
    rows = fleet(db, device_id)
    if not rows:
        return None
    span = reading_span(db, device_id)
    return {**rows[0], "last_utc": span[1] if span else None}


def commands(db: sqlite3.Connection, device_id: int, done_limit: int = 10) -> tuple[list[dict], list[dict]]:
    """(pending, recently done) commands of a device; pending oldest first, done newest first."""
    cols = "cmd_id, kind, length(payload) AS size, hex(payload) AS payload, created, sent, done, status"
    pending = db.execute(
        f"SELECT {cols} FROM commands WHERE device_id=? AND done IS NULL ORDER BY cmd_id", (device_id,)
    ).fetchall()
    done = db.execute(
        f"SELECT {cols} FROM commands WHERE device_id=? AND done IS NOT NULL ORDER BY cmd_id DESC LIMIT ?",
        (device_id, done_limit),
    ).fetchall()
    return [dict(r) for r in pending], [dict(r) for r in done]


# -- readings for the chart -------------------------------------------------------
# Reading flags (firmware/meter/reading.py): a value counts only when its flag says
# it came from this report; otherwise it is stored as 0 (a demand-only report has
# no summation, a summation report no demand).
F_DEMAND = 2
F_SUMMATION = 4
RANGES = {"day": 86400, "week": 7 * 86400}


def reading_span(db: sqlite3.Connection, device_id: int) -> tuple[int, int] | None:
    row = db.execute("SELECT min(utc_s), max(utc_s) FROM readings WHERE device_id=?", (device_id,)).fetchone()
    return None if row[0] is None else (row[0], row[1])


def demand_series(db: sqlite3.Connection, device_id: int, t0: int, t1: int, points: int = 480) -> list[tuple]:
    """[(utc_s, mean demand W, max demand W)] over [t0, t1), averaged into at most `points`
    buckets; readings without F_DEMAND (their demand_w is a placeholder 0) are left out."""
    step = max(1, (t1 - t0) // points)
    return [
        (r[0], r[1], r[2])
        for r in db.execute(
            "SELECT min(utc_s), avg(demand_w), max(demand_w) FROM readings "
            "WHERE device_id=? AND utc_s>=? AND utc_s<? AND flags & ? GROUP BY (utc_s-?)/? ORDER BY 1",
            (device_id, t0, t1, F_DEMAND, t0, step),
        )
    ]


def energy_per_hour(db: sqlite3.Connection, device_id: int, t0: int, t1: int) -> list[tuple[int, int]]:
    """[(hour start utc_s, Wh)]: delivered_wh (the meter's cumulative register) rise
    between consecutive readings that carry it (F_SUMMATION), booked to the hour of
    the later one. A fall (a replaced meter) counts as nothing."""
    rows = db.execute(
        "SELECT utc_s, delivered_wh FROM readings WHERE device_id=? AND utc_s>=? AND utc_s<? AND flags & ? "
        "ORDER BY utc_s",
        (device_id, t0 - 3600, t1, F_SUMMATION),
    ).fetchall()
    hours: dict[int, int] = {}
    prev = None
    for utc, wh in rows:
        if prev is not None and utc >= t0:
            h = utc - utc % 3600
            hours[h] = hours.get(h, 0) + max(0, wh - prev)
        prev = wh
    return sorted(hours.items())


def live_since(db: sqlite3.Connection, device_id: int, after_utc: int = 0, limit: int = 600) -> list[tuple[int, int]]:
    """[(utc_s, demand W)] of live (real-time mode) readings newer than after_utc, oldest first."""
    rows = db.execute(
        "SELECT utc_s, demand_w FROM live WHERE device_id=? AND utc_s>? ORDER BY utc_s DESC LIMIT ?",
        (device_id, after_utc, limit),
    ).fetchall()
    return [(r[0], r[1]) for r in reversed(rows)]


def live_recent(db: sqlite3.Connection, device_id: int, window_s: int = 900) -> list[tuple[int, int]]:
    """The last window_s seconds (device time) of live readings."""
    row = db.execute("SELECT max(utc_s) FROM live WHERE device_id=?", (device_id,)).fetchone()
    if row[0] is None:
        return []
    return live_since(db, device_id, row[0] - window_s)


def last_live_received(db: sqlite3.Connection, device_id: int) -> float | None:
    return db.execute("SELECT max(received_at) FROM live WHERE device_id=?", (device_id,)).fetchone()[0]


def ago(t: float | None, now: float | None = None) -> str:
    """'5 s ago', '3 min ago', '2 h ago', '4 d ago' (wall-clock seconds)."""
    if t is None:
        return DASH
    d = max(0, int((now if now is not None else time.time()) - t))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if d >= n:
            return f"{d // n} {unit} ago"
    return f"{d} s ago"
