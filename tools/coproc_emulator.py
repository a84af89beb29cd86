#!/usr/bin/env python3
"""Play a ZigBee co-processor for the firmware on the Unix port.

The firmware's Unix HAL UART connects to tcp:127.0.0.1:PORT (boards/unix/board.py,
IHD_UART overrides); this tool listens there (or on a pty) and behaves as a
Rainforest RAVEn/EMU-2 stick (`--protocol raven`) or an EmberZNet NCP
(`--protocol ezsp`, tools/emu/ezsp_ncp.py) attached to a meter whose household
follows tools/loadprofile.py. Simulated time starts at --start and runs --speed
times faster than real time. Every report sent is logged (--log, JSON lines) so
tests can check that nothing was missed.

  coproc_emulator.py serve --protocol raven --port 7001 --speed 100 --duration 3600
  coproc_emulator.py serve --replay capture.bin --port 7001
  coproc_emulator.py serve --reset-at 1800 --silence-at 2400:90 --garbage 0.05

Fault injection: --garbage P (random bytes before a fragment), --drop P (bytes
dropped inside a fragment, which is then logged intact=false), --reset-at T
(stick restarts at simulated offset T: output cut mid-fragment, silence, then the
ConnectionStatus join sequence), --silence-at T:D (nothing sent for D seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
import tty
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadprofile import LoadProfile, Meter  # noqa: E402
from raven_xml import Stick  # noqa: E402

JOIN_SEQUENCE = (
    "Initializing",
    "Network Discovery",
    "Joining",
    "Join: Success",
    "Authenticating",
    "Authenticating: Success",
    "Connected",
)


class SimClock:
    def __init__(self, start_utc: int, speed: float):
        self.start = start_utc
        self.speed = speed
        self.t0 = time.monotonic()

    def now(self) -> float:
        return self.start + (time.monotonic() - self.t0) * self.speed

    async def sleep_until(self, t: float) -> None:
        d = (t - self.now()) / self.speed
        if d > 0:
            await asyncio.sleep(d)


class Session:
    """One connection: writes fragments, answers commands, logs everything."""

    def __init__(self, args, write, close):
        self.args = args
        self._write = write
        self._close = close
        self.rng = random.Random(args.seed)
        self.clock = SimClock(args.start, args.speed)
        self.meter = Meter(LoadProfile(args.seed, args.solar), args.start)
        self.stick = Stick(style=args.style, eol=args.eol)
        self.log = open(args.log, "a") if args.log else None
        self.record = open(args.record, "ab") if args.record else None
        self.mute_until = 0.0  # no output before this (reset, silence)
        self.resetting = False
        self.cmdbuf = b""
        self.counts = {"demand": 0, "summation": 0, "time": 0, "cmd": 0}

    def note(self, **kw) -> None:
        if self.log:
            self.log.write(json.dumps(kw) + "\n")
            self.log.flush()

    def send(self, data: bytes) -> None:
        if self.record:
            self.record.write(data)
            self.record.flush()
        self._write(data)

    def muted(self) -> bool:
        return self.clock.now() < self.mute_until

    def push(self, kind: str, t: int, frag: bytes, **values) -> None:
        """Send one report, with the configured faults; log what was sent."""
        a = self.args
        if a.garbage and self.rng.random() < a.garbage:
            self.send(bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 40))))
        intact = True
        if a.drop and self.rng.random() < a.drop:
            b = bytearray(frag)
            for _ in range(self.rng.randint(1, 3)):
                del b[self.rng.randrange(len(b))]
            frag, intact = bytes(b), False
        self.send(frag)
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.note(t=t, kind=kind, intact=intact, **values)

    # -- reports ---------------------------------------------------------------
    def demand(self, t: int) -> None:
        self.meter.advance_to(t)
        w = self.meter.demand_w()
        raw = self.stick.demand_raw(w)
        self.push("demand", t, self.stick.demand(t, raw), raw=raw, demand_w=w)

    def summation(self, t: int) -> None:
        self.meter.advance_to(t)
        st = self.stick
        d = st.summation_raw(self.meter.delivered_ws // 3600)
        r = st.summation_raw(self.meter.received_ws // 3600)
        wh = 1000 * st.summation_mult / st.summation_div
        self.push(
            "summation",
            t,
            st.summation(t, d, r),
            raw_delivered=d,
            raw_received=r,
            delivered_wh=round(d * wh),
            received_wh=round(r * wh),
        )

    async def reset(self, t: int) -> None:
        # Stick restarts: output stops mid-fragment, then it rejoins.
        frag = self.stick.demand(t, 0)
        self.send(frag[: self.rng.randrange(5, len(frag) - 5)])
        self.note(t=t, kind="reset")
        self.resetting = True
        self.mute_until = t + self.args.reset_s
        await self.clock.sleep_until(self.mute_until)
        for i, status in enumerate(JOIN_SEQUENCE):
            await self.clock.sleep_until(self.mute_until + i)
            self.send(self.stick.connection_status(status, link=self.rng.randint(60, 100)))
        self.resetting = False

    # -- commands from the firmware ----------------------------------------------------
    def received(self, data: bytes) -> None:
        self.cmdbuf += data
        while b"</Command>" in self.cmdbuf:
            one, _, self.cmdbuf = self.cmdbuf.partition(b"</Command>")
            start = one.rfind(b"<Command>")
            try:
                el = ET.fromstring(one[start:] + b"</Command>") if start >= 0 else None
                name = el.findtext("Name") if el is not None else None
            except ET.ParseError:
                name = None
            self.command(name, el)
        if len(self.cmdbuf) > 4096:  # a stick's parser is bounded too
            self.cmdbuf = b""

    def command(self, name: str | None, el) -> None:
        self.counts["cmd"] += 1
        t = int(self.clock.now())
        self.note(
            t=t, kind="cmd", name=name, args={c.tag: c.text for c in el if c.tag != "Name"} if el is not None else {}
        )
        if self.muted() or self.resetting:
            return  # a restarting or silent stick answers nothing
        st = self.stick
        if name == "get_meter_list":
            self.send(st.meter_list())
        elif name == "get_device_info":
            self.send(st.device_info())
        elif name in ("get_connection_status", "get_network_info"):
            self.send(st.connection_status("Connected", link=self.rng.randint(60, 100)))
        elif name == "get_time":
            self.send(st.time(t))
        elif name == "get_current_price":
            self.send(st.price(t, 2735, 4))
        elif name == "get_instantaneous_demand":
            self.demand(t)
        elif name == "get_current_summation_delivered":
            self.summation(t)
        else:
            self.send(st.warning("Unknown command"))

    # -- the push schedule ------------------------------------------------------------
    async def run(self) -> None:
        a = self.args
        c = self.clock
        end = a.start + a.duration
        resets = sorted(a.reset_at)
        silences = sorted(a.silence_at)
        next_d = a.start + self.rng.randint(1, 4)
        next_s = a.start + a.summation_interval // 2
        next_t = a.start
        next_progress = a.start + 600
        while True:
            t = min(next_d, next_s, next_t)
            if t >= end:
                break
            await c.sleep_until(t)
            if resets and t >= a.start + resets[0]:
                resets.pop(0)
                asyncio.create_task(self.reset(t))  # the schedule runs on, muted
            if silences and t >= a.start + silences[0][0]:
                _, dur = silences.pop(0)
                self.note(t=t, kind="silence", duration=dur)
                self.mute_until = t + dur
            if not self.muted() and not self.resetting:
                if t == next_t:
                    self.push("time", t, self.stick.time(t), utc=t)
                if t == next_s:
                    self.summation(t)
                if t == next_d:
                    self.demand(t)
            if t == next_t:
                next_t += a.time_interval
            if t == next_s:
                next_s += a.summation_interval
            if t == next_d:
                next_d += self.rng.randint(4, 10)
            if t >= next_progress:
                next_progress += 600
                print(f"emulator: simulated {t - a.start} s, sent {self.counts}", file=sys.stderr, flush=True)
        await c.sleep_until(end)
        self.note(t=end, kind="end", counts=self.counts)


async def replay(args, write) -> None:
    data = Path(args.replay).read_bytes()
    rate = 11520 * args.speed  # bytes per second at 115200 baud, accelerated
    for i in range(0, len(data), 64):
        write(data[i : i + 64])
        await asyncio.sleep(64 / rate)
    print(f"emulator: replayed {len(data)} bytes", file=sys.stderr, flush=True)


async def serve_tcp(args) -> None:
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        print("emulator: firmware connected", file=sys.stderr, flush=True)
        try:
            await session(args, reader.read, writer.write)
            await writer.drain()
        finally:
            writer.close()
            if not done.done():
                done.set_result(None)

    server = await asyncio.start_server(handle, args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on tcp:{args.host}:{port}", flush=True)
    async with server:
        await done


async def session(args, read, write) -> None:
    if args.replay:
        await replay(args, write)
        return
    if args.protocol == "ezsp":
        from emu import ezsp_ncp  # the EZSP helper's NCP model

        await ezsp_ncp.serve_session(args, read, write)
        return
    s = Session(args, write, None)

    async def rx() -> None:
        while True:
            data = await read(256)
            if not data:
                return
            s.received(data)

    task = asyncio.create_task(rx())
    try:
        await s.run()
    finally:
        task.cancel()
        print(f"emulator: done, sent {s.counts}", file=sys.stderr, flush=True)


async def serve_pty(args) -> None:
    master, slave = os.openpty()
    tty.setraw(slave)  # a UART: no echo, no line discipline, no CR/LF mapping
    os.set_blocking(master, False)
    print(f"listening on pty:{os.ttyname(slave)}", flush=True)
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes] = asyncio.Queue()
    loop.add_reader(master, lambda: q.put_nowait(os.read(master, 256)))

    def write(b: bytes) -> None:
        os.write(master, b)

    await session(args, q.get, write)
    await asyncio.sleep(1.0)  # let the firmware drain the pty before it closes


def parse_utc(s: str) -> int:
    if s.isdigit():
        return int(s)
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp())


def parse_port(s: str) -> int:
    p = int(s)
    if not 0 <= p <= 65535:
        raise argparse.ArgumentTypeError(f"--port must be 0..65535, got {p}")
    return p


def parse_silence(s: str) -> tuple[int, int]:
    t, _, d = s.partition(":")
    try:
        return int(t), int(d)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--silence-at wants OFFSET:SECONDS, got {s!r}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="play a co-processor for one connection")
    s.add_argument("--protocol", choices=("raven", "ezsp"), default="raven")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=parse_port, default=7001, help="TCP port (0: any free port, printed)")
    s.add_argument("--pty", action="store_true", help="serve on a new pty instead of TCP")
    s.add_argument("--seed", type=int, default=1, help="household and fault randomness")
    s.add_argument("--start", type=parse_utc, default=1767225600, help="simulated start, UTC (ISO or seconds)")
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    s.add_argument("--duration", type=int, default=3600, help="simulated seconds to run, then disconnect")
    s.add_argument("--solar", type=int, default=0, help="PV peak watts (export when above load)")
    s.add_argument("--style", choices=("raven", "emu2"), default="raven")
    s.add_argument("--eol", choices=("crlf", "lf", "none"), default="crlf")
    s.add_argument("--summation-interval", type=int, default=60)
    s.add_argument("--time-interval", type=int, default=900)
    s.add_argument("--replay", help="send this raw capture instead of simulating")
    s.add_argument("--record", help="append every byte sent to this file (a raw capture)")
    s.add_argument("--log", help="append one JSON line per report/command/fault here")
    s.add_argument("--garbage", type=float, default=0.0, help="probability of garbage before a fragment")
    s.add_argument("--drop", type=float, default=0.0, help="probability of dropped bytes in a fragment")
    s.add_argument("--reset-at", type=int, action="append", default=[], help="stick resets at this offset (s)")
    s.add_argument("--reset-s", type=int, default=15, help="how long a reset keeps the stick quiet")
    s.add_argument("--silence-at", type=parse_silence, action="append", default=[], help="OFFSET:SECONDS")
    args = p.parse_args(argv)
    args.eol = {"crlf": "\r\n", "lf": "\n", "none": ""}[args.eol]
    if args.replay and not Path(args.replay).is_file():
        p.error(f"--replay: no such file: {args.replay}")
    try:
        asyncio.run(serve_pty(args) if args.pty else serve_tcp(args))
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        where = "a pty" if args.pty else f"tcp:{args.host}:{args.port}"
        print(f"emulator: cannot serve on {where}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
