# The RAVEn application: an asyncio task that talks to a Rainforest RAVEn /
# EMU-2 stick over hal.Uart, receives its pushes and hands readings on.
#
# Read-only towards the meter: every command goes through
# meter.raven_cmd.command(), which can only build the Get commands in its
# whitelist. The stick pushes InstantaneousDemand, CurrentSummationDelivered,
# TimeCluster and ConnectionStatus on its own schedule; we only ask for the
# meter list, device info, connection status, time and summation at
# (re)initialisation,
# and probe with get_connection_status when the stick goes quiet.
# MessageCluster (pushed, or the answer to get_message at initialisation)
# shows or cancels the supplier's message (meter/message.py); the message
# is never confirmed (confirm_message cannot be built). The RAVEn API has
# no prepayment and no ambient indicator: ours (meter/ambient.py).
# Supervision (meter/supervise.py): no valid fragment for silent_ms means a
# silent stick (fault, re-initialise with exponential backoff); a
# ConnectionStatus "Initializing" means the stick reset itself.
import asyncio
import time

import micropython

import faults
import hal
from meter import localtime, price, raven, raven_cmd, reading, supervise
from meter.devclock import DevClock

# summation too: the stick pushes it only every few minutes
_INIT = (
    "get_device_info",
    "get_meter_list",
    "get_connection_status",
    "get_time",
    "get_current_summation_delivered",
    "get_current_price",  # the stick pushes PriceCluster on a change too
)
_TICK_MS = 1000  # supervision period, device time
METER_SILENT_MS = 300_000  # no reading for 5 minutes (faults.METER_SILENT)


class RavenLink:
    def __init__(self, uart, on_reading, faults_, silent_ms=60_000, probe_ms=20_000, supplier=False):
        self.uart = uart
        self.on_reading = on_reading
        self.faults = faults_
        self.sup = supervise.Supervisor("raven", faults_, silent_ms=silent_ms)
        self.status = self.sup.status
        self.probe_ms = probe_ms
        self.parser = raven.Parser(self._reading, self._event)
        self.dclock = DevClock(hal.clock)  # stamps readings in device seconds
        self._buf = bytearray(256)
        self.meters = []  # MeterMacId bytes from the last MeterList
        self.device = None  # DeviceInfo texts
        self.link_status = None  # last ConnectionStatus text (bytes)
        self.price = None  # (price, trailing digits) as the stick sent it
        # the RAVEn API has no standing charge: cost is energy at the price
        self.tariff = price.Tariff(standing=price.NO_STANDING)
        self.zone = localtime.Zone()  # LocalTime - UTCTime (meter/localtime.py)
        # supplier messages and the ambient indication: opt supplier=True
        # (board.METER_SUPPLIER in the app; heap, see meter/ezsp_link.py)
        self.messages = None  # meter/message.py, imported with the first message
        self.ambient = None  # set: supplier on
        if supplier:
            from meter.ambient import Ambient

            self.ambient = Ambient()
        self.bad_messages = 0  # MessageCluster without a usable Id
        self._ident = None  # (MeterMacId, identity dict)
        self.warnings = 0
        self.last_warning = None
        self.sent = []  # names of the commands sent, newest last (bounded)
        self._eof = False
        self._jitter = supervise.arrival_jitter_s()

    # -- commands ------------------------------------------------------------
    def send(self, name, args=()):
        try:
            self.uart.write(raven_cmd.command(name, args))
        except OSError:  # only an emulated UART (socket, pty) breaks
            self._eof = True
        if len(self.sent) >= 16:
            self.sent.pop(0)
        self.sent.append(name)

    def _init(self):
        self.sup.state(supervise.INIT)
        for name in _INIT:
            self.send(name)
        if self.ambient is not None:  # supplier on
            self.send("get_message")  # the message on show (none is kept across a reboot)

    # -- parser callbacks ------------------------------------------------------
    @micropython.native  # per tag/fragment: machine code, state on the C stack
    def _reading(self, t_s, demand_w, delivered_wh, received_wh, flags):
        self.sup.good()
        if self.status.state != supervise.UP:
            self.sup.up()
        self.faults.clear(faults.METER_SILENT)
        # Readings carry the meter's own time; one without it is stamped on
        # arrival, which is only as exact as supervise.arrival_jitter_s().
        if not flags & reading.F_TIME_VALID and self.dclock.valid():
            t_s = self.dclock.now()  # device seconds: no boxed Unix time
            flags |= reading.F_TIME_VALID
            self.sup.dropout.jitter_s = self._jitter
        else:
            self.sup.dropout.jitter_s = 1
        if flags & reading.F_SUMMATION:
            self.sup.dropout.res_wh = self.parser.sum_res_wh
        flags = self.sup.reading(t_s, demand_w, delivered_wh, received_wh, flags)
        self.tariff.reading(t_s, delivered_wh, flags)
        if self.ambient is not None:
            self.ambient.reading(demand_w, flags)
        self.on_reading(t_s, demand_w, delivered_wh, received_wh, flags)

    def _event(self, kind, a, b):
        sup = self.sup
        if kind == raven.EV_BAD:
            sup.bad()
            return
        sup.good()
        if kind == raven.EV_STATUS:
            self.link_status = a
            if b is not None:
                sup.radio(lqi=b)
            if a == b"Connected":
                self.faults.clear(faults.NOT_JOINED)
                sup.up()
            elif a == b"Initializing":
                sup.coproc_reset()
            else:
                sup.state(supervise.JOINING)
        elif kind == raven.EV_TIME:
            self.zone.stick(a, b)
            if a is not None and (not hal.clock.valid() or abs(hal.clock.utc() - a) > 2):
                hal.clock.set_utc(a)
                self.dclock.sync()
                self.faults.clear(faults.CLOCK_INVALID)
        elif kind == raven.EV_METERS:
            self.meters = a
            # read the first meter only: a stick may hear a gas meter too
            self.parser.meter = a[0] if a else None
            if not a:
                self.faults.set(faults.NOT_JOINED)
                sup.state(supervise.JOINING)
        elif kind == raven.EV_DEVICE:
            self.device = a
        elif kind == raven.EV_PRICE:
            self.price = (a, b)
            p = self.parser
            self.tariff.set_price(a, b, p.price_currency, p.price_tier)
        elif kind == raven.EV_MESSAGE:
            if self.ambient is not None:  # supplier on
                self._message(a, b)
        elif kind == raven.EV_WARNING:
            self.warnings += 1
            self.last_warning = a

    def _message(self, texts, cut):
        # Queue "Cancel Pending": the supplier cancelled message Id; an
        # empty Text: no message on show. Text is Windows-1252 (as UTF-8
        # for meter/message.py, which cleans and caps it).
        mid = _hex(texts.get(b"Id"))
        text = texts.get(b"Text") or b""
        q = texts.get(b"Queue") or b""
        m = self.messages
        if q.strip().lower().startswith(b"cancel"):
            if mid is None:
                self.bad_messages += 1
            elif m is not None:
                m.cancel(mid)
            return
        if not text.strip():
            if m is not None:
                m.cancel_all()
            return
        if mid is None:
            self.bad_messages += 1
            return
        if m is None:
            from meter.message import Messages

            m = self.messages = Messages()
        if mid == m.id and m.text is not None:
            return  # pushed again
        b = raven_cmd.text(text).encode()
        m.show(mid, b, 0, len(b), 0, -1, 0, cut)  # cut by the parser: an ellipsis

    def identity(self):
        # RAVEn gives no site id, serial or supplier: the meter's MAC id
        # (MeterList) is what identifies it to support
        m = self.meters[0] if self.meters else None
        d = self._ident
        if d is None or d[0] is not m:
            d = self._ident = (m, {"status": None, "site_id": None, "serial": None, "supplier": None,
                                   "meter_mac": m and m.decode()})  # fmt: skip
        return d[1]

    def prepay(self):
        return None  # the RAVEn API has no prepayment

    # -- tasks -----------------------------------------------------------------
    async def _rx(self):
        # Wait until the UART is readable, then take what hal.Uart.readinto
        # has (never blocks: on Unix a pty is a file whose own readinto
        # would wait to fill the whole buffer).
        uart = self.uart
        ready = _Readable(uart.stream)
        buf = self._buf
        while True:
            await ready
            try:
                n = uart.readinto(buf)
            except OSError:  # only an emulated UART (socket, pty) breaks
                n = 0
            if n is None:
                continue
            if n == 0:  # the emulator closed the connection (Unix only)
                self._eof = True
                return
            self.parser.feed(buf, n)

    async def _sleep(self, ms):
        # Device time, but at least 2 real ms: at 2000x the 1 s supervision
        # tick is 0.5 real ms and the task would spin (a simulated day cost
        # 36 s of CPU in the sim, 2,400x real time; bench/sim.py).
        r = hal.clock.real_ms(ms)
        await asyncio.sleep_ms(r if r > 2 else 2)

    async def run(self):
        # Runs until the UART reports end of stream (never on the device).
        rx = asyncio.create_task(self._rx())
        sup = self.sup
        st = self.status
        while not self._eof:
            self._init()
            t0 = hal.clock.ticks_ms()
            r0 = time.ticks_ms()
            while not self._eof and (st.last_rx_ticks is None or time.ticks_diff(st.last_rx_ticks, t0) < 0):
                if supervise.elapsed(t0, r0, self.probe_ms):
                    break
                await self._sleep(_TICK_MS // 4)
            else:
                if st.state == supervise.INIT:
                    sup.state(supervise.JOINING)
                await self._watch()
                continue
            # no answer to the initialisation: silent stick, back off
            sup.silent()
            await self._sleep(sup.backoff_ms())
        rx.cancel()

    async def _watch(self):
        # The stick answers: probe it when quiet, give up when silent.
        st = self.status
        probed = False
        since = hal.clock.ticks_ms()
        while not self._eof:
            await self._sleep(_TICK_MS)
            now = hal.clock.ticks_ms()
            # the stick answers but the meter sends nothing: faults.METER_SILENT
            last = st.last_reading_ticks
            if time.ticks_diff(now, since if last is None else last) > METER_SILENT_MS:
                self.faults.set(faults.METER_SILENT)
            quiet = time.ticks_diff(now, st.last_rx_ticks)
            if self.sup.is_silent():
                # give the rx task a turn first: after a stall of this task
                # (simulation on a busy host) bytes may already be waiting
                await asyncio.sleep_ms(50)
                if self.sup.is_silent():
                    self.sup.silent()
                    return
            if quiet > self.probe_ms:
                if not probed:
                    probed = True
                    self.send("get_connection_status")
            else:
                probed = False


def _hex(b):
    # "0x..." hex text -> int, None when missing or malformed
    if not b:
        return None
    b = b.strip()
    if len(b) < 3 or len(b) > 10 or b[0] != 48 or b[1] | 32 != 120:
        return None
    v = 0
    for c in b[2:]:
        d = raven.hexval(c)
        if d < 0:
            return None
        v = (v << 4) | d
    return v


class _Readable:
    # Awaitable: resumes when the stream has bytes to read, as asyncio's own
    # StreamReader waits before it reads (same I/O queue, no allocation).
    def __init__(self, stream):
        self.s = stream

    def __iter__(self):
        yield asyncio.core._io_queue.queue_read(self.s)  # type: ignore[attr-defined]

    __await__ = __iter__
