"""Helpers of the support console tests (a module of its own: `conftest` is a name
every test folder uses)."""

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import mpy as mpymod

ROOT = mpymod.ROOT
TOOLS = ROOT / "tools"
if str(TOOLS) not in sys.path:
    sys.path.insert(0, str(TOOLS))

# The columns docs/console.md says the console expects in `health`.
HEALTH_DDL = (
    "CREATE TABLE health (device_id INTEGER NOT NULL, received_utc REAL NOT NULL, version TEXT, faults TEXT, "
    "reset_cause TEXT, boot_count INTEGER, heap_min INTEGER, store_fill_pct REAL, meter_lqi INTEGER, "
    "wifi_rssi INTEGER, ota_state TEXT)"
)


def add_health(db_path: Path, device_id: int, rows: list[dict]) -> None:
    """Health rows as the collector will store them (docs/console.md contract); the
    table is created only if the collector has not made one yet."""
    db = sqlite3.connect(db_path)
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='health'").fetchone() is None:
        db.execute(HEALTH_DDL)
    have = [r[1] for r in db.execute("PRAGMA table_info(health)")]
    for row in rows:
        row = {k: v for k, v in {"device_id": device_id, **row}.items() if k in have}
        db.execute(f"INSERT INTO health ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
    db.commit()
    db.close()


def ensure_chromium() -> tuple[str, str]:
    """Debian's chromium and chromedriver, installed by `make chromium` when missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        r = subprocess.run(["make", "-s", "chromium"], cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, "make chromium failed: " + (r.stderr or r.stdout)[-1500:]
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "chromium / chromedriver not on PATH after make chromium"
    return chromium, driver


class Console:
    """`python -m ihd.collector.console` (or `ihd collector console`) as a user starts it, on a free port."""

    def __init__(self, db: Path, token_file: Path, *extra: str, ihd: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": str(TOOLS)}
        cmd = [str(ROOT / ".venv" / "bin" / "python"), "-m", "ihd.collector.console"]
        if ihd:  # as the README says: the one host command
            cmd = [str(ROOT / ".venv" / "bin" / "ihd"), "collector", "console"]
        cmd += ["--db", str(db), "--port", "0"]
        cmd += ["--token-file", str(token_file), *extra]
        self.log = token_file.parent / "console.log"  # werkzeug's request log: a file, never a full pipe
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        self.lines = []
        deadline = time.monotonic() + 30
        self.url = None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if line.startswith("console: http://"):
                self.url = line.split()[1].rstrip("/")
                break
        if self.url is None:
            self.stop()
            raise AssertionError(f"console did not start: {''.join(self.lines)} {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def copy_db(src_path: Path, dst_path: Path) -> Path:
    """A consistent copy of a live SQLite database (WAL included)."""
    src = sqlite3.connect(src_path)
    dst = sqlite3.connect(dst_path)
    src.backup(dst)
    src.close()
    dst.close()
    return dst_path


def wait(cond, timeout=15.0, what="condition"):
    from selenium.common.exceptions import WebDriverException

    t = time.monotonic() + timeout
    while time.monotonic() < t:
        try:
            v = cond()
        except WebDriverException:  # the page changed under the lookup: look again
            v = None
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def loaded(b, url_part, what):
    """Wait for a navigation: the URL shows it and the new document is complete (a
    form submitted by script or a click returns before the next page is there)."""
    wait(
        lambda: url_part in b.current_url and b.execute_script("return document.readyState") == "complete",
        what=what,
    )
