# The uplink task: stored readings to the collector, commands back.
#
# Owns the timing and the sockets of the uplink (session.py owns the
# protocol state, datagram.py the bytes, codec.py the batch payload, rx.py
# what comes in, state.py the reading epoch and the commands run):
#   * batches: read from the store at the "uploaded" cursor, encoded until
#     a datagram is full (or the oldest unsent reading is batch_max_age_s
#     old), sent one at a time, retransmitted with exponential backoff from
#     an RTO measured on the round trip; the cursor moves (persistently)
#     only when the collector has acknowledged the exact range, so outages
#     and reboots lose nothing and duplicates are harmless (the collector
#     de-duplicates by (epoch, reading sequence number); a new epoch when
#     the store may number again what was sent: docs/uplink.md, "Identity
#     across state loss").
#   * probing: after a few silent retransmissions the device stops sending
#     full batches into the void and probes with a small HELLO instead.
#   * failover: after `failover_after` silent attempts the next collector
#     endpoint (host name or address) is resolved and used.
#   * keep-alive: a 9-byte datagram after keepalive_s without sending
#     anything else. The collector pushes a new command at once to where the
#     device was last heard from, which gets through while the home router
#     keeps that mapping (nat_timeout_s), and otherwise answers the next
#     keep-alive with it; so a request waits at most keepalive_s -
#     nat_timeout_s, and the default interval is nat_timeout_s +
#     realtime_wait_s (60 + 120 s: docs/uplink.md has the arithmetic).
#   * real-time mode: on request each new reading (notify()) is sent at
#     once, for a bounded time, then the device returns to batches by itself.
# All times are device time (hal.clock ticks), so simulations can run it
# thousands of times faster than real time.
import asyncio
import time

from micropython import const

import hal
from faults import CLOUD_UNREACHABLE
from uplink import datagram as dg
from uplink import health, rx
from uplink.codec import Encoder
from uplink.session import UPLOADED, Rto, SeqSource, Session, seq_path
from uplink.state import CMDS_FILE, EPOCH_FILE, CmdLog, Epoch

_RT_CAP = const(40)  # codec budget of one streamed reading
_GAS_BYTES = const(96)  # a batch's gas section (uplink/codec_gas.py): 6+ gas readings
REALTIME_MAX_S = const(900)  # no request can make a device stream longer
_KA_RESYNC = const(40)  # silent keep-alives before a HELLO (collector takes 64 above its window)
# Readings a batch may carry: the collector refuses more (its MAX_READINGS,
# a bound on what one datagram can make it store); only a very steady meter
# (~1 bit a reading) ever reaches it before the 1,166-byte budget.
MAX_BATCH = const(2048)


class Uplink:
    def __init__(
        self,
        store,
        device_id,
        key_id,
        key,
        endpoints,
        clock=None,
        on_command=None,
        faults=None,
        keepalive_s=None,
        nat_timeout_s=60,
        realtime_wait_s=120,
        batch_max_age_s=5400,
        rto_min_s=2,
        rto_max_s=300,
        failover_after=3,
        probe_after=2,
        seq_file=None,
        health_source=None,
    ):
        self.store = store
        self.clock = clock or hal.clock
        seq_file = seq_file or seq_path()
        d = seq_file[: seq_file.rfind("/") + 1]  # the other uplink state files beside it
        self.ident = Epoch(d + EPOCH_FILE, store.seq)  # what our reading numbers mean
        self.cmds = CmdLog(d + CMDS_FILE)  # which commands ran
        self.session = Session(device_id, key_id, key, SeqSource(seq_file, self.clock), epoch=self.ident.id)
        self.session.cmd_mark = self.cmds.mark
        self.status = self.session.status
        self.endpoints = endpoints  # [(host, port)], failover order
        self.on_command = on_command  # fn(kind, payload bytes) -> status int
        self.faults = faults
        if keepalive_s is None:
            # Worst wait for a request = interval - NAT timeout (the collector
            # pushes while the mapping of our last datagram lives).
            keepalive_s = nat_timeout_s + realtime_wait_s
        self.status.keepalive_s = keepalive_s
        self.ka_ms = keepalive_s * 1000
        self.max_age_ms = batch_max_age_s * 1000
        self.rt = Rto(rto_min_s * 1000, rto_max_s * 1000, getattr(self.clock, "speed", 1))
        self.failover_after = failover_after
        self.probe_after = probe_after
        self.tx = bytearray(dg.MAX_DGRAM)  # the batch in flight
        self.ctl = bytearray(96)  # keep-alive, HELLO, DONE, HEALTH, streamed reading
        # received datagrams (one byte over the limit: a longer one is seen
        # as such); recvfrom() allocated this much for every datagram, and a
        # fragmented 96 KB heap could not always find the block
        self.rx = bytearray(dg.MAX_DGRAM + 1)
        self.enc = Encoder(dg.DATA_CAP, _GAS_BYTES)
        self.enc_from = -1  # the cursor the encoder's batch was started at (-1: none)
        self.enc_first = -1  # seq of its first reading
        self.enc_full = False  # the next reading did not fit (or a hole)
        self.rt_enc = Encoder(_RT_CAP)
        self.wake = asyncio.Event()
        self.sock = None
        self.addr = None
        self.ep = -1
        self.uploaded = store.cursor(UPLOADED) or 0  # last acknowledged reading seq
        self.head = None  # newest reading seq, when notify() tells us
        self.last = [0] * 6  # latest reading seen by notify()
        self.have_last = False
        self.inflight = 0  # readings in the batch in flight (0: none)
        self.first = 0
        self.txn = 0
        self.tries = 0
        self.sent_at = 0  # ticks of the latest transmission of the batch
        self.tx_seq = 0
        self.sent_at0 = 0  # and of its first transmission
        self.tx_seq0 = 0
        self.deadline = 0
        self.fails = 0  # consecutive timeouts without any authentic reply
        self.probing = False
        self.pending_since = None
        self.per_batch = 0  # readings in the last full batch
        self.next_try = 0
        self.rt_until = 0
        self.ka_quiet = 0  # keep-alives sent since the last authentic reply
        self.flush_req = False
        self.hello_seq = -1
        self.hello_at = 0
        self.last_tx = self.clock.ticks_ms()
        health.init(self, health_source, d + health.BOOTS_FILE)  # reports: uplink/health.py

    @property
    def epoch(self):
        # The reading epoch in force (readings are (device, epoch, seq) at the collector).
        return self.ident.value()

    # -- public --------------------------------------------------------------
    def notify(self, seq, t_s, demand, delivered, received, flags):
        # The app calls this after each store.append(); streams it when in
        # real-time mode. Cheap otherwise.
        self.head = seq
        last = self.last
        last[0] = seq
        last[1] = t_s  # device seconds (meter/reading.py)
        last[2] = demand
        last[3] = delivered
        last[4] = received
        last[5] = flags
        self.have_last = True
        if self.status.realtime:
            self._stream()

    def request_realtime(self, seconds):
        # Start (or stop, with 0) streaming; the same as a collector command.
        now = self.clock.ticks_ms()
        seconds = min(seconds, REALTIME_MAX_S)
        self.rt_until = time.ticks_add(now, seconds * 1000)
        was = self.status.realtime
        self.status.realtime = seconds > 0
        self.status.realtime_left_s = seconds
        if self.status.realtime and not was and self.have_last:
            self._stream()  # the latest reading right away

    def flush(self):
        # Send everything pending now, full batch or not (before an update,
        # a planned restart, or at the end of a simulation).
        self.flush_req = True
        self.next_try = self.clock.ticks_ms()
        self.wake.set()

    async def run(self):
        self.sock = hal.udp_socket(0)
        self._failover()
        asyncio.create_task(rx.rx_loop(self))
        self._hello()
        while True:
            ms = self._step(self.clock.ticks_ms())
            try:
                await asyncio.wait_for_ms(self.wake.wait(), max(1, self.clock.real_ms(ms)))
            except asyncio.TimeoutError:
                pass
            self.wake.clear()

    # -- sending -----------------------------------------------------------------
    def _send(self, buf, n):
        if self.addr is None:
            return
        try:
            self.sock.sendto(memoryview(buf)[:n], self.addr)
        except OSError:
            return  # no route (Wi-Fi down): same as a lost datagram
        st = self.status
        st.bytes_up += n
        st.datagrams_up += 1
        self.last_tx = self.clock.ticks_ms()

    def _send_ctl(self, n):
        self._send(self.ctl, n)

    def _hello(self):
        # Always answered: its reply also gives an RTT sample before any batch.
        n, self.hello_seq = self.session.hello(self.ctl, self.uploaded, self.head or 0)
        self.hello_at = self.clock.ticks_ms()
        self._send_ctl(n)

    def _stream(self):
        last = self.last
        enc = self.rt_enc
        enc.start()
        enc.add(last[1], last[2], last[3], last[4], last[5])
        n = self.session.data(self.ctl, last[0], 1, dg.DF_REALTIME, enc)[0]
        self._send_ctl(n)

    def _failover(self):
        # Next endpoint whose name resolves; counts a failover when switching.
        eps = self.endpoints
        for _ in range(len(eps)):
            self.ep = (self.ep + 1) % len(eps)
            host, port = eps[self.ep]
            self.status.endpoint = "%s:%d" % (host, port)
            try:
                self.addr = hal.resolve(host, port)
                return
            except OSError:
                self.addr = None
        # nothing resolves (no DNS yet): retried on the next failure

    # -- the schedule -------------------------------------------------------------
    def _step(self, now):
        # Does whatever is due; returns ms until something may be due next.
        st = self.status
        if st.realtime:
            left = time.ticks_diff(self.rt_until, now)
            st.realtime_left_s = max(0, left // 1000)
            if left <= 0:
                st.realtime = False
        if self.inflight and time.ticks_diff(now, self.deadline) >= 0:
            self._timeout(now)
        if not self.inflight and time.ticks_diff(now, self.next_try) >= 0:
            self._try_batch(now)
        if not st.realtime and time.ticks_diff(now, time.ticks_add(self.last_tx, self.ka_ms)) >= 0:
            if self.ka_quiet >= _KA_RESYNC or self.hello_seq != -1:
                # The collector takes keep-alives only up to 64 seqs above
                # the last full datagram it accepted: after this many
                # unanswered contacts, or while a HELLO is unanswered (lost
                # at boot, our seq jumped ahead of anything it knows), HELLO.
                self.ka_quiet = 0
                self._hello()
            else:
                st.keepalives += 1
                self.ka_quiet += 1
                self._send_ctl(self.session.keepalive(self.ctl)[0])
        due = min(time.ticks_diff(time.ticks_add(self.last_tx, self.ka_ms), now), health.step(self, now))
        if self.inflight:
            due = min(due, time.ticks_diff(self.deadline, now))
        else:
            due = min(due, time.ticks_diff(self.next_try, now))
        if st.realtime:
            due = min(due, time.ticks_diff(self.rt_until, now))
        return max(1, due)

    def _try_batch(self, now):
        # The batch grows across tries: each reading is encoded once, not
        # again at every look (a batch takes ~1,500 readings and several
        # looks to fill).
        enc = self.enc
        if self.enc_from != self.uploaded or not enc.count():
            enc.start()
            self.enc_from = self.uploaded
            self.enc_first = -1
            self.enc_full = False
        first = self.enc_first
        n = enc.count()
        full = self.enc_full
        if not full:
            # committed only; the store's shared reader (no allocation; no
            # await or store query inside this loop)
            for r in self.store.readings_from(first + n if n else self.uploaded + 1, False, True):
                if first < 0:
                    first = r[0]
                elif r[0] != first + n:
                    full = True  # a hole in the store: the batch ends before it
                    break
                if n >= MAX_BATCH or not enc.add(r[1], r[2], r[3], r[4], r[5]):
                    full = True
                    break
                n += 1
            self.enc_first = first
            self.enc_full = full
        st = self.status
        if n == 0:
            st.pending = 0
            st.batches_pending = 0
            self.pending_since = None
            self.flush_req = False
            self.next_try = time.ticks_add(now, 60_000)
            return
        if full:
            self.per_batch = n
        pending = (self.head - self.uploaded) if self.head is not None else n
        st.pending = pending
        per = self.per_batch or (n * dg.DATA_CAP // max(1, enc.size()))
        st.batches_pending = (pending + per - 1) // per
        if self.pending_since is None:
            self.pending_since = now
        age = time.ticks_diff(now, self.pending_since)
        if not full and age < self.max_age_ms and not self.flush_req:
            # Not worth a datagram yet: look again when it should be full.
            span = enc.span()
            per_ms = span * 1000 // (n - 1) if n > 1 else 3000
            fill = (per - n) * per_ms * 9 // 10
            self.next_try = time.ticks_add(now, max(60_000, min(self.max_age_ms - age, fill)))
            return
        self.first = first
        self.inflight = n
        self.enc_from = -1  # finish() below consumes the encoder's batch
        self.tries = 0
        self.probing = False
        self.ident.sending(first + n - 1)  # on flash before the batch leaves
        self.txn, self.tx_seq = self.session.data(self.tx, first, n, 0, enc)
        self.sent_at = self.sent_at0 = now
        self.tx_seq0 = self.tx_seq
        self._send(self.tx, self.txn)
        self.deadline = time.ticks_add(now, self.rt.rto)

    def _timeout(self, now):
        st = self.status
        self.tries += 1
        self.fails += 1
        self.rt.backoff()
        if self.fails % self.failover_after == 0 and len(self.endpoints) > 1:
            st.failovers += 1
            self._failover()
        elif self.addr is None:
            self._failover()
        if self.faults is not None and self.fails >= self.failover_after:
            self.faults.set(CLOUD_UNREACHABLE)
        if self.tries >= self.probe_after:
            self.probing = True
            self._hello()
        else:
            self._retransmit(now)
        self.deadline = time.ticks_add(now, self.rt.rto)

    def _retransmit(self, now):
        self.status.retransmits += 1
        self.txn, self.tx_seq = self.session.reseal(self.tx, self.txn)
        self.sent_at = now
        self._send(self.tx, self.txn)

    def on_datagram(self, data, n=-1):
        # data[:n] (n < 0: all of data) is one datagram from the network (uplink/rx.py)
        rx.on_datagram(self, data, n)
