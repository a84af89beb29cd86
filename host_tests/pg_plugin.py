"""pytest fixtures for a throw-away PostgreSQL (tools/ihd/dev/pgtmp.py): one server per
test session, started only when a test asks for it, on a free loopback port,
fsync off; `pg_url` is a fresh, empty database of it for each test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from ihd.dev import pgtmp  # noqa: E402


@pytest.fixture(scope="session")
def pg_server():
    try:
        srv = pgtmp.PgServer.start(fast=True)
    except pgtmp.PgError as e:
        pytest.fail(f"throw-away PostgreSQL: {e}", pytrace=False)
    yield srv
    srv.stop()


@pytest.fixture
def pg_url(pg_server) -> str:
    return pg_server.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def collector_db(request, tmp_path) -> str:
    """A fresh, empty collector database on each backend (tools/ihd/collector/db.py):
    a SQLite file, or a database of the session's throw-away PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "c.db")
    pytest.importorskip("psycopg", reason="psycopg is not installed: `make venv` installs requirements.txt")
    return request.getfixturevalue("pg_url")
