"""A lossy UDP path with a home-router NAT, on loopback, for tests and the simulator.

    sim/netimpair.py --listen 127.0.0.1:4800 --upstream 127.0.0.1:4700 \\
        --loss 0.3 --dup 0.1 --reorder 0.2 --outage 3600:21600 --nat-timeout 60 --speed 1000

Devices send to --listen; each device address gets its own upstream socket
(a NAT mapping: the collector sees a new source port per mapping). A mapping
that has seen no outbound datagram for --nat-timeout seconds is forgotten:
replies to it are dropped and the next outbound datagram opens a new one,
as a home router does. Both directions suffer independent loss, duplication
and reordering (a datagram held back by a random delay); during an outage
window nothing passes. Times are device seconds, divided by --speed (the
device's clock acceleration) to get real seconds. Progress: a counter line on
stderr every --report seconds; `Impairer.counts` from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time


class _Mapping:
    def __init__(self, client, transport) -> None:
        self.client = client
        self.transport = transport
        self.last_out = time.monotonic()


class _Up(asyncio.DatagramProtocol):
    def __init__(self, imp: Impairer, mapping_box: list) -> None:
        self.imp = imp
        self.box = mapping_box

    def datagram_received(self, data, addr) -> None:
        m = self.box[0]
        if m is not None:
            self.imp._down(m, data)

    def error_received(self, exc) -> None:
        pass


class _Front(asyncio.DatagramProtocol):
    def __init__(self, imp: Impairer) -> None:
        self.imp = imp

    def connection_made(self, transport) -> None:
        self.imp.front = transport

    def datagram_received(self, data, addr) -> None:
        asyncio.get_running_loop().create_task(self.imp._up(addr, data))

    def error_received(self, exc) -> None:
        pass


class Impairer:
    def __init__(
        self,
        listen: tuple[str, int],
        upstream: tuple[str, int],
        loss: float = 0.0,
        dup: float = 0.0,
        reorder: float = 0.0,
        reorder_delay: float = 2.0,
        outages: list[tuple[float, float]] | None = None,
        nat_timeout: float | None = None,
        speed: float = 1.0,
        seed: int | None = None,
    ) -> None:
        self.listen = listen
        self.upstream = upstream
        self.loss, self.dup, self.reorder = loss, dup, reorder
        self.reorder_delay = reorder_delay / speed
        self.outages = [(s / speed, d / speed) for s, d in outages or []]
        self.nat_timeout = None if nat_timeout is None else nat_timeout / speed
        self.rng = random.Random(seed)
        self.maps: dict = {}
        self.front = None
        self.down_forced = False
        self.t0 = time.monotonic()
        self.counts = dict.fromkeys(
            ("up", "down", "lost", "duplicated", "reordered", "outage_drops", "nat_drops", "mappings"), 0
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: _Front(self), local_addr=self.listen)
        self.t0 = time.monotonic()

    def close(self) -> None:
        if self.front is not None:
            self.front.close()
        for m in self.maps.values():
            m.transport.close()

    def in_outage(self) -> bool:
        if self.down_forced:
            return True
        t = time.monotonic() - self.t0
        return any(s <= t < s + d for s, d in self.outages)

    def _fate(self) -> list[float]:
        # Delays (s) of the copies to deliver: [] lost, two entries duplicated.
        if self.in_outage():
            self.counts["outage_drops"] += 1
            return []
        if self.rng.random() < self.loss:
            self.counts["lost"] += 1
            return []
        copies = 2 if self.rng.random() < self.dup else 1
        if copies == 2:
            self.counts["duplicated"] += 1
        out = []
        for _ in range(copies):
            if self.rng.random() < self.reorder:
                self.counts["reordered"] += 1
                out.append(self.rng.uniform(0, self.reorder_delay))
            else:
                out.append(0.0)
        return out

    def _expired(self, m: _Mapping) -> bool:
        return self.nat_timeout is not None and time.monotonic() - m.last_out > self.nat_timeout

    async def _up(self, client, data: bytes) -> None:
        self.counts["up"] += 1
        m = self.maps.get(client)
        if m is not None and self._expired(m):
            m.transport.close()
            m = None
        if m is None:
            box: list = [None]
            loop = asyncio.get_running_loop()
            t, _ = await loop.create_datagram_endpoint(lambda: _Up(self, box), remote_addr=self.upstream)
            m = box[0] = self.maps[client] = _Mapping(client, t)
            self.counts["mappings"] += 1
        m.last_out = time.monotonic()
        for delay in self._fate():
            self._later(delay, m.transport.sendto, data)

    def _down(self, m: _Mapping, data: bytes) -> None:
        self.counts["down"] += 1
        if self._expired(m) or self.maps.get(m.client) is not m:
            self.counts["nat_drops"] += 1
            return
        for delay in self._fate():
            self._later(delay, self._to_client, m.client, data)

    def _to_client(self, client, data: bytes) -> None:
        if self.front is not None:
            self.front.sendto(data, client)

    def _later(self, delay: float, fn, *args) -> None:
        def go():
            try:
                fn(*args)
            except OSError:
                pass

        if delay <= 0:
            go()
        else:
            asyncio.get_running_loop().call_later(delay, go)


def _addr(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{s!r} is not HOST:PORT")
    return host, int(port)


def _outage(s: str) -> tuple[float, float]:
    try:
        a, b = s.split(":")
        return float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r} is not START:DURATION (device seconds)")


def _prob(s: str) -> float:
    p = float(s)
    if not 0 <= p <= 1:
        raise argparse.ArgumentTypeError(f"{s} is not a probability in 0..1")
    return p


async def _run(a) -> None:
    imp = Impairer(
        a.listen, a.upstream, a.loss, a.dup, a.reorder, a.reorder_delay, a.outage, a.nat_timeout, a.speed, a.seed
    )
    await imp.start()
    print(f"netimpair: {a.listen[0]}:{a.listen[1]} -> {a.upstream[0]}:{a.upstream[1]}", file=sys.stderr, flush=True)
    while True:
        await asyncio.sleep(a.report)
        print("netimpair: " + " ".join(f"{k}={v}" for k, v in imp.counts.items()), file=sys.stderr, flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", type=_addr, required=True, help="HOST:PORT the devices send to")
    ap.add_argument("--upstream", type=_addr, required=True, help="HOST:PORT of the collector")
    ap.add_argument("--loss", type=_prob, default=0.0)
    ap.add_argument("--dup", type=_prob, default=0.0)
    ap.add_argument("--reorder", type=_prob, default=0.0)
    ap.add_argument("--reorder-delay", type=float, default=2.0, help="max hold-back, device seconds")
    ap.add_argument("--outage", type=_outage, action="append", help="START:DURATION device seconds (repeatable)")
    ap.add_argument("--nat-timeout", type=float, help="forget idle mappings after S device seconds")
    ap.add_argument("--speed", type=float, default=1.0, help="device clock acceleration")
    ap.add_argument("--seed", type=int)
    ap.add_argument("--report", type=float, default=10.0, help="counter line every S real seconds")
    a = ap.parse_args(argv)
    try:
        asyncio.run(_run(a))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
