"""The simulated devices of bench/fleet.py: N devices in one asyncio process, each
speaking the uplink protocol as the firmware does (docs/uplink.md): a HELLO, then
one DATA batch in flight at a time until its exact ACK, retransmitted with a new
seq after an RTO that doubles, a keep-alive token when it has sent nothing for
180 simulated seconds. Datagrams are built with tools/ihd/uplink/wire.py and the
batches with tools/ihd/uplink/codec.py (the CPython port kept byte-identical to the
firmware encoder by host_tests/uplink/test_codec.py), from realistic 3-second
readings of tools/ihd/emulators/loadprofile.py households. Loss and duplication are applied
here, both ways. Owns no database: fleet.py checks what was stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

from ihd.emulators.loadprofile import LoadProfile, Meter
from ihd.uplink import codec, wire

PAYLOAD_MAX = wire.MAX_DGRAM - wire.DATA_HEAD - wire.TAG  # 1,166 bytes: a full batch
F_DEFAULT = 1 | 2 | 4  # time valid, demand, summation (firmware/meter/reading.py)
KEEPALIVE_S = 180  # the firmware's default interval (simulated seconds)
RTO_S, RTO_MAX_S = 2.0, 16.0  # real seconds: the collector and the network run in real time
FAILOVER_AFTER = 3  # silent attempts before the next endpoint (firmware default)


def device_key(seed: int, dev: int) -> bytes:
    return hashlib.sha256(b"ihd-fleet-%d-%d" % (seed, dev)).digest()


def batch_pool(households: int = 2, days: int = 1) -> list[tuple[bytes, int]]:
    """Full batches (payload, count) of consecutive 3-second readings of a few households;
    ~1,750 readings each (about 5.3 bits a reading), as the firmware sends them."""
    pool = []
    start = 1_767_225_600 + 170 * 86400
    for seed in range(households):
        m = Meter(LoadProfile(seed=seed + 3, solar_w=0), start)
        rows = []
        for t in range(start, start + days * 86400, 3):
            m.advance_to(t)
            rows.append((t, m.demand_w(), 4_000_000 + m.delivered_ws // 3600, 0, F_DEFAULT))
        while rows:
            payload, n = codec.encode(rows, PAYLOAD_MAX)
            if n < len(rows):  # the day's last, partial batch would be sent later, full
                pool.append((payload, n))
            rows = rows[n:]
    return pool


class Dev:
    __slots__ = (
        "id", "key", "seq", "nonce", "ep", "state", "first", "k", "due", "fly", "sent",
        "rto", "tries", "t_first", "last_tx", "acked", "ka_timer", "rtx_timer", "heard", "acked_at",
    )  # fmt: skip

    def __init__(self, dev_id: int, key: bytes, k: int, ep: int) -> None:
        self.id, self.key, self.k, self.ep = dev_id, key, k, ep
        self.seq = 1000
        self.nonce = random.getrandbits(31) | 1
        self.state = "new"
        self.first = 1  # next reading number to send (epoch 1)
        self.due = 0  # batches whose readings are complete and not yet sent
        self.fly: tuple[int, int, bytes] | None = None  # (first, count, payload) in flight
        self.sent: dict[int, float] = {}  # seq -> real time it left (ACK latency)
        self.rto, self.tries, self.t_first, self.last_tx, self.acked = RTO_S, 0, 0.0, 0.0, 0
        self.ka_timer = self.rtx_timer = None
        self.heard = self.acked_at = 0.0  # when an authentic reply, an ACK last came


class Fleet(asyncio.DatagramProtocol):
    """The devices, one UDP socket. `endpoints[dev]`: the ordered (host, port) list a
    device tries (its shard's collector first); `run()` plays them."""

    def __init__(self, devs: list[Dev], endpoints, pool, speed: float, loss: float, dup: float, seed: int = 1):
        self.devs = {d.id: d for d in devs}
        self.endpoints = endpoints
        self.pool, self.speed, self.loss, self.dup = pool, speed, loss, dup
        self.rng = random.Random(seed)
        self.transport = None
        self.sending = True
        self.c = dict.fromkeys(
            ("datagrams", "bytes", "dropped_out", "dropped_in", "duplicated", "replies", "retransmits", "keepalives",
             "failovers", "refused", "acked_readings", "acked_batches", "bad_replies"), 0)  # fmt: skip
        self.c_at_load = dict(self.c)
        self.ack_ms: list[float] = []  # datagram sent -> its ACK
        self.batch_ms: list[float] = []  # batch first sent -> ACK (retransmissions included)
        self.acks: list[tuple[float, int]] = []  # (time, readings) of each ACK
        self.load_started = asyncio.Event()

    # -- sending --------------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport

    def _send(self, d: Dev, data: bytes) -> None:
        now = time.monotonic()
        d.last_tx = now
        self.c["datagrams"] += 1
        self.c["bytes"] += len(data)
        if self.rng.random() < self.loss:
            self.c["dropped_out"] += 1
        else:
            addr = self.endpoints[d.id][d.ep]
            self.transport.sendto(data, addr)
            if self.rng.random() < self.dup:
                self.c["duplicated"] += 1
                self.transport.sendto(data, addr)
        self._arm_keepalive(d)

    def _next_seq(self, d: Dev) -> int:
        d.seq += 1
        return d.seq

    def hello(self, d: Dev) -> None:
        d.state = "hello"
        s = self._next_seq(d)
        d.sent[s] = time.monotonic()
        self._send(d, wire.build_hello(d.key, d.id, 0, s, d.first - 1, d.first - 1, 1, d.nonce, 0))
        self._arm_rtx(d)

    def _send_batch(self, d: Dev) -> None:
        if d.fly is None:
            payload, n = self.pool[d.k % len(self.pool)]
            d.fly = (d.first, n, payload)
            d.t_first = time.monotonic()
            d.tries = 0
        first, n, payload = d.fly
        s = self._next_seq(d)
        d.sent[s] = time.monotonic()
        self._send(d, wire.build_data(d.key, d.id, 0, s, first, n, 0, payload, epoch=1))
        self._arm_rtx(d)

    def batch_due(self, d: Dev) -> None:
        """The device's next batch is full (open loop: the fleet's clock decides)."""
        if not self.sending:
            return
        d.due += 1
        if d.state == "idle" and d.fly is None:
            self._send_batch(d)

    def _arm_rtx(self, d: Dev) -> None:
        if d.rtx_timer is not None:
            d.rtx_timer.cancel()
        d.rtx_timer = asyncio.get_running_loop().call_later(d.rto, self._timeout, d)

    def _timeout(self, d: Dev) -> None:
        d.rtx_timer = None
        d.tries += 1
        d.rto = min(d.rto * 2, RTO_MAX_S)
        if d.tries % FAILOVER_AFTER == 0 and len(self.endpoints[d.id]) > 1:
            d.ep = (d.ep + 1) % len(self.endpoints[d.id])  # as the firmware: next endpoint, wrapping
            self.c["failovers"] += 1
        self.c["retransmits"] += 1
        if d.state == "hello":
            self.hello(d)
        elif d.fly is not None:
            self._send_batch(d)

    def _arm_keepalive(self, d: Dev) -> None:
        if d.ka_timer is not None:
            d.ka_timer.cancel()
        d.ka_timer = asyncio.get_running_loop().call_later(KEEPALIVE_S / self.speed, self._keepalive, d)

    def _keepalive(self, d: Dev) -> None:
        d.ka_timer = None
        if self.sending and d.state == "idle":
            self.c["keepalives"] += 1
            self._send(d, wire.build_keepalive(d.key, d.id, self._next_seq(d)))
        elif self.sending:
            self._arm_keepalive(d)

    # -- receiving ------------------------------------------------------------------
    def datagram_received(self, data: bytes, addr) -> None:
        if self.rng.random() < self.loss:
            self.c["dropped_in"] += 1
            return
        now = time.monotonic()
        d = self.devs.get(int.from_bytes(data[1:5], "big")) if len(data) > 5 else None
        try:
            r = wire.parse(data) if d is not None else None
        except wire.WireError:
            r = None
        if r is None or not wire.verify(r, d.key, d.nonce):
            self.c["bad_replies"] += 1
            return
        self.c["replies"] += 1
        d.heard = now
        if r.type == wire.T_REFUSE:
            self.c["refused"] += 1
            return
        t = d.sent.get(r.echo)
        if d.state == "hello" and t is not None:
            self._settle(d)
            d.state = "idle"
            if d.due:
                self._send_batch(d)
        elif d.fly is not None and (r.first, r.count) == d.fly[:2] and r.count and t is not None:
            self.ack_ms.append((now - t) * 1000)
            self.batch_ms.append((now - d.t_first) * 1000)
            self.acks.append((now, r.count))
            self.c["acked_readings"] += r.count
            self.c["acked_batches"] += 1
            d.acked += r.count
            d.acked_at = now
            d.first += r.count
            d.k += 1
            d.due -= 1
            d.fly = None
            self._settle(d)
            if d.due > 0 and self.sending:
                self._send_batch(d)

    def _settle(self, d: Dev) -> None:
        if d.rtx_timer is not None:
            d.rtx_timer.cancel()
            d.rtx_timer = None
        d.rto = RTO_S
        d.sent.clear()

    def error_received(self, exc) -> None:
        pass

    # -- the whole run -----------------------------------------------------------------
    async def run(self, seconds: float, drain_s: float, hello_rate: float = 500.0) -> dict:
        """HELLOs (at most hello_rate a second), then `seconds` of load measured, then
        up to drain_s for the batches in flight. Returns the window's timing."""
        loop = asyncio.get_running_loop()
        devs = list(self.devs.values())
        for i, d in enumerate(devs):
            loop.call_later(i / hello_rate, self.hello, d)
        t_hello = time.monotonic()
        spread = len(devs) / hello_rate
        while time.monotonic() - t_hello < 60 + spread:  # the stragglers (a HELLO lost) join the load later
            idle = sum(d.state == "idle" for d in devs)
            if idle == len(devs) or (idle >= 0.95 * len(devs) and time.monotonic() - t_hello > spread + 0.5):
                break
            await asyncio.sleep(0.1)
        hello_s = time.monotonic() - t_hello
        # each device's batch is full every span = readings x 3 s (simulated); phases uniform
        t0 = time.monotonic()
        self.load_started.set()
        self.c_at_load = dict(self.c)  # counters when the load began (the HELLOs' retransmissions before)
        for d in devs:
            span = self.pool[d.k % len(self.pool)][1] * 3 / self.speed
            first = self.rng.random() * span
            k = 0
            while first + k * span < seconds:
                loop.call_at(t0 + first + k * span, self.batch_due, d)
                k += 1
        await asyncio.sleep(seconds)
        self.sending = False
        t1 = time.monotonic()
        while any(d.fly is not None for d in devs) and time.monotonic() - t1 < drain_s:
            await asyncio.sleep(0.05)
        for d in devs:
            for tm in (d.ka_timer, d.rtx_timer):
                if tm is not None:
                    tm.cancel()
        return {"t0": t0, "t1": t1, "hello_s": hello_s, "drain_s": time.monotonic() - t1}
