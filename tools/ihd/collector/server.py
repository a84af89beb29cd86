"""The collector's asyncio UDP server: one socket per listen address, each datagram
handed to Collector.handle() and its replies sent back, the push loop for commands
queued by other processes (the CLI), a progress line. Used by `ihd collector serve`
and the tests' harness."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from ihd.collector.db import db_errors


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, col) -> None:
        self.col = col
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        out = self.col.handle(data, addr, self.transport)
        for reply in out:
            if self.transport is not None:
                self.transport.sendto(reply, addr)
        if out and self.col.crash_hook is not None:
            self.col.crash_hook("sent")

    def error_received(self, exc) -> None:
        pass  # ICMP errors (device gone): nothing to do, the device retries


def parse_listen(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def _send(data: bytes, addr, via) -> None:
    if via is not None and not via.is_closing():
        via.sendto(data, addr)


async def _push_loop(col, poll_s: float) -> None:
    # Commands queued by another process (the CLI) reach serve through the
    # database; those queued in this process are pushed by queue_command().
    while True:
        await asyncio.sleep(poll_s)
        try:
            col.flush_rejects()
            col.push_pending()
        except db_errors() as e:  # a locked database, a database restarting: next round
            print(f"collector: push: {e}", file=sys.stderr)


async def serve(col, listen: list[tuple[str, int]], stats_every: float = 0, ready=None, poll_s: float = 1.0) -> None:
    loop = asyncio.get_running_loop()
    transports = []
    for host, port in listen:
        t, _ = await loop.create_datagram_endpoint(lambda: _Protocol(col), local_addr=(host, port))
        transports.append(t)
        col.via_key(t)  # a route saved before a restart finds its socket again
        print(f"collector: listening on {host}:{port}", file=sys.stderr, flush=True)
    col.sender = _send
    pusher = asyncio.ensure_future(_push_loop(col, poll_s))
    if ready is not None:
        ready.set()
    try:
        while True:
            await asyncio.sleep(stats_every or 3600)
            if stats_every:
                s = col.stats()
                n = sum(d["readings"] for d in s["devices"].values())
                print(f"collector: {len(s['devices'])} devices, {n} readings, rejects {s['rejects']}", file=sys.stderr)
    finally:
        col.sender = None
        pusher.cancel()
        for t in transports:
            t.close()


def crash_hook():
    """Test hook: IHD_COLLECTOR_KILL=POINT:N (in_txn, committed, sent) kills this process
    with SIGKILL the Nth time it reaches POINT (host_tests/uplink/test_collector_crash.py)."""
    spec = os.environ.get("IHD_COLLECTOR_KILL")
    if not spec:
        return None
    point, _, n = spec.partition(":")
    left = [int(n or 1)]

    def hook(at: str) -> None:
        if at == point:
            left[0] -= 1
            if left[0] <= 0:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook
