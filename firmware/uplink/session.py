# Uplink session state: sequence numbers, what the collector may say, status.
#
# Owns everything about the conversation with the collector that is not
# sockets or timers (those are uplink.py): the retransmission timeout
# estimate (Rto), the datagram sequence numbers
# (reserved in blocks in the store's cursors, so they keep rising across
# reboots without a flash write per datagram), the check of every incoming
# datagram (length, type, device, tag over our boot nonce, echo of one of
# our recent sequence numbers, replay window), and the status object the
# display reads. Which commands ran is uplink/state.py (CmdLog).
import os
import time

from micropython import const

from uplink import datagram as dg

SEQ_BLOCK = const(4096)  # sequence numbers reserved per file write
SEQ_EPOCH = const(1_700_000_000)  # UTC of seq floor 0 (2023-11-14)
# Datagram seqs stay below this: small ints on the 32-bit device, and far
# from the wire's 2^32, so they never wrap. A file or clock floor above it is
# damage and ignored; a collector window above it is reset (R_STALE with a
# challenge, docs/uplink.md "Identity across state loss").
SEQ_MAX = const(0x3FFF0000)
ECHO_SPAN = const(512)  # a reply must echo one of our last ECHO_SPAN seqs
_RTO_INIT = const(10_000)  # ms, before the first round-trip sample
# An accelerated clock (simulations) speeds up the device, not the collector
# or the network: an RTO shorter than this much real time would time out
# round trips that take milliseconds in reality (at 1000x the collector's
# 11 ms to commit a batch are 11 device seconds). No effect at speed 1.
_RTO_REAL_MIN = const(50)  # ms of real time
SEQ_FILE = "uplink_seq"
UPLOADED = "uploaded"  # store cursor: last reading seq the collector acknowledged


class Status:
    # What the display and the logs show about the uplink. Plain attributes,
    # updated in place; ages are computed by the reader from ticks.
    def __init__(self):
        self.endpoint = ""  # "host:port" in use
        self.last_ack_ticks = None  # ticks_ms of the last authenticated reply
        self.pending = 0  # readings stored but not yet acknowledged
        self.batches_pending = 0  # estimate: pending / readings per batch
        self.realtime = False
        self.realtime_left_s = 0
        self.bytes_up = 0  # UDP payload bytes sent / received
        self.bytes_down = 0
        self.datagrams_up = 0
        self.datagrams_down = 0
        self.batches_acked = 0
        self.retransmits = 0
        self.failovers = 0
        self.keepalives = 0
        self.keepalive_s = 0  # the keep-alive interval in use
        self.commands = 0  # commands run (repeats of a command run earlier not counted)
        self.refusals = 0  # authenticated refusals obeyed (REFUSE: N03 until the next reply)
        # rejected incoming datagrams, by reason
        self.rej_short = 0  # truncated: shorter than a reply can be
        self.rej_long = 0  # oversized: longer than MAX_DGRAM
        self.rej_type = 0  # not a collector->device type, or other version
        self.rej_device = 0  # for another device or key
        self.rej_tag = 0  # forged or damaged: tag does not verify
        self.rej_echo = 0  # does not answer any recent datagram of ours
        self.rej_replay = 0  # already seen (replayed or duplicated)
        self.rej_body = 0  # authenticated but malformed body

    def rejected(self):
        return (
            self.rej_short
            + self.rej_long
            + self.rej_type
            + self.rej_device
            + self.rej_tag
            + self.rej_echo
            + self.rej_replay
            + self.rej_body
        )

    def ack_age_s(self, now_ticks):
        # Seconds since the last authenticated reply (None: never).
        t = self.last_ack_ticks
        return None if t is None else time.ticks_diff(now_ticks, t) // 1000


class SeqSource:
    # Datagram sequence numbers that rise across reboots without a flash
    # write per datagram: blocks of SEQ_BLOCK are reserved in a small file
    # (one write per block), and while the clock is valid the number never
    # falls below the seconds since SEQ_EPOCH, so a lost or damaged file
    # cannot send the device back below what the collector has seen (a
    # device sends far less than one datagram per second on average).
    def __init__(self, path, clock):
        self.path = path
        self.clock = clock
        base = 0
        try:
            with open(path) as f:
                base = int(f.read(16))
        except (OSError, ValueError, UnicodeError):
            pass
        if not 0 <= base < SEQ_MAX - SEQ_BLOCK:
            base = 0  # damaged: the collector's refusal tells us where to go
        self.seq = self._floor(base)
        self.first = self.seq  # nothing below this was sent in this boot
        self._reserve()

    def _floor(self, v):
        c = self.clock
        if c is not None and c.valid():
            t = c.utc() - SEQ_EPOCH
            if v < t < SEQ_MAX - SEQ_BLOCK:
                return t
        return v

    def jump(self, to):
        # The collector has seen up to `to` - 1 (its authenticated refusal
        # says so): continue from there. False if that is beyond SEQ_MAX.
        if to >= SEQ_MAX - SEQ_BLOCK:
            return False
        if to > self.seq:
            self.seq = to
            self._reserve()
        return True

    def _reserve(self):
        self.reserved = self.seq + SEQ_BLOCK
        try:
            with open(self.path, "w") as f:
                f.write(str(self.reserved))
        except OSError:
            pass  # no filesystem: the clock floor still holds

    def next(self):
        s = self.seq
        if s >= SEQ_MAX:
            s = self.seq = self.first = 0  # never: 2^30 datagrams; refused, then reset
        self.seq = s + 1
        if self.seq >= self.reserved:
            self._reserve()
        return s


class Rto:
    # Retransmission timeout (RFC 6298) in device ms: SRTT + 4 * RTTVAR
    # within [lo, hi], 10 s before the first sample; doubled by backoff(),
    # back to the estimate by reset() or a new sample.
    def __init__(self, lo_ms, hi_ms, speed=1):
        self.hi = hi_ms
        self.lo = min(hi_ms, max(lo_ms, _RTO_REAL_MIN * speed))
        self.srtt = 0
        self.rttvar = 0
        self.reset()

    def sample(self, rtt):
        rtt = max(1, rtt)
        if not self.srtt:
            self.srtt = rtt
            self.rttvar = rtt // 2
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - rtt)) // 4
            self.srtt = (7 * self.srtt + rtt) // 8
        self.reset()

    def reset(self):
        if not self.srtt:
            self.rto = max(_RTO_INIT, self.lo)
        else:
            self.rto = max(self.lo, min(self.hi, self.srtt + 4 * self.rttvar))

    def backoff(self):
        self.rto = min(self.rto * 2, self.hi)


def seq_path():
    import hal

    sd = getattr(hal, "state_dir", None)
    return (sd() if sd else "") + "/" + SEQ_FILE


class Session:
    # device: (device_id, key_id, key bytes); seqs: a SeqSource. epoch: the
    # 4-byte reading epoch (state.Epoch.id, shared: a new epoch shows at
    # once); nonce: this boot's 4 random bytes (the collector binds its
    # replies to them); cmd_mark: the highest command id run (HELLO says it).
    def __init__(self, device_id, key_id, key, seqs, status=None, epoch=None, nonce=None):
        self.dev = device_id
        self.kid = key_id
        self.mac = dg.Hmac(key)
        self.seqs = seqs
        self.status = status or Status()
        self.window = dg.Window()
        self.epoch = epoch if epoch is not None else bytearray(4)
        self.nonce = bytearray(nonce if nonce is not None else os.urandom(4))
        self.cmd_mark = 0

    def next_seq(self):
        return self.seqs.next()

    # -- outgoing ------------------------------------------------------------
    def data(self, buf, first, count, flags, enc):
        # DATA datagram around the encoder's batch; returns (length, seq).
        seq = self.next_seq()
        # version 3 only for a batch with gas readings: without, the bytes
        # are version 2's (a collector before version 3 takes them)
        dg.header(buf, dg.T_DATA3 if enc.gas_count() else dg.T_DATA, self.dev, self.kid, seq)
        buf[dg.HDR : dg.HDR + 4] = self.epoch
        dg.put32(buf, dg.HDR + 4, first)
        dg.put16(buf, dg.HDR + 8, count)
        buf[dg.HDR + 10] = flags
        n = enc.finish(buf, dg.DATA_HEAD)
        return dg.seal(buf, n, self.mac), seq

    def reseal(self, buf, n):
        # Retransmission: same batch, a fresh seq and tag (and the epoch in
        # force: after a new epoch the batch is rebuilt, never resent).
        seq = self.next_seq()
        dg.put32(buf, 7, seq)
        return dg.seal(buf, n - dg.TAG, self.mac), seq

    def hello(self, buf, uploaded, head):
        seq = self.next_seq()
        dg.header(buf, dg.T_HELLO, self.dev, self.kid, seq)
        dg.put32(buf, dg.HDR, uploaded)
        dg.put32(buf, dg.HDR + 4, head)
        buf[dg.HDR + 8 : dg.HDR + 12] = self.epoch
        buf[dg.HDR + 12 : dg.HDR + 16] = self.nonce
        dg.put32(buf, dg.HDR + 16, self.cmd_mark)
        return dg.seal(buf, dg.HDR + dg.HELLO_BODY, self.mac), seq

    def done(self, buf, cmd_id, status):
        seq = self.next_seq()
        dg.header(buf, dg.T_DONE, self.dev, self.kid, seq)
        dg.put32(buf, dg.HDR, cmd_id)
        buf[dg.HDR + 4] = status & 0xFF
        return dg.seal(buf, dg.HDR + 5, self.mac), seq

    def keepalive(self, buf):
        seq = self.next_seq()
        return dg.keepalive(buf, self.dev, seq, self.mac), seq

    # -- incoming --------------------------------------------------------------
    def accept(self, buf, n):
        # Checks a datagram from the network. Returns its type (T_REPLY or
        # T_REFUSE) if it is authentic (tagged over our boot nonce), fresh
        # and well formed (fields then read with the helpers below);
        # otherwise counts the reason and returns 0. Never raises.
        st = self.status
        if n > dg.MAX_DGRAM:
            st.rej_long += 1
            return 0
        if n < dg.REPLY_HEAD + dg.TAG:
            st.rej_short += 1
            return 0
        t = buf[0]
        if t != dg.T_REPLY and t != dg.T_REFUSE:
            st.rej_type += 1
            return 0
        if dg.get32(buf, 1) != self.dev or dg.get16(buf, 5) != self.kid:
            st.rej_device += 1
            return 0
        if not dg.check(buf, n, self.mac, self.nonce):
            st.rej_tag += 1  # forged, damaged, or for another boot
            return 0
        echo = dg.get32(buf, dg.HDR)
        top = self.seqs.seq
        if not (self.seqs.first <= echo < top and top - echo <= ECHO_SPAN):
            st.rej_echo += 1
            return 0
        seq = dg.get32(buf, 7)
        if not self.window.fresh(seq):
            st.rej_replay += 1
            return 0
        if not (n == dg.REFUSE_LEN if t == dg.T_REFUSE else self._commands_ok(buf, n)):
            st.rej_body += 1
            return 0
        self.window.accept(seq)
        return t

    def _commands_ok(self, buf, n):
        # Command list fills the body exactly: kind u8, id u32, len u16, payload.
        p = dg.REPLY_HEAD
        end = n - dg.TAG
        while p < end:
            if p + 7 > end:
                return False
            p += 7 + dg.get16(buf, p + 5)
        return p == end

    @staticmethod
    def ack_range(buf):
        # (first reading seq, count) acknowledged; count 0: not an ACK.
        return dg.get32(buf, dg.HDR + 4), dg.get16(buf, dg.HDR + 8)

    @staticmethod
    def commands(buf, n):
        # Yields (kind, cmd_id, payload offset, payload length).
        p = dg.REPLY_HEAD
        end = n - dg.TAG
        while p < end:
            ln = dg.get16(buf, p + 5)
            yield buf[p], dg.get32(buf, p + 1), p + 7, ln
            p += 7 + ln

    @staticmethod
    def refusal(buf):
        # (reason, min_seq, challenge offset) of an accepted REFUSE.
        return buf[dg.HDR + 4], dg.get32(buf, dg.HDR + 5), dg.HDR + 9
