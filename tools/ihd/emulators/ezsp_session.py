"""One firmware connection to the emulated EmberZNet NCP, with its fault options.

Used by ihd emulator (--protocol ezsp). The NCP
(ihd.emulators.ezsp_ncp.EzspNcp) lives in the World (ihd.emulators.coproc.World)
with the meter: a firmware that reconnects finds the same co-processor
(network tokens kept; the firmware resets it with RST anyway) and the same
meter registers. Faults: garbage before and bytes dropped from what the NCP
writes, a co-processor power cycle (--reset-at: mute for --reset-s, then
RSTACK), silence (--silence-at: the NCP hears and sends nothing).

Every report sent is logged; every report the meter made while the NCP was
muted, restarting or off the network is logged as kind "withheld" (the
dropout oracle).
"""

from __future__ import annotations

import asyncio
import sys

from ihd.emulators.ezsp_ncp import EzspNcp  # noqa: E402 - bellows and zigpy: imported before the server listens
from ihd.emulators.gas_meter import GasMeter  # noqa: E402
from ihd.emulators.supplier import from_args as supplier_from_args  # noqa: E402
from ihd.emulators.tariff import from_args  # noqa: E402


class Line:
    """The NCP's side of the UART: faults on the way out, the current connection."""

    def __init__(self, world):
        self.world = world
        self.write = None  # the current connection's writer

    def send(self, data: bytes) -> None:
        w = self.world
        a = w.args
        rng = w.rng
        if w.muted() or self.write is None:
            return
        if a.garbage and rng.random() < a.garbage:
            data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 40))) + data
        if a.drop and rng.random() < a.drop and len(data) > 2:
            b = bytearray(data)
            del b[rng.randrange(len(b))]
            data = bytes(b)
        w.recorded(data)
        self.write(data)


def make_ncp(world, line: Line):
    a = world.args
    return EzspNcp(
        world.meter,
        line.send,
        version=a.ezsp_version,
        cbke=not a.no_cbke,
        joined=not a.install_code,  # with an install code: not joined yet
        install_code=bytes.fromhex(a.install_code) if a.install_code else None,
        seed=a.seed,
        summation_interval=a.summation_interval,
        tariff=from_args(a),
        supplier=supplier_from_args(a),
        gas=GasMeter(int(world.meter.t)) if getattr(a, "gas", False) else None,
    )


async def serve(world, read, write) -> None:
    a = world.args
    clock = world.clock
    if world.ncp is None:
        line = Line(world)
        world.ncp = make_ncp(world, line)
        world.ncp.line = line
    ncp = world.ncp
    ncp.line.write = write
    number = world.connections
    closed = asyncio.Event()

    async def rx() -> None:
        while True:
            data = await read(256)
            if not data:
                closed.set()
                return
            if not world.muted() and world.connections == number:
                ncp.feed(data)
                log(ncp.take_polls())

    def log(reports) -> None:
        for rep in reports:
            if rep["kind"] != "withheld":
                world.counts[rep["kind"]] = world.counts.get(rep["kind"], 0) + 1
            world.note(**rep)

    task = asyncio.create_task(rx())
    next_progress = clock.now() + 600
    try:
        while not world.done() and not closed.is_set() and world.connections == number:
            now = clock.now()
            if world.resets and now >= a.start + world.resets[0]:
                world.resets.pop(0)
                world.note(t=int(now), kind="reset")
                world.mute_until = now + a.reset_s
                ncp.network_up = False  # reports stop while it restarts
                while clock.now() < world.mute_until and not closed.is_set():
                    log(ncp.tick(clock.now(), deliver=False))
                    await asyncio.sleep(min(0.01, max(0.0, (world.mute_until - clock.now()) / a.speed)))
                ncp.power_cycle()
            if world.silences and now >= a.start + world.silences[0][0]:
                _, dur = world.silences.pop(0)
                world.note(t=int(now), kind="silence", duration=dur)
                world.mute_until = now + dur
            ncp.poll_ash()
            log(ncp.tick(clock.now(), deliver=not world.muted()))
            if now >= next_progress:
                next_progress += 600
                world.save_meter()
                print(f"emulator: simulated {int(now) - a.start} s, sent {world.counts}", file=sys.stderr, flush=True)
            # Sleep until the next report is due (at most 10 ms, for ASH
            # retransmission and the fault schedule): a fixed tick would send
            # reports in bursts, up to 20 simulated seconds late at 2000x.
            due = ncp.next_due()
            wait = 0.01 if due is None else min(0.01, max(0.0, (due - clock.now()) / a.speed))
            await asyncio.sleep(wait)
    finally:
        task.cancel()
        if world.connections == number:
            ncp.line.write = None
        world.extra = {"violations": ncp.violations, "sent_zcl": len(ncp.sent_zcl)}
