"""CPython side of the uplink tests: collector and impaired network on loopback, devices on MicroPython."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import collector as collector_mod  # noqa: E402
import netimpair  # noqa: E402

import mpy as mpymod  # noqa: E402

DEVICE = Path(__file__).resolve().parent / "device.py"
KEY = bytes(range(32))
DEV = 4097


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Net:
    """A collector (own thread, own asyncio loop) behind optional netimpair proxies."""

    def __init__(self, db: Path, n_endpoints: int = 1, impair: dict | None = None, devices=((DEV, KEY),)) -> None:
        self.db = db
        self.impair = impair
        self.devices = devices
        self.col_ports = [free_udp_port() for _ in range(n_endpoints)]
        self.front_ports = [free_udp_port() for _ in range(n_endpoints)] if impair is not None else self.col_ports
        self.imps: list[netimpair.Impairer] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, daemon=True)
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("collector did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.col = collector_mod.Collector(self.db)
        for dev, key in self.devices:
            self.col.add_device(dev, key)
        ev = asyncio.Event()
        self.serve_task = asyncio.ensure_future(
            collector_mod.serve(self.col, [("127.0.0.1", p) for p in self.col_ports], 0, ev)
        )
        await ev.wait()
        if self.impair is not None:
            for fp, cp in zip(self.front_ports, self.col_ports, strict=True):
                imp = netimpair.Impairer(("127.0.0.1", fp), ("127.0.0.1", cp), **self.impair)
                await imp.start()
                self.imps.append(imp)

    def call(self, fn, *args):
        """Run fn(*args) on the collector's thread (its SQLite connection lives there)."""
        fut = asyncio.run_coroutine_threadsafe(self._call(fn, *args), self.loop)
        return fut.result(30)

    async def _call(self, fn, *args):
        return fn(*args)

    def set_down(self, down: bool) -> None:
        for imp in self.imps:
            self.loop.call_soon_threadsafe(setattr, imp, "down_forced", down)

    def endpoints(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.front_ports)

    def readings(self, dev: int = DEV) -> list[tuple]:
        rows = self.call(
            lambda: self.col.db.execute(
                "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings "
                "WHERE device_id=? ORDER BY seq",
                (dev,),
            ).fetchall()
        )
        return [tuple(r) for r in rows]

    async def _shutdown(self) -> None:
        for imp in self.imps:
            imp.close()
        self.serve_task.cancel()
        try:
            await self.serve_task
        except asyncio.CancelledError:
            pass
        self.col.db.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def run_device(state_dir: Path, env: dict, heap: str = "256k", timeout: float = 600, key: bytes = KEY, raw=False):
    """One boot of the test device; returns (status dict, dumped readings[, stdout])."""
    e = {"UPL_KEY": key.hex(), "UPL_DEV": DEV, **env}
    e["MICROPYPATH"] = f"{DEVICE.parent}:{mpymod.module_path()}"
    r = mpymod.run(path=DEVICE, heap=heap, state_dir=state_dir, env=e, timeout=timeout)
    status, rows = None, []
    for line in r.stdout.splitlines():
        if line.startswith("status "):
            status = json.loads(line[7:])
        elif line.startswith("r "):
            rows.append(tuple(int(x) for x in line[2:].split(",")))
    if status is None:
        raise AssertionError("device printed no status:\n" + r.stdout[-3000:])
    return (status, rows, r.stdout) if raw else (status, rows)
