"""Slow-drip servers against the OTA download (firmware/ota/http.py pace
checks), on the Unix port with the device clock accelerated as in `make run`.

A hostile or broken server that sends one byte just before each read times
out never trips the per-read timeout: without an overall deadline and a
minimum throughput it blocks updates for ever. Each case must end in a clean
failure (OTA_FAILED, a reason naming the breach, the slot never set to
boot), and the same updater must then install from a good server."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ota_hosttool import tool  # noqa: E402

HERE = Path(__file__).resolve().parent


# 128 KB on mp32 (firmware frozen, as on the device); the wheel compiles the
# firmware into its heap, and the OTA code (pace checks, key lists, board
# tags) no longer leaves room for the data in 128 KB there.
def heap128() -> str:
    return "128k" if os.environ.get("IHD_MICROPYTHON", "mp32") == "mp32" else "192k"


READ_TIMEOUT_MS = 500  # the fetcher's per-read timeout in these tests (real ms)
DRIP_S = 0.4  # one byte every 400 ms: just under the read timeout
SPEED = 60  # device clock: `make run`'s acceleration


@pytest.fixture(scope="module")
def files(keys, tmp_path_factory):
    d = tmp_path_factory.mktemp("drip")
    (d / "v1.bin").write_bytes(keys.sign(tool.make_image(size=12_000, version="1.0.0", secure_version=3)))
    (d / "v2.bin").write_bytes(keys.sign(tool.make_image(size=200_000, version="2.0.0", secure_version=3, seed=4)))
    return d


class DripServer:
    """Raw HTTP/1.1 server for one file. mode "body": headers at once, then
    the body a byte at a time; "headers": the header block itself dripped
    (an endless header line); "chunks": 1 KB every 50 ms (a server that keeps
    every window busy but is far too slow overall)."""

    def __init__(self, data: bytes, mode: str):
        self.data, self.mode = data, mode
        self.stop = threading.Event()
        self.connections = 0
        self.sent = 0
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            req = b""
            while b"\r\n\r\n" not in req:
                got = c.recv(4096)
                if not got:
                    return
                req += got
            start = 0
            for line in req.split(b"\r\n"):
                if line.lower().startswith(b"range: bytes="):
                    start = int(line.split(b"=")[1].split(b"-")[0])
            total = len(self.data)
            head = b'HTTP/1.1 %d X\r\nContent-Length: %d\r\nETag: "d"\r\n' % (206 if start else 200, total - start)
            if start:
                head += b"Content-Range: bytes %d-%d/%d\r\n" % (start, total - 1, total)
            if self.mode == "headers":
                c.sendall(head + b"X-Slow: ")
                while not self.stop.is_set():
                    time.sleep(DRIP_S)
                    c.sendall(b"a")
                return
            c.sendall(head + b"\r\n")
            step, pause = (1, DRIP_S) if self.mode == "body" else (1024, 0.05)
            for i in range(start, total, step):
                if self.stop.is_set():
                    return
                time.sleep(pause)
                c.sendall(self.data[i : i + step])
                self.sent += len(self.data[i : i + step])
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.lsock.close()


def drip_then_good(mpy, keys, files, mode, fetch_extra=""):
    data = (files / "v2.bin").read_bytes()
    drip = DripServer(data, mode)
    good = tool.serve_in_thread(files)
    try:
        bad_cmd = tool.update_command(f"http://127.0.0.1:{drip.port}/v2.bin", data)
        good_cmd = tool.update_command(f"http://127.0.0.1:{good.server_address[1]}/v2.bin", data)
        code = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import asyncio, binascii, time
import ota_devsim as D
from hal import unix_partition as UP
from hal.unix import Clock
import hal
D.factory({str(files / "v1.bin")!r}); D.power_on()
u = D.updater([binascii.unhexlify({keys.digest[keys.trusted]!r})], clock=Clock(speed={SPEED}))
async def attempt(cmd):
    try:
        return await asyncio.wait_for(u.run(cmd, timeout_ms={READ_TIMEOUT_MS}, backoff_ms=5{fetch_extra}), 40)
    except asyncio.TimeoutError:
        return "still-downloading-after-40s"
t0 = time.ticks_ms()
ok = asyncio.run(attempt({bad_cmd!r}))
took = time.ticks_diff(time.ticks_ms(), t0)
print(ok, u.status.state, u.status.error, (u.status.reason or "-").split(":")[0], UP.ota_state(),
      u.record.pending, hal.running_partition().info()[4])
print(took)
print(u.status.reason)
ok = asyncio.run(attempt({good_cmd!r}))   # a later request, same running device
print(ok, u.status.state, u.status.error, UP.ota_state())
"""
        out = mpy.run(code, heap=heap128(), timeout=120).stdout.strip().splitlines()[-4:]
    finally:
        drip.close()
        good.shutdown()
    return out, drip


@pytest.mark.parametrize("mode", ["body", "headers"])
def test_drip_feed_is_abandoned_by_the_throughput_window(mpy, keys, files, mode):
    # Default limits: at least 256 B/s over any 5-minute window (device
    # time); at 60x that window is 5 s of real time.
    (first, took, reason, second), drip = drip_then_good(mpy, keys, files, mode)
    # failed (U03 = 52), nothing set to boot, record cleared, still on ota_0
    assert first == "False failed 52 download-too-slow None None ota_0", (first, reason)
    assert "in the last 300 s" in reason, reason
    # caught by the window (5 s real at 60x), well before the deadline floor
    # (15 min device = 15 s real)
    assert 4_000 <= int(took) < 12_000, took
    assert drip.sent < 200  # a few bytes, not the image
    # the device kept running and a later request installs normally
    assert second == "True rebooting 0 (2, 0)", second


def test_steady_but_too_slow_server_hits_the_overall_deadline(mpy, keys, files):
    # 1 KB every 50 ms real = 341 B/s device at 60x: enough for every
    # 5-minute window (256 B/s), far below the 1 KB/s average the deadline
    # asks for. The 15-minute floor (meant for small images) is lowered to
    # one minute so that the size-derived deadline decides: 200 KB / 1 KB/s
    # = 195 s device, 3.3 s real.
    (first, took, reason, second), drip = drip_then_good(
        mpy, keys, files, "chunks", fetch_extra=", deadline_floor_ms=60_000"
    )
    assert first == "False failed 52 download-deadline None None ota_0", (first, reason)
    assert 2_500 <= int(took) < 5_000, took
    assert 40_000 < drip.sent < 150_000, drip.sent  # stopped part-way
    assert second == "True rebooting 0 (2, 0)", second
