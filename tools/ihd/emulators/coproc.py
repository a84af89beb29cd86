"""Play a ZigBee co-processor for the firmware on the Unix port.

The firmware's Unix HAL UART connects to tcp:127.0.0.1:PORT (boards/unix/board.py,
IHD_UART overrides); this tool listens there (or on a pty) and behaves as a
Rainforest RAVEn/EMU-2 stick (`--protocol raven`) or an EmberZNet NCP
(`--protocol ezsp`, tools/ihd/emulators/ezsp_ncp.py) attached to a meter whose household
follows tools/ihd/emulators/loadprofile.py. Simulated time starts at --start and runs --speed
times faster than real time. Every report sent is logged (--log, JSON lines) so
tests can check that nothing was missed.

  ihd emulator serve --protocol raven --port 7001 --speed 100 --duration 3600
  ihd emulator serve --replay capture.bin --port 7001
  ihd emulator serve --reset-at 1800 --silence-at 2400:90 --garbage 0.05

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
from datetime import datetime, timezone
from pathlib import Path

from ihd.emulators import supplier  # noqa: E402
from ihd.emulators.loadprofile import LoadProfile, Meter  # noqa: E402
from ihd.emulators.meter_history import MeterHistory  # noqa: E402


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


class World:
    """What outlives one firmware connection, as a real meter and co-processor do.

    A firmware that reboots reconnects to the same emulator run: the meter's
    registers and clock carry on (a meter's summation never restarts), the
    fault schedule (--reset-at, --silence-at: offsets from --start) goes on,
    and the EZSP co-processor keeps its network tokens. The clock starts at
    the first connection. --meter-state FILE carries the registers over to
    the next emulator run too.
    """

    def __init__(self, args):
        self.args = args
        self.end = args.start + args.duration
        self.clock: SimClock | None = None
        self.meter: Meter | None = None
        self.rng = random.Random(args.seed)
        self.log = open(args.log, "a") if args.log else None
        self.record = open(args.record, "ab") if args.record else None
        self.resets = sorted(args.reset_at)
        self.silences = sorted(args.silence_at)
        self.mute_until = 0.0  # no output before this (reset, silence)
        self.counts: dict[str, int] = {"demand": 0, "summation": 0}
        self.connections = 0  # the current one's number; an older session ends
        self.ncp = None  # EZSP: ihd.emulators.ezsp_ncp.EzspNcp, kept across connections
        self.tariff = None  # RAVEn: ihd.emulators.tariff.Tariff, kept across connections
        self.extra: dict = {}  # protocol figures for the end line

    def start(self) -> None:
        self.connections += 1
        if self.clock is not None:
            self.note(t=int(self.clock.now()), kind="reconnect", connection=self.connections)
            return
        a = self.args
        self.clock = SimClock(a.start, a.speed)
        # --meter-days N: the meter ran N days before --start (its history
        # attributes then know those days at once)
        since = a.start - a.meter_days * 86400
        self.meter = Meter(LoadProfile(a.seed, a.solar), since)
        if a.meter_state and Path(a.meter_state).exists():
            st = json.loads(Path(a.meter_state).read_text())
            if st.get("seed") == a.seed and st["t"] <= a.start:
                self.meter.t = st["t"]
                self.meter.delivered_ws = st["delivered_ws"]
                self.meter.received_ws = st["received_ws"]
                # the register at local midnights (tools/ihd/emulators/meter_history.py)
                self.meter.marks = {int(k): v for k, v in st.get("marks", {}).items()}
                # the meter ran while we were away: advanced below, through
                # MeterHistory, which notes the midnights on the way (moved
                # here, a restart across midnight lost that midnight's mark,
                # and the meter's figures for that day and the next)
        # its register at local midnights from now on (tools/ihd/emulators/meter_history.py:
        # a start at midnight knows that day; the EZSP NCP serves them)
        h = MeterHistory(self.meter)
        if self.meter.t < a.start:
            h.advance_to(a.start)  # the days it ran before, noted at each midnight
            self.meter.advance_to(a.start)

    def save_meter(self) -> None:
        if self.args.meter_state and self.meter is not None:
            m = self.meter
            st = {"seed": self.args.seed, "t": m.t, "delivered_ws": m.delivered_ws, "received_ws": m.received_ws}
            st["marks"] = {str(k): v for k, v in sorted(getattr(m, "marks", {}).items())[-450:]}
            tmp = Path(self.args.meter_state + ".tmp")
            tmp.write_text(json.dumps(st))
            tmp.replace(self.args.meter_state)

    def done(self) -> bool:
        return self.clock is not None and self.clock.now() >= self.end

    def muted(self) -> bool:
        return self.clock.now() < self.mute_until

    def note(self, **kw) -> None:
        if self.log:
            self.log.write(json.dumps(kw) + "\n")
            self.log.flush()

    def recorded(self, data: bytes) -> None:
        if self.record:
            self.record.write(data)
            self.record.flush()

    def finish(self) -> None:
        t = int(self.clock.now()) if self.clock else self.args.start
        self.save_meter()
        self.note(t=t, kind="end", counts=self.counts, connections=self.connections, **self.extra)
        print(f"emulator: done, sent {self.counts}, {self.connections} connection(s) {self.extra}", file=sys.stderr)


async def replay(args, write) -> None:
    data = Path(args.replay).read_bytes()
    rate = 11520 * args.speed  # bytes per second at 115200 baud, accelerated
    for i in range(0, len(data), 64):
        write(data[i : i + 64])
        await asyncio.sleep(64 / rate)
    print(f"emulator: replayed {len(data)} bytes", file=sys.stderr, flush=True)


async def session(world: World, read, write) -> bool:
    """Serve one connection; True when the run is over (end of --duration, replay done)."""
    if world.args.replay:
        await replay(world.args, write)
        return True
    world.start()
    await protocol_module(world.args).serve(world, read, write)
    return world.done()


def protocol_module(args):
    # Imported before the server listens: bellows and zigpy take a second or
    # two to import, which must not pass on the meter's clock.
    if args.protocol == "ezsp":
        from ihd.emulators import ezsp_session

        return ezsp_session
    from ihd.emulators import raven_session

    return raven_session


async def serve_tcp(args) -> None:
    # Connections are served one after the other until the run ends: a
    # firmware that reboots connects again and finds the same meter.
    world = World(args)
    done = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        print("emulator: firmware connected", file=sys.stderr, flush=True)
        try:
            over = await session(world, reader.read, writer.write)
            await writer.drain()
        except ConnectionError:
            over = world.done()
        finally:
            writer.close()
        if over and not done.done():
            done.set_result(None)

    if not args.replay:
        protocol_module(args)
    server = await asyncio.start_server(handle, args.host, args.port)
    port = server.sockets[0].getsockname()[1]
    print(f"listening on tcp:{args.host}:{port}", flush=True)
    try:
        async with server:
            await done
    finally:
        world.finish()


async def serve_pty(args) -> None:
    if not args.replay:
        protocol_module(args)
    master, slave = os.openpty()
    tty.setraw(slave)  # a UART: no echo, no line discipline, no CR/LF mapping
    os.set_blocking(master, False)
    print(f"listening on pty:{os.ttyname(slave)}", flush=True)
    loop = asyncio.get_running_loop()
    q: asyncio.Queue[bytes] = asyncio.Queue()
    loop.add_reader(master, lambda: q.put_nowait(os.read(master, 256)))

    def write(b: bytes) -> None:
        os.write(master, b)

    async def read(_n: int) -> bytes:
        return await q.get()

    world = World(args)
    try:
        await session(world, read, write)
    finally:
        world.finish()
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


def parse_price_at(s: str) -> tuple[int, int, int]:
    parts = s.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        return int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise argparse.ArgumentTypeError(f"--price-at wants OFFSET:RAW[:TIER], got {s!r}")


EZSP_VERSIONS = range(4, 20)  # bellows has schemas for 4..19; the firmware speaks 8..19


def parse_install_code(s: str) -> str:
    # zigpy's rules (8/10/14/18 bytes including the CRC-16/X-25), checked here
    # so that a typo is an error message and not an NCP nobody can join
    from zigpy.util import convert_install_code  # noqa: PLC0415 - only for EZSP

    try:
        code = bytes.fromhex(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--install-code: not hex: {s!r}")
    try:
        key = convert_install_code(code)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--install-code: {e}")
    if key is None:
        raise argparse.ArgumentTypeError(f"--install-code: {len(code)} bytes; want 8, 10, 14 or 18 with the CRC")
    return s


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
    s.add_argument(
        "--gas", action="store_true", help="EZSP: a mirrored gas meter on endpoint 2 (tools/ihd/emulators/gas_meter.py)"
    )
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
    s.add_argument("--meter-state", help="JSON file: the meter's registers, read at start and kept up to date")
    s.add_argument(
        "--meter-days", type=int, default=0, help="the meter ran this many days before --start (its history knows them)"
    )
    tg = s.add_argument_group("tariff (tools/ihd/emulators/tariff.py; EZSP Price cluster, RAVEn PriceCluster)")
    tg.add_argument("--price", type=int, default=2735, help="raw price, major units x 10^-digits per kWh")
    tg.add_argument("--price-digits", type=int, default=4, help="trailing digits of --price and --standing-charge")
    tg.add_argument("--currency", type=int, default=826, help="ISO 4217 number (826 GBP, 978 EUR, 840 USD)")
    tg.add_argument("--standing-charge", type=int, default=5322, help="raw, per day (EZSP only; -1: none)")
    tg.add_argument(
        "--price-at", type=parse_price_at, action="append", default=[], help="OFFSET:RAW[:TIER] new price from then"
    )
    tg.add_argument("--night-price", type=int, help="Economy 7: this raw price 00:30-07:30 UTC (tier 1)")
    supplier.add_args(s)
    e = s.add_argument_group("EZSP co-processor (--protocol ezsp)")
    e.add_argument("--ezsp-version", type=int, default=13, choices=EZSP_VERSIONS, help="EZSP protocol version")
    e.add_argument("--no-cbke", action="store_true", help="firmware without the CBKE library")
    e.add_argument(
        "--install-code", type=parse_install_code, help="hex: not joined yet; the host must join with this code"
    )
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
