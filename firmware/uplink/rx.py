# The uplink's receiving side: every datagram from the network, judged by
# session.accept(); ACKs move the upload cursor, commands run exactly once
# (state.CmdLog), refusals are obeyed (docs/uplink.md, "Identity across
# state loss"). Functions of the uplink.Uplink `up` (which owns the timers
# and sending and calls them), kept apart only to keep each module small.
import time
from asyncio import core  # type: ignore[attr-defined]  # the I/O queue StreamReader uses

from faults import CLOUD_AUTH, CLOUD_UNREACHABLE
from uplink import datagram as dg
from uplink import health
from uplink.session import SEQ_BLOCK, UPLOADED


async def _readable(sock):
    # Wait until a datagram is there (StreamReader would concatenate them).
    yield core._io_queue.queue_read(sock)


async def rx_loop(up):
    s = up.sock
    rx = up.rx
    while True:
        await _readable(s)
        try:
            n = s.readinto(rx)
        except OSError:
            continue
        # readinto() drains the socket: two queued datagrams would come
        # concatenated, fail their tag and count as one lost reply (the
        # protocol's retries cover it, as any loss)
        if n:
            on_datagram(up, rx, n)


def on_datagram(up, data, n=-1):
    # data[:n] (n < 0: all of data) is one datagram from the network
    if n < 0:
        n = len(data)
    st = up.status
    st.bytes_down += n
    st.datagrams_down += 1
    ses = up.session
    t = ses.accept(data, n)
    if not t:
        return
    now = up.clock.ticks_ms()
    up.fails = 0
    up.ka_quiet = 0
    fl = up.faults
    if fl is not None:
        fl.clear(CLOUD_UNREACHABLE)
    if t == dg.T_REFUSE:
        _refused(up, data, now)
        up.wake.set()
        return
    st.last_ack_ticks = now
    if fl is not None:
        fl.clear(CLOUD_AUTH)
    first, count = ses.ack_range(data)
    health.acked(up, dg.get32(data, dg.HDR), now)
    if up.hello_seq != -1:
        # Any authentic reply: the collector knows a seq of ours now.
        if dg.get32(data, dg.HDR) == up.hello_seq:
            up.rt.sample(time.ticks_diff(now, up.hello_at))
        up.hello_seq = -1
    if up.inflight and count and first == up.first and count == up.inflight:
        # The reply echoes which transmission it answers, so the RTT
        # sample is exact even after a retransmission (no Karn problem).
        echo = dg.get32(data, dg.HDR)
        if echo == up.tx_seq:
            up.rt.sample(time.ticks_diff(now, up.sent_at))
        elif echo == up.tx_seq0:
            up.rt.sample(time.ticks_diff(now, up.sent_at0))
        else:
            up.rt.reset()  # backoff ends with the batch
        up.uploaded = first + count - 1
        up.store.set_cursor(UPLOADED, up.uploaded)
        up.inflight = 0
        up.pending_since = None
        up.next_try = now  # more may be waiting (after an outage)
        st.batches_acked += 1
    elif up.inflight and up.probing:
        # The collector is back: send the batch again now.
        up.probing = False
        up.tries = 0
        up.rt.reset()
        up._retransmit(now)
        up.deadline = time.ticks_add(now, up.rt.rto)
    _commands(up, data, n)
    up.wake.set()


def _commands(up, data, n):
    # Each command id runs once, ever (state.CmdLog); a repeat gets its
    # DONE again. No more than CMDS_PER_REPLY per reply: the rest come
    # again, and the collector never sends more.
    ses = up.session
    log = up.cmds
    k = 0
    for kind, cid, off, ln in ses.commands(data, n):
        k += 1
        if k > dg.CMDS_PER_REPLY:
            break
        res = log.done_before(cid)
        if res is None:
            up.status.commands += 1
            log.begin(cid)
            ses.cmd_mark = cid
            res = _run(up, kind, data, off, ln)
            log.end(cid, res)
        up._send_ctl(ses.done(up.ctl, cid, res)[0])


def _run(up, kind, data, off, ln):
    if kind == dg.CMD_REALTIME:
        up.request_realtime(dg.get16(data, off) if ln >= 2 else 0)
        return 0
    if up.on_command is None:
        return 1  # not supported by this firmware
    try:
        return (up.on_command(kind, data[off : off + ln]) or 0) & 0xFF
    except Exception:  # a handler's bug must not stop the uplink
        return 255


def _refused(up, data, now):
    # An authenticated refusal (bound to this boot's nonce, echoing a
    # datagram of ours): say so (N03) and do what it takes to be heard.
    st = up.status
    ses = up.session
    reason, min_seq, co = ses.refusal(data)
    if reason == dg.R_STALE and min_seq <= ses.seqs.seq:
        return  # we are past that already (a refusal of a replayed HELLO)
    st.refusals += 1
    if up.faults is not None:
        up.faults.set(CLOUD_AUTH)
    if reason == dg.R_STALE:
        # Past what the collector saw, with a block to spare for seqs an
        # earlier boot may have sent that it never saw; if the window is
        # too high for that, answer its challenge: the next HELLO carries
        # it as our nonce and the collector starts the window afresh.
        if not ses.seqs.jump(min_seq + SEQ_BLOCK) and not ses.seqs.jump(min_seq):
            ses.nonce[:] = data[co : co + 4]
        up._hello()
        if up.inflight:
            up._retransmit(now)
            up.deadline = time.ticks_add(now, up.rt.rto)
    elif reason == dg.R_CONFLICT:
        # It holds other values under our (epoch, seq): a store lost
        # state in a way the epoch file did not catch. Number afresh.
        up.ident.new()
        up.inflight = 0
        up.enc_from = -1
        up.pending_since = None
        up.probing = False
        up.tries = 0
        up.next_try = now
