"""The throw-away PostgreSQL of the tests and benchmarks (tools/ihd/dev/pgtmp.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_each_test_gets_its_own_empty_database(pg_server, pg_url):
    other = pg_server.new_database()
    assert other != pg_url
    db = pg_url.rsplit("/", 1)[1]
    pg_server.psql("CREATE TABLE t (x int); INSERT INTO t VALUES (7)", db)
    assert pg_server.psql("SELECT sum(x) FROM t", db) == "7"
    assert pg_server.psql("SELECT count(*) FROM pg_tables WHERE schemaname='public'", other.rsplit("/", 1)[1]) == "0"


def test_cli_start_url_stop(tmp_path):
    folder = Path("/tmp") / f"ihd-pg-cli-{tmp_path.name}"
    tool = [sys.executable, "-m", "ihd.dev.pgtmp"]
    r = subprocess.run([*tool, "start", "--dir", str(folder), "--fast"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    try:
        url = r.stdout.strip()
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        again = subprocess.run([*tool, "start", "--dir", str(folder)], capture_output=True, text=True)
        assert again.returncode == 2 and "already holds a server" in again.stderr and "Traceback" not in again.stderr
        assert (
            subprocess.run([*tool, "url", "--dir", str(folder)], capture_output=True, text=True).stdout.strip() == url
        )
    finally:
        assert subprocess.run([*tool, "stop", "--dir", str(folder)]).returncode == 0
    assert not folder.exists()
    r = subprocess.run([*tool, "url", "--dir", str(folder)], capture_output=True, text=True)
    assert r.returncode == 2 and "no server in" in r.stderr
