"""One firmware connection to the emulated RAVEn/EMU-2 stick.

Used by ihd emulator (--protocol raven). The stick pushes
InstantaneousDemand every 4-10 s, CurrentSummationDelivered every
--summation-interval s and TimeCluster every --time-interval s from the
meter in the World (ihd.emulators.coproc.World: registers and clock that
outlive the connection), answers the firmware's commands, and injects the
configured faults: garbage before a fragment, bytes dropped inside one
(logged intact=false), a stick restart (--reset-at: output cut mid-fragment,
silence, the ConnectionStatus join sequence) and silence (--silence-at).

Every report sent is logged; every report the meter made while the stick
was silent or restarting is logged as kind "withheld" (the dropout oracle).

Supplier messages (tools/ihd/emulators/supplier.py, --message / --cancel-message): a
MessageCluster pushed when each is displayed or cancelled (Queue "Cancel
Pending"; cancel-all: an empty Text), and the message on show in answer to
get_message. The RAVEn API has no duration (the stick is told of a cancel)
and no prepayment.
"""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET

from ihd.emulators.meter_history import uk_offset
from ihd.emulators.raven_xml import Stick
from ihd.emulators.supplier import from_args as supplier_from_args
from ihd.emulators.tariff import from_args

JOIN_SEQUENCE = (
    "Initializing",
    "Network Discovery",
    "Joining",
    "Join: Success",
    "Authenticating",
    "Authenticating: Success",
    "Connected",
)


class Session:
    """One connection: writes fragments, answers commands, logs everything."""

    def __init__(self, world, write):
        self.world = world
        self.args = world.args
        self._write = write
        self.rng = world.rng
        self.clock = world.clock
        self.meter = world.meter
        self.stick = Stick(style=self.args.style, eol=self.args.eol)
        self.resetting = False
        self.cmdbuf = b""
        self.closed = False
        self.number = world.connections
        world.counts.setdefault("time", 0)
        world.counts.setdefault("cmd", 0)
        self.counts = world.counts
        if getattr(world, "tariff", None) is None:
            world.tariff = from_args(self.args)  # the supplier's, across connections
        self.tariff = world.tariff
        if getattr(world, "supplier", None) is None:
            world.supplier = supplier_from_args(self.args)
        self.supplier = world.supplier
        self.price_sent: tuple | None = None

    def note(self, **kw) -> None:
        self.world.note(**kw)

    def send(self, data: bytes) -> None:
        self.world.recorded(data)
        self._write(data)

    def muted(self) -> bool:
        return self.world.muted()

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
        # Logged before it is sent: an emulator stopped between the two then
        # leaves a logged report the device never got (counted not taken),
        # never a report the device got that the log lacks (which the sim
        # counts as a reading the meter never sent: 1 in a 7-day soak).
        self.counts[kind] = self.counts.get(kind, 0) + 1
        self.note(t=t, kind=kind, intact=intact, **values)
        self.send(frag)

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

    def price(self, t: int, why: str) -> None:
        # PriceCluster: the price in force now (RAVEn has no standing charge)
        tf = self.tariff
        raw, tier = tf.at(t)
        self.price_sent = (raw, tier)
        self.note(t=t, kind="price", why=why, raw=raw, digits=tf.digits, tier=tier, currency=tf.currency)
        self.send(self.stick.price(t, raw, tf.digits, currency=tf.currency, tier=tier))

    def message(self, t: int, why: str, m: dict | None, queue: str = "Active") -> None:
        mid, text = (None, "") if m is None else (m["id"], m["text"])
        self.note(t=t, kind="message", why=why, id=mid, text=text, queue=queue)
        self.send(self.stick.message(t, mid, text, queue))

    def messages(self, t: int) -> None:
        # the supplier's script: display, cancel (that id, "Cancel Pending"), cancel all
        for ev, shown in self.supplier.due(t, self.args.start):
            if ev[1] == "display":
                self.message(t, "display", shown)
            elif ev[1] == "cancel":
                self.message(t, "cancel", {"id": ev[2], "text": ""}, "Cancel Pending")
            else:
                self.message(t, "cancel_all", None)

    async def reset(self, t: int) -> None:
        # Stick restarts: output stops mid-fragment, then it rejoins.
        frag = self.stick.demand(t, 0)
        self.send(frag[: self.rng.randrange(5, len(frag) - 5)])
        self.note(t=t, kind="reset")
        self.resetting = True
        w = self.world
        w.mute_until = t + self.args.reset_s
        await self.clock.sleep_until(w.mute_until)
        for i, status in enumerate(JOIN_SEQUENCE):
            await self.clock.sleep_until(w.mute_until + i)
            if self.closed:
                return
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
            self.send(st.time(t, t + uk_offset(t)))  # LocalTime: UK rules (emu/meter_history.py)
        elif name == "get_current_price":
            self.price(t, "answer")
        elif name == "get_message":
            self.message(t, "answer", self.supplier.message)
        elif name == "get_instantaneous_demand":
            self.demand(t)
        elif name == "get_current_summation_delivered":
            self.summation(t)
        else:
            self.send(st.warning("Unknown command"))

    # -- the push schedule ------------------------------------------------------------
    def live(self) -> bool:
        return not self.closed and self.world.connections == self.number

    async def run(self) -> None:
        # The schedule starts now (a reconnecting firmware finds the meter
        # where it is) and runs until the end of the run or the connection.
        a = self.args
        c = self.clock
        w = self.world
        end = w.end
        now = int(c.now())
        next_d = now + self.rng.randint(1, 4)
        next_s = now + a.summation_interval // 2
        next_t = now
        next_progress = now + 600
        while self.live():
            t = min(next_d, next_s, next_t)
            if t >= end:
                break
            await c.sleep_until(t)
            if w.resets and t >= a.start + w.resets[0]:
                w.resets.pop(0)
                asyncio.create_task(self.reset(t))  # the schedule runs on, muted
            if w.silences and t >= a.start + w.silences[0][0]:
                _, dur = w.silences.pop(0)
                self.note(t=t, kind="silence", duration=dur)
                w.mute_until = t + dur
            quiet = self.muted() or self.resetting
            if t == next_t and not quiet:
                self.push("time", t, self.stick.time(t, t + uk_offset(t)), utc=t)
            if not quiet and self.price_sent is not None and self.price_sent != self.tariff.at(t):
                self.price(t, "change")  # the stick pushes a new price
            if not quiet:
                self.messages(t)
            for due, kind, report in ((next_s, "summation", self.summation), (next_d, "demand", self.demand)):
                if t != due:
                    continue
                if quiet:
                    self.note(t=t, kind="withheld", what=kind)
                else:
                    report(t)
            if t == next_t:
                next_t += a.time_interval
            if t == next_s:
                next_s += a.summation_interval
            if t == next_d:
                next_d += self.rng.randint(4, 10)
            if t >= next_progress:
                next_progress += 600
                w.save_meter()
                print(f"emulator: simulated {t - a.start} s, sent {self.counts}", file=sys.stderr, flush=True)
        if self.live():
            await c.sleep_until(end)


async def serve(world, read, write) -> None:
    s = Session(world, write)

    async def rx() -> None:
        while True:
            data = await read(256)
            if not data:
                s.closed = True
                return
            s.received(data)

    task = asyncio.create_task(rx())
    runner = asyncio.create_task(s.run())
    try:
        await asyncio.wait({task, runner}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        s.closed = True
        task.cancel()
        runner.cancel()
