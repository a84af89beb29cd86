"""Which database a collector uses: `--db sqlite:PATH | postgresql://... | PATH`.

A bare path (and `sqlite:PATH`) is the embedded SQLite store (collector/store.py,
the default: nothing to install or run); a `postgresql://` or `postgres://` URL
is the PostgreSQL store (collector/pg.py, docs/fleet.md). Both are the same Store
methods under the same protocol class (collector.Collector), so everything the
collector does, it does the same on either.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def is_postgres(spec) -> bool:
    return str(spec).startswith(("postgresql://", "postgres://"))


def sqlite_path(spec) -> Path:
    s = str(spec)
    return Path(s[len("sqlite:") :] if s.startswith("sqlite:") else s)


def db_errors() -> tuple:
    """Exceptions a database may raise (a locked SQLite, a PostgreSQL gone away)."""
    if "psycopg" in __import__("sys").modules:
        import psycopg

        return (sqlite3.Error, psycopg.Error)
    return (sqlite3.Error,)


def open_collector(spec, **kw):
    """collector.Collector over the database `spec` names."""
    from ihd.collector import ingest as collector

    if is_postgres(spec):
        try:
            from ihd.collector import pg as collector_pg
        except ImportError as e:
            raise ValueError(f"the PostgreSQL backend needs psycopg ({e}): run `make venv`") from None
        return collector_pg.pg_collector(collector.Collector)(str(spec), **kw)
    return collector.Collector(sqlite_path(spec), **kw)
