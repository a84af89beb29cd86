"""A throw-away PostgreSQL server for tests and benchmarks: Debian's `postgresql`
binaries, `initdb` + `pg_ctl` in a folder of its own, on a free loopback port.

    dev/pgtmp.py start [--dir build/postgres] [--port N] [--fast]   # prints the URL
    dev/pgtmp.py url [--dir build/postgres]
    dev/pgtmp.py stop [--dir build/postgres]                         # stops it, removes the folder

From Python: `srv = PgServer.start(folder, fast=True)`, `srv.url`, `srv.new_database()`
(a fresh database's URL), `srv.stop()`. host_tests/pg_plugin.py is the pytest fixture.

`--fast` turns off fsync (tests: a crash of the machine loses nothing they need);
without it the server is as durable as a production one (benchmarks). Running as
root (CI, the developers' machines), the server runs as the `postgres` user that
the Debian package creates: PostgreSQL refuses to run as root. Stdlib only, so it
runs under any python3; no binaries: `make pg-server` installs the package.
"""

from __future__ import annotations

import argparse
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install Debian's PostgreSQL server: `make pg-server` (apt-get install postgresql)"


class PgError(RuntimeError):
    pass


def bindir() -> Path:
    """The newest installed server's bin folder (Debian keeps them out of PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise PgError(f"no PostgreSQL server found (no initdb): {INSTALL_HINT}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner() -> list[str]:
    """Prefix that runs a command as the server's owner: postgres when we are root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PgError(f"running as root and there is no 'postgres' user to run the server as: {INSTALL_HINT}")
    return ["runuser", "-u", "postgres", "--"]


class PgServer:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = Path(folder)
        self.port = port
        self.url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        self._n = 0

    @classmethod
    def start(cls, folder: str | Path | None = None, port: int = 0, fast: bool = False) -> PgServer:
        bins = bindir()
        base = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="ihd-pg-"))
        if (base / "data" / "PG_VERSION").exists():
            raise PgError(f"{base} already holds a server: `dev/pgtmp.py stop --dir {base}` first")
        base.mkdir(parents=True, exist_ok=True)
        data, sock = base / "data", base / "sock"
        for d in (data, sock):
            d.mkdir(exist_ok=True)
        pre = _as_owner()
        if pre:  # the server's user must reach its folders (a tmp folder is 0700 root)
            os.chmod(base, 0o755)
            for d in (data, sock):
                shutil.chown(d, "postgres", "postgres")
        port = port or free_port()
        r = subprocess.run(
            [*pre, str(bins / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise PgError(f"initdb failed: {r.stderr.strip()[-800:]}")
        opts = [
            f"-p {port}",
            f"-k {sock}",
            "-c listen_addresses=127.0.0.1",
            "-c max_connections=200",
            "-c shared_buffers=256MB",
            "-c max_wal_size=2GB",
            "-c log_min_messages=warning",
        ]
        if fast:
            opts += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        (base / "opts").write_text(" ".join(opts) + "\n")  # resume() starts it again with them
        log = data / "server.log"
        r = subprocess.run(
            [
                *pre,
                str(bins / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-w",
                "-t",
                "60",
                "-o",
                " ".join(opts),
                "start",
            ],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            tail = log.read_text()[-800:] if log.exists() else r.stderr
            raise PgError(f"pg_ctl start failed on port {port}: {tail.strip()}")
        (base / "url").write_text(f"postgresql://postgres@127.0.0.1:{port}/postgres\n")
        return cls(base, port)

    @classmethod
    def attach(cls, folder: str | Path) -> PgServer:
        f = Path(folder) / "url"
        if not f.exists():
            raise PgError(f"no server in {folder}: `dev/pgtmp.py start --dir {folder}` first")
        url = f.read_text().strip()
        return cls(Path(folder), int(url.rsplit(":", 1)[1].split("/")[0]))

    def psql(self, sql: str, db: str = "postgres") -> str:
        r = subprocess.run(
            [
                str(bindir() / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
            ]
            + ["-U", "postgres", "-d", db, "-c", sql],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise PgError(f"psql: {r.stderr.strip()}")
        return r.stdout.strip()

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database on this server; its URL."""
        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}_{int(time.time() * 1000) % 10**8}"
        self.psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url.rsplit("/", 1)[0] + "/" + name

    def pause(self) -> None:
        """Stop the server (fast: sessions are cut, as in a restart), keeping its data and port."""
        data = self.folder / "data"
        r = subprocess.run(
            [*_as_owner(), str(bindir() / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise PgError(f"pg_ctl stop failed: {r.stderr.strip()}")

    def resume(self) -> None:
        """Start a paused server again on the same port with the same options."""
        data = self.folder / "data"
        opts = (self.folder / "opts").read_text().strip()
        r = subprocess.run(
            [*_as_owner(), str(bindir() / "pg_ctl"), "-D", str(data), "-l", str(data / "server.log")]
            + ["-w", "-t", "60", "-o", opts, "start"],
            capture_output=True,
            text=True,
        )
        if r.returncode:
            raise PgError(f"pg_ctl start failed: {r.stderr.strip()}")

    def stop(self, remove: bool = True) -> None:
        data = self.folder / "data"
        if data.exists():
            subprocess.run(
                [*_as_owner(), str(bindir() / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cmd", choices=("start", "url", "stop"))
    ap.add_argument("--dir", default="build/postgres", help="the server's folder (default: %(default)s)")
    ap.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default: a free one)")
    ap.add_argument("--fast", action="store_true", help="fsync off (tests; not for durability figures)")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "start":
            srv = PgServer.start(Path(a.dir).resolve(), a.port, a.fast)
            print(srv.url)
            print(f"pgtmp: server in {srv.folder}; `dev/pgtmp.py stop --dir {a.dir}` ends it", file=sys.stderr)
        elif a.cmd == "url":
            print(PgServer.attach(a.dir).url)
        else:
            PgServer.attach(Path(a.dir).resolve()).stop()
    except PgError as e:
        print(f"pgtmp: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
