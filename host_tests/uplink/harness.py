"""CPython side of the uplink tests: collector and impaired network on loopback, devices on MicroPython."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import mpy as mpymod  # noqa: E402
from ihd.collector import ingest as collector_mod  # noqa: E402
from ihd.sim import netimpair  # noqa: E402

DEVICE = Path(__file__).resolve().parent / "device.py"
ENCODE_BATCHES = Path(__file__).resolve().parent / "encode_batches.py"
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
        # devices here run up to 1000x real time: the collector's rate limits scale with it
        self.col = collector_mod.Collector(self.db, speed=1000)
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
        """(seq, utc, demand, delivered, received, flags) of every reading held, all epochs."""
        rows = self.call(
            lambda: self.col.db.execute(
                "SELECT seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings "
                "WHERE device_id=? ORDER BY seq",
                (dev,),
            ).fetchall()
        )
        return [tuple(r) for r in rows]

    def readings_by_epoch(self, dev: int = DEV) -> dict[int, dict[int, tuple]]:
        """{epoch: {seq: (utc, demand, delivered, received, flags)}} (epoch 0 before epochs existed)."""

        def q():
            cols = [r[1] for r in self.col.db.execute("PRAGMA table_info(readings)")]
            ep = "epoch" if "epoch" in cols else "0"
            return self.col.db.execute(
                f"SELECT {ep}, seq, utc_s, demand_w, delivered_wh, received_wh, flags FROM readings WHERE device_id=?",
                (dev,),
            ).fetchall()

        out: dict[int, dict[int, tuple]] = {}
        for e, s, *v in self.call(q):
            out.setdefault(e, {})[s] = tuple(v)
        return out

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


def fw_batches(
    rows, cap: int, heap: str = "96k", timeout: float = 300, state_dir=None, gas: int = 0
) -> list[tuple[int, bytes]]:
    """The firmware encoder (MicroPython) over `rows`: [(readings in the batch, payload)],
    each batch filled until the next reading would not fit `cap` bytes (gas: bytes for
    the gas section of a version-3 batch)."""
    text = "".join(",".join(map(str, r)) + "\n" for r in rows)
    r = mpymod.run(
        path=ENCODE_BATCHES, args=(cap, gas), input=text.encode(), heap=heap, state_dir=state_dir, timeout=timeout
    )
    out = []
    for line in r.stdout.splitlines():
        n, h = line.split()
        out.append((int(n), bytes.fromhex(h)))
    return out


def run_device(state_dir: Path, env: dict, heap: str = "256k", timeout: float = 600, key: bytes = KEY, raw=False):
    """One boot of the test device; returns (status dict, dumped readings[, stdout])."""
    e = {"UPL_KEY": key.hex(), "UPL_DEV": DEV, **env}
    e["MICROPYPATH"] = f"{DEVICE.parent}:{mpymod.module_path()}"
    r = mpymod.run(path=DEVICE, heap=heap, state_dir=state_dir, env=e, timeout=timeout)
    return _result(r, raw)


def crash_device(state_dir: Path, env: dict, after_s: float, heap: str = "256k", key: bytes = KEY) -> str:
    """One boot of the test device, killed (SIGKILL, like a power cut) after `after_s` real seconds;
    returns what it printed."""
    e = mpymod.env_for(state_dir, {"UPL_KEY": key.hex(), "UPL_DEV": DEV, **env})
    e["MICROPYPATH"] = f"{DEVICE.parent}:{mpymod.module_path()}"
    p = subprocess.Popen(mpymod.command(DEVICE, heap), env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=after_s)
        raise AssertionError(f"device exited before the power cut ({p.returncode}):\n{out.decode()[-2000:]}")
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out.decode()


def boot_until_exit(state_dir: Path, env: dict, heap: str = "256k", key: bytes = KEY, timeout: float = 600) -> str:
    """One boot of the test device that may stop dead (UPL_CMD_EXIT); returns what it printed."""
    e = mpymod.env_for(state_dir, {"UPL_KEY": key.hex(), "UPL_DEV": DEV, **env})
    e["MICROPYPATH"] = f"{DEVICE.parent}:{mpymod.module_path()}"
    p = subprocess.run(mpymod.command(DEVICE, heap), env=e, capture_output=True, timeout=timeout)
    return p.stdout.decode()


def _result(r, raw):
    status, rows = None, []
    for line in r.stdout.splitlines():
        if line.startswith("status "):
            status = json.loads(line[7:])
        elif line.startswith("r "):
            rows.append(tuple(int(x) for x in line[2:].split(",")))
    if status is None:
        raise AssertionError("device printed no status:\n" + r.stdout[-3000:])
    return (status, rows, r.stdout) if raw else (status, rows)


def realtime_trial(
    tmp: Path, speed: int = 100, run_s: int = 5400, rt_s: int = 45, seed: int = 4, t0: int = 1_700_000_000
):
    """A device behind a NAT that forgets idle mappings after 60 s; real-time requests
    queued at random moments. Returns latencies (device s, request -> first streamed
    reading), readings streamed per request, per-reading delays (real s, handed to the
    uplink -> stored by the collector), the device status, the NAT's counters and the
    collector's traffic by kind."""
    import random
    import time

    net = Net(tmp / "rt.db", impair=dict(nat_timeout=60, speed=speed, seed=seed))
    result: dict = {}

    def device():
        env = {"IHD_CLOCK": f"utc={t0},speed={speed}", "UPL_RUN_S": run_s, "UPL_EPS": net.endpoints(), "UPL_RTLOG": 1}
        try:
            result["out"] = run_device(tmp / "rtdev", env, raw=True)
        except BaseException as e:  # re-raised below, in the caller's thread
            result["err"] = e

    def q(sql, *args):
        return net.call(lambda: net.col.db.execute(sql, args).fetchall())

    th = threading.Thread(target=device)
    th.start()
    rng = random.Random(seed)
    latencies, streamed = [], []
    try:
        time.sleep(300 / speed)  # boot and HELLO
        t_end = time.monotonic() + (run_s - 600) / speed
        while time.monotonic() < t_end and "err" not in result:
            time.sleep(rng.uniform(60, 240) / speed)  # a random moment
            cid = net.call(net.col.request_realtime, DEV, rt_s)
            created = q("SELECT created FROM commands WHERE cmd_id=?", cid)[0][0]
            first = None
            while first is None and time.time() < created + 400 / speed + 1:
                time.sleep(0.005)
                first = q("SELECT min(received_at) FROM live WHERE device_id=? AND received_at>=?", DEV, created)[0][0]
            if first is None:
                latencies.append(float("inf"))
                continue
            latencies.append((first - created) * speed)
            time.sleep((rt_s + 30) / speed)  # the stream must have stopped by itself by now
            streamed.append(q("SELECT count(*) FROM live WHERE device_id=? AND received_at>=?", DEV, created)[0][0])
        th.join(run_s / speed + 120)
        live = dict(q("SELECT seq, received_at FROM live WHERE device_id=?", DEV))
        counts = dict(net.imps[0].counts)
        traffic = net.call(net.col.stats)["devices"][DEV]["traffic"]
    finally:
        th.join(run_s / speed + 120)
        net.stop()
    if "err" in result:
        raise result["err"]
    status, _, stdout = result["out"]
    sent = [line.split() for line in stdout.splitlines() if line.startswith("rt ")]
    delays = [live[int(s)] - float(t) for _, s, t in sent if int(s) in live]
    return {
        "latencies": latencies,
        "streamed": streamed,
        "delays": delays,
        "sent": len(sent),
        "status": status,
        "nat": counts,
        "traffic": traffic,
    }
