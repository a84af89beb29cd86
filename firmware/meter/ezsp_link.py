# The EZSP meter link: an asyncio task that drives an EmberZNet co-processor
# on hal.Uart (ASH in meter/ash.py, EZSP in meter/ezsp.py), brings the
# Smart Energy network up (joining with the install-code link key when the
# co-processor has no network yet), polls the meter with ZCL Read
# Attributes and takes its attribute reports (meter/zcl.py), and supervises
# the link (meter/supervise.py): silent or restarted co-processor,
# re-initialisation with backoff, counters and LQI/RSSI for the display.
#
# Read-only towards the meter: the only ZCL frames it builds are Read
# Attributes (zcl.build_read), the Price cluster's GetCurrentPrice
# (meter/zcl_price.py) and the Messaging cluster's GetLastMessage
# (meter/zcl_prepay.py), and ezsp.send_unicast refuses anything else.
# Prepayment, meter state and identity: meter/zcl_prepay.py; the ambient
# indication: meter/ambient.py; supplier messages: meter/message.py.
import asyncio
from time import ticks_add, ticks_diff, ticks_ms

import micropython
from micropython import const

import faults
import hal
from meter import ash, ezsp, installcode, localtime, price, supervise, zcl, zcl_hist, zcl_price
from meter.devclock import DevClock
from meter.reading import F_SUMMATION

# setConfigurationValue before the network starts: (id, value).
CONFIG = (
    (0x0C, 2),  # stack profile: ZigBee PRO
    (0x0D, 5),  # security level
    (0x1E, 4),  # key table size (trust centre + meter link keys)
    (0x03, 10),  # APS unicast message count
    (0x2D, 1),  # supported networks
)
# setPolicy: (id, decision).
POLICIES = (
    (0x01, 0x10),  # binding modification: disallowed (nothing may change us)
    (0x02, 0x20),  # unicast replies: the host will not supply them
    (0x04, 0x40),  # message-sent callbacks carry the tag only
)
ENDPOINT = 1
DEVICE_IHD = 0x0507  # SE In-Home Display
SE_CHANNELS = 0x07FFF800  # 11..26
HAVE_PRECONFIGURED_KEY = 0x0100
REQUIRE_ENCRYPTED_KEY = 0x0800
END_DEVICE = 3
CMD_TIMEOUT_MS = 5000  # real time: the UART is never accelerated
SETUP_EVERY_S = 3600
TIME_EVERY_S = 600
METER_SILENT_MS = 300_000  # faults.METER_SILENT: no reading for 5 minutes
PRICE_RETRY_S = 60  # GetCurrentPrice again until a price came (then hourly)
_MESSAGING = const(0x0703)  # as meter/zcl_prepay.py (loaded only with supplier=True)
_PREPAYMENT = const(0x0705)
_DEVICE_MGMT = const(0x0708)
EXTRAS_EVERY_S = 300  # prepayment credit, supply status, ambient indicator


class LinkDown(Exception):
    # args: (reason,) for a co-processor that failed to answer as it
    # should; (reason, False) when it answered fine but the network, the
    # version or the configuration stands in the way (no COPROC_SILENT).
    pass


class EzspLink:
    # EzspLink(uart, on_reading, faults, install_code=None, **opts) (as
    # meter.make_link builds it, or with a dict holding "uart",
    # "install_code" and opts). uart: an open hal.Uart, or None to open
    # board.METER_UART in run() (a dict: that hal.Uart config instead).
    # install_code: bytes or hex text (only needed to join). opts:
    # meter_nwk (0), meter_ep (1; else learnt from the first meter frames),
    # poll_s (30), silent_ms (60000 device ms).
    def __init__(self, uart, on_reading, faults_, install_code=None, **opts):
        if isinstance(uart, dict) and ("uart" in uart or "install_code" in uart):
            # Also accepted: EzspLink({"uart": cfg, "install_code": hex, ...}, ...)
            opts.update(uart)
            uart = opts.pop("uart", None)
            ic = opts.pop("install_code", None)
            install_code = install_code or ic
        cfg = dict(opts)
        cfg["install_code"] = install_code
        self.cfg = cfg
        self._uart_arg = uart
        self.on_reading = on_reading
        self.faults = faults_
        self.sup = supervise.Supervisor("ezsp", faults_, silent_ms=cfg.get("silent_ms", 60_000))
        # ZCL reports carry no time: readings are stamped on arrival
        self.sup.dropout.jitter_s = supervise.arrival_jitter_s()
        self.status = self.sup.status
        self.ash = ash.Ash(self._write, self._on_frame, self._on_event)
        self.ez = ezsp.Ezsp()
        self.meter = zcl.Meter(self._reading, DevClock(hal.clock), self._on_time, self._on_type)
        # the gas meter, where there is one (meter/gas.py, a gas.Finder):
        # found by its MeteringDeviceType on another endpoint, never taken
        # for ours; imported with the first other endpoint heard (~1.2 KB
        # of heap a meter without one does not pay)
        self.gas = None
        self._src = 0  # nwk << 8 | endpoint of the Metering frame being handled
        self.tariff = price.Tariff()  # price, standing charge, today's cost
        self.price = zcl_price.PriceClient(self.tariff)
        # local time and the meter's history (meter/zcl_hist.py); the app
        # gives .history its meter.history.History
        self.zone = localtime.Zone()
        self.history = None
        self.hist_bad = 0  # malformed answers to the history and zone reads
        # prepayment, meter state, identity, messages, ambient: opt
        # supplier=True (docs/meter-ezsp.md; the app asks for it with
        # board.METER_SUPPLIER): ~1.2 KB of heap the 96 KB board lacks
        # beside an OTA download, so nothing of it loads otherwise
        self._zp = self.extras = self.ambient = None
        if cfg.get("supplier"):
            from meter import zcl_prepay
            from meter.ambient import Ambient

            self._zp = zcl_prepay
            self.extras = zcl_prepay.Extras()
            self.ambient = Ambient()
        # supplier messages: meter/message.py and meter/zcl_messaging.py are
        # imported with the first Messaging frame (most meters send none)
        self.messages = None
        self.messaging = None
        ez = self.ez
        ez.on_incoming = self._incoming
        ez.on_stack_status = self._stack_status
        ez.on_network_found = self._network_found
        ez.on_scan_complete = self._scan_complete
        ez.on_message_sent = self._message_sent
        self.meter_nwk = cfg.get("meter_nwk", 0)
        self.meter_ep = cfg.get("meter_ep", 1)
        # Given explicitly: only that meter; else the first to send a good
        # Metering frame (report or answer to a poll) is the one.
        self._locked = "meter_ep" in cfg
        self.other_meter = 0  # frames from other metering endpoints, ignored
        self.poll_s = cfg.get("poll_s", 30)
        self.uart = None
        self.version = 0
        self.cbke = None  # co-processor has the CBKE library (None: unknown)
        self.closed = False
        self.send_failures = 0  # messageSent / sendUnicast failures
        self.error = None  # why the link last went down, for support
        self._zcl = bytearray(40)
        self._tsn = 0
        self._ev = 0  # pending ASH event (ash.EV_*)
        self._resetting = False
        self._ev_code = 0
        self._stack = -1
        self._found = None
        self._scan_done = False
        self._wake = asyncio.Event()
        self._mv = None
        self._time_asked = hal.clock.ticks_ms()  # last Time read sent

    # -- plumbing ---------------------------------------------------------------
    def _write(self, buf, n):
        if self._mv is None or len(self._mv) != len(buf):
            self._mv = memoryview(buf)
        if self.uart is not None and not self.closed:
            try:
                self.uart.write(self._mv[:n])
            except OSError:
                # Only an emulated UART (socket, pty) can break; a peer that
                # went away ends the link instead of killing the task.
                self.closed = True
                self._wake.set()

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _on_frame(self, buf, off, n):
        self.sup.heard()
        self.ez.frame(buf, off, n)
        if self.ez.rsp_ready:
            self._wake.set()

    def _on_event(self, kind, code):
        if kind == ash.EV_RSTACK and self._resetting:
            self._resetting = False  # the answer to our own RST
            return
        self._ev = kind
        self._ev_code = code
        self._wake.set()

    def _counters(self):
        st = self.status
        a = self.ash
        st.frames_good = a.rx_good
        st.frames_bad = a.rx_bad + self.ez.bad + self.meter.bad
        st.frames_retransmitted = a.retx

    async def _rx(self, reader):
        buf = bytearray(256)
        while True:
            try:
                n = await reader.readinto(buf)
            except OSError:
                n = 0
            if not n:
                self.closed = True
                self._wake.set()
                return
            self.ash.feed(buf, n)

    async def _timer(self):
        while not self.closed:
            self.ash.poll()
            self._counters()
            await asyncio.sleep_ms(20)

    # -- EZSP calls -----------------------------------------------------------------
    async def _call(self, n):
        # Send ez.tx[:n] and wait for its response parameters (ez.rsp).
        if self._ev or self.closed:
            raise LinkDown("link event")
        self._wake.clear()
        if not self.ash.send(self.ez.tx, n):
            raise LinkDown("ASH not ready to send")
        t0 = ticks_ms()
        while not self.ez.rsp_ready:
            if self._ev or self.closed:
                raise LinkDown("link event")
            left = CMD_TIMEOUT_MS - ticks_diff(ticks_ms(), t0)
            if left <= 0:
                raise LinkDown("no answer to EZSP command")
            try:
                await asyncio.wait_for_ms(self._wake.wait(), left)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
        if self.ez.rsp_invalid:
            raise LinkDown("EZSP command refused as invalid")
        return self.ez.rsp

    async def _status_call(self, n):
        await self._call(n)
        return self.ez.status()

    async def _wait(self, cond, ms):
        # Wait (real time) until cond() or a link event.
        t0 = ticks_ms()
        while not cond():
            if self._ev or self.closed:
                raise LinkDown("link event")
            if ticks_diff(ticks_ms(), t0) > ms:
                return False
            await asyncio.sleep_ms(10)
        return True

    # -- callbacks ------------------------------------------------------------------
    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _incoming(self, cluster, src_ep, sender, lqi, rssi, buf, off, n):
        self.sup.radio(lqi, rssi)
        g = None if self.gas is None else self.gas.gas
        if cluster == zcl_price.PRICE and g is not None and sender == g.nwk and src_ep == g.ep:
            g.price_frame(buf, off, n)
            return  # the gas meter's conversion factor and calorific value
        if cluster == zcl_price.PRICE or cluster == _MESSAGING or cluster >= _PREPAYMENT:
            # the ESI's servers may be on another endpoint than the meter's
            if not self._locked or sender == self.meter_nwk:
                if cluster == zcl_price.PRICE:
                    self.price.handle(buf, off, n)
                elif self.extras is None:
                    pass  # supplier off: none of it is read
                elif cluster == _MESSAGING:
                    if self.messaging is None and n >= 3 and buf[off] & 0x03 == 1:
                        self._messaging()  # a command (not the NOT_FOUND answer)
                    if self.messaging is not None:
                        self.messaging.handle(buf, off, n)
                elif cluster == _PREPAYMENT or cluster == _DEVICE_MGMT:
                    self.extras.handle(cluster, buf, off, n)
            return
        if cluster != zcl.METERING and cluster != zcl.TIME:
            return
        if self._locked and (sender != self.meter_nwk or (cluster == zcl.METERING and src_ep != self.meter_ep)):
            # One electricity meter only: an ESI often also serves a
            # mirrored gas meter on another endpoint (meter/gas.py: found by
            # its device type), and its values must not mix with ours.
            if cluster != zcl.METERING or not self._finder().frame(cluster, sender, src_ep, buf, off, n):
                self.other_meter += 1
            return
        m = self.meter
        self._src = sender << 8 | src_ep
        if (
            m.handle(cluster, buf, off, n) == zcl.OK
            and cluster == zcl.METERING
            and not self._locked
            and m is self.meter
        ):
            self.meter_nwk = sender
            self.meter_ep = src_ep
            self._locked = True
        if buf[off + 2] == zcl.READ_ATTRIBUTES_RSP and not zcl_hist.handle(self, cluster, buf, off, n):
            self.hist_bad += 1  # time zone, history attributes
        if cluster == zcl.METERING and buf[off + 2] == 0x01 and self.extras is not None:  # a read answer
            self.extras.handle(cluster, buf, off, n)
            self.ambient.meter = self.extras.ambient

    def _on_type(self, m):
        # MeteringDeviceType of the candidate electricity meter: not
        # electricity (a mirrored gas meter that spoke first), it goes to
        # meter/gas.py and the other endpoint heard, if any, is the candidate.
        if zcl.electric(m.device_type) or "meter_ep" in self.cfg:
            return
        c, key = self._finder().not_electric(m, self._src)
        self.other_meter += 1
        if c is not None:
            self.adopt(c, key)
        else:
            self.meter = zcl.Meter(self._reading, m.clock, self._on_time, self._on_type)
            self._locked = False

    def adopt(self, m, key):
        # m (meter/gas.py found it electric) is the link's meter, on key
        # (nwk << 8 | ep). -> the previous candidate and its key, if it had one.
        old = self.meter
        okey = self.meter_nwk << 8 | self.meter_ep if self._locked else -1
        m.on_reading = self._reading
        m.on_time = self._on_time
        m.on_type = self._on_type
        self.meter = m
        self.meter_nwk = key >> 8
        self.meter_ep = key & 0xFF
        self._locked = True
        self.gas.relink = True
        return (old, okey) if okey >= 0 and old is not m else (None, -1)

    def electric(self):
        # The link's meter said it is electricity (or was configured).
        m = self.meter
        return "meter_ep" in self.cfg or (m.typed() and zcl.electric(m.device_type))

    def _finder(self):
        if self.gas is None:
            from meter.gas import Finder

            self.gas = Finder(self)
        return self.gas

    def ticks(self):
        return hal.clock.ticks_ms()

    def _stack_status(self, s):
        self._stack = s

    def _network_found(self, channel, pan, ext, joinable, profile, update_id):
        if joinable and profile == 2 and self._found is None:
            self._found = (channel, pan, ext, update_id)

    def _scan_complete(self, channel, status):
        self._scan_done = True

    def _message_sent(self, status):
        if status:
            self.send_failures += 1

    @micropython.native  # per frame: state on the C stack, not a heap frame per call
    def _reading(self, t_s, demand_w, delivered_wh, received_wh, flags):
        if flags & F_SUMMATION:
            self.sup.dropout.res_wh = self.meter.sum_step_wh()
        flags = self.sup.reading(t_s, demand_w, delivered_wh, received_wh, flags)
        self.tariff.reading(t_s, delivered_wh, flags)
        if self.ambient is not None:
            self.ambient.reading(demand_w, flags)
        self.faults.clear(faults.METER_SILENT)
        self.on_reading(t_s, demand_w, delivered_wh, received_wh, flags)

    def _on_time(self, unix_s):
        # The meter read its clock somewhere between our Read Attributes
        # and its answer: a clock within that round trip (device time; 2000x
        # in a simulation makes it tens of seconds) is right, and setting
        # it would only make the readings' time jump.
        c = hal.clock
        now = c.utc()
        rtt = ticks_diff(c.ticks_ms(), self._time_asked) // 1000 + 2
        off = now - unix_s
        if not c.valid() or off < -2 or off > rtt:
            c.set_utc(unix_s)
            self.meter.clock.sync()  # readings' device seconds follow the clock
            self.sup.clock_moved(unix_s - now)
            self.faults.clear(faults.CLOCK_INVALID)

    def _messaging(self):
        from meter.message import Messages
        from meter.zcl_messaging import MessagingClient

        self.messages = Messages()
        self.messaging = MessagingClient(self.messages)

    def prepay(self):
        return None if self.extras is None else self.extras.prepay(self.tariff)  # None: not prepay

    def identity(self):
        return None if self.extras is None else self.extras.identity()

    # -- bring-up ---------------------------------------------------------------------
    async def _start(self):
        ez = self.ez
        self._ev = 0
        ez.reset()
        self._resetting = True
        self.ash.reset()
        if not await self._wait(lambda: self.ash.state == ash.CONNECTED, ash.T_RSTACK_MAX + 200):
            raise LinkDown("no RSTACK after RST")
        # Version: legacy header first, then the extended one (EZSP 8+).
        rsp = await self._call(ez.cmd(ezsp.VERSION, ezsp.V_MAX))
        v = rsp[0]
        if v < ezsp.V_MIN or v > ezsp.V_MAX:
            self.version = v
            raise LinkDown("EZSP version %d not spoken (8..19)" % v, False)
        ez.set_version(v)
        self.version = v
        if v != ezsp.V_MAX:
            rsp = await self._call(ez.cmd(ezsp.VERSION, v))
            if rsp[0] != v:
                raise LinkDown("EZSP version negotiation failed")
        for cid, val in CONFIG:
            await self._status_call(ez.set_config(cid, val))  # a refused value is not fatal
        for pid, dec in POLICIES:
            await self._status_call(ez.cmd(ezsp.SET_POLICY, pid, dec))
        await self._status_call(
            ez.add_endpoint(
                ENDPOINT,
                ezsp.PROFILE_SE,
                DEVICE_IHD,
                (),
                (
                    zcl.METERING,
                    zcl.TIME,
                    zcl_price.PRICE,
                    _MESSAGING,
                    _PREPAYMENT,
                    _DEVICE_MGMT,
                ),
            )
        )
        # CBKE is done by co-processor firmware that has it; without it, SE
        # meters will not talk to us beyond the trust-centre link key.
        lib = (await self._call(ez.cmd(ezsp.GET_LIBRARY_STATUS, ezsp.CBKE_LIBRARY)))[0]
        lib2 = (await self._call(ez.cmd(ezsp.GET_LIBRARY_STATUS, ezsp.CBKE_283K1_LIBRARY)))[0]
        self.cbke = (lib != 0xFF and lib & ezsp.LIBRARY_PRESENT) or (lib2 != 0xFF and lib2 & ezsp.LIBRARY_PRESENT)
        self.cbke = bool(self.cbke)
        if self.cbke:
            self.faults.clear(faults.NO_CBKE)
        else:
            self.faults.set(faults.NO_CBKE)
        self.sup.state(supervise.JOINING)
        self._stack = -1
        st = await self._status_call(ez.network_init(0))
        if st == ezsp.SUCCESS:
            await self._wait(lambda: self._stack == ezsp.NETWORK_UP, 10_000)
        if self._stack != ezsp.NETWORK_UP:
            await self._join()
        self.faults.clear(faults.NOT_JOINED)
        self.sup.up()

    async def _join(self):
        code = self.cfg.get("install_code")
        if not code:
            self.faults.set(faults.NOT_JOINED)
            raise LinkDown("not joined and no install code configured", False)
        try:
            key = installcode.link_key(code)
        except ValueError as e:
            self.faults.set(faults.NOT_JOINED)
            raise LinkDown(str(e), False)
        ez = self.ez
        await self._status_call(ez.set_initial_security(HAVE_PRECONFIGURED_KEY | REQUIRE_ENCRYPTED_KEY, key))
        self._found = None
        self._scan_done = False
        if await self._status_call(ez.start_scan(SE_CHANNELS, 3)) != ezsp.SUCCESS:
            raise LinkDown("network scan refused")
        await self._wait(lambda: self._scan_done, 30_000)
        if self._found is None:
            self.faults.set(faults.NOT_JOINED)
            raise LinkDown("no Smart Energy network open for joining", False)
        ch, pan, ext, upd = self._found
        self._stack = -1
        await self._status_call(ez.join_network(END_DEVICE, ext, pan, ch, 8, upd))
        await self._wait(lambda: self._stack >= 0, 30_000)
        if self._stack != ezsp.NETWORK_UP:
            self.faults.set(faults.NOT_JOINED)
            raise LinkDown(
                "join failed (status 0x%02x): install code registered at the meter?" % (self._stack & 0xFF), False
            )

    # -- running ----------------------------------------------------------------------
    async def read(self, cluster, attrs, dst=-1):
        # One Read Attributes to the meter (attrs None: GetCurrentPrice on
        # the Price cluster, GetLastMessage on Messaging); the answer
        # arrives as a callback.
        self._tsn = (self._tsn + 1) & 0xFF
        if attrs is None and cluster == _MESSAGING:
            n = self._zp.build_get_last_message(self._zcl, self._tsn)
        elif attrs is None:
            n = zcl_price.build_get_current_price(self._zcl, self._tsn)
        else:
            n = zcl.build_read(self._zcl, self._tsn, attrs)
        ez = self.ez
        nwk, ep = (self.meter_nwk, self.meter_ep) if dst < 0 else (dst >> 8, dst & 0xFF)
        m = ez.send_unicast(nwk, ezsp.PROFILE_SE, cluster, ENDPOINT, ep, self._tsn, self._zcl, n)
        if await self._status_call(m) != ezsp.SUCCESS:
            self.send_failures += 1

    async def _supplier_reads(self, hourly):
        zp = self._zp
        if hourly:
            # hourly, and at every (re)start: who the meter is, and the
            # message on show (a reboot keeps none of its own)
            await self.read(zcl.METERING, zp.IDENTITY_ATTRS)
            await self.read(_DEVICE_MGMT, zp.PROVIDER_ATTRS)
            await self.read(_MESSAGING, None)
            if self.extras.no_prepay:  # not a prepayment meter: asked again hourly
                await self.read(_PREPAYMENT, zp.PREPAY_ATTRS)
            return
        await self.read(zcl.METERING, zp.STATE_ATTRS)
        if not self.extras.no_prepay:
            await self.read(_PREPAYMENT, zp.PREPAY_ATTRS)

    async def _serve(self):
        c = hal.clock
        setup_at = time_at = poll_at = up_at = price_at = extras_at = c.ticks_ms()
        hist_at = ticks_add(setup_at, 60_000)  # once the scaling is known
        while True:
            if self._ev or self.closed:
                raise LinkDown("link event")
            if self._stack == ezsp.NETWORK_DOWN:
                raise LinkDown("network down", False)
            if self.sup.is_silent():
                raise LinkDown("co-processor silent")
            now = c.ticks_ms()
            if ticks_diff(now, setup_at) >= 0:
                await self.read(zcl.METERING, zcl.SETUP_ATTRS)
                if self._zp is not None:
                    await self._supplier_reads(True)
                setup_at = ticks_add(now, SETUP_EVERY_S * 1000)
                if self.gas is not None:
                    self.gas.setup = self.gas.gas is not None
            if self.gas is not None:
                await self.gas.reads()
            if ticks_diff(now, extras_at) >= 0:
                if self._zp is not None:
                    await self._supplier_reads(False)
                extras_at = ticks_add(now, EXTRAS_EVERY_S * 1000)
            if ticks_diff(now, time_at) >= 0:
                self._time_asked = now
                await self.read(zcl.TIME, zcl.TIME_ATTRS)
                time_at = ticks_add(now, (TIME_EVERY_S if c.valid() else 30) * 1000)
            if ticks_diff(now, price_at) >= 0:
                await self.read(zcl_price.PRICE, None)  # PublishPrice comes back
                await self.read(zcl_price.PRICE, zcl_price.PRICE_ATTRS)
                known = self.tariff.raw is not None and self.tariff.standing is not None
                price_at = ticks_add(now, (SETUP_EVERY_S if known else PRICE_RETRY_S) * 1000)
            if ticks_diff(now, hist_at) >= 0 and c.valid():
                # time zone and the meter's history, hourly, away from midnight
                quiet = zcl_hist.quiet(self.zone, self.meter.clock.now())
                for cl, attrs in zcl_hist.READS:
                    if cl == zcl.TIME or not quiet:
                        await self.read(cl, attrs)
                hist_at = ticks_add(now, (60_000 if quiet else 3_600_000))
            if ticks_diff(now, poll_at) >= 0:
                await self.read(zcl.METERING, zcl.VALUE_ATTRS)
                poll_at = ticks_add(now, self.poll_s * 1000)
            last = self.status.last_reading_ticks
            if last is None or ticks_diff(now, last) > METER_SILENT_MS:
                if ticks_diff(now, up_at) > METER_SILENT_MS:
                    self.faults.set(faults.METER_SILENT)
            # Polls are due in device time: wake for the next one (at 2000x a
            # fixed 50 ms would poll every 100 simulated s instead of 30),
            # but at most every 2 real ms and at least every 50.
            due = min(
                ticks_diff(poll_at, now),
                ticks_diff(time_at, now),
                ticks_diff(setup_at, now),
                ticks_diff(price_at, now),
                ticks_diff(hist_at, now),
                ticks_diff(extras_at, now),
            )
            await asyncio.sleep_ms(min(50, max(2, c.real_ms(due))))

    async def run(self):
        # The link task: runs until the UART closes (only the emulator does).
        u = self._uart_arg
        if u is None or isinstance(u, dict):
            import board

            u = hal.Uart(u or board.METER_UART)
        self.uart = u
        reader = asyncio.StreamReader(self.uart.stream)
        rx = asyncio.create_task(self._rx(reader))
        timer = asyncio.create_task(self._timer())
        try:
            while not self.closed:
                coproc = True
                try:
                    self.sup.state(supervise.INIT)
                    await self._start()
                    await self._serve()
                except LinkDown as e:
                    if not self.closed:  # the end of an emulated UART is no news
                        self.error = e.args[0] if e.args else None
                    coproc = len(e.args) < 2
                if self.closed:
                    break
                ev = self._ev
                if ev == ash.EV_RSTACK:
                    # The co-processor restarted by itself: re-initialise now.
                    self.sup.coproc_reset()
                    continue
                if coproc or ev or self.sup.is_silent() or self.ash.state != ash.CONNECTED:
                    self.sup.silent()
                await asyncio.sleep_ms(hal.clock.real_ms(self.sup.backoff_ms()))
        finally:
            rx.cancel()
            timer.cancel()
            self._counters()
