# ASH link behaviour over time, with a controlled clock (Ash(ticks=...)):
# retransmission timeout (UG101: start 1.6 s, doubled on timeout, 7/8 old +
# 1/2 measured on ACK, within 0.4..3.2 s), giving up after 4
# retransmissions, reset timeout, one NAK per reject condition, duplicates
# ACKed and dropped, RSTACK/ERROR handling.
from meter import ash

HEAP = "64k"


class T:
    def __init__(self):
        self.ms = 0

    def __call__(self):
        return self.ms


def make():
    t = T()
    out = []
    ev = []
    got = []
    a = ash.Ash(lambda b, n: out.append(bytes(b[:n])), lambda b, o, n: got.append(bytes(b[o : o + n])),
                lambda k, c: ev.append((k, c)), ticks=t)  # fmt: skip
    return a, t, out, ev, got


def frame_from_ncp(a_ncp, payload, frm, ack=0, retx=False):
    # Build an NCP->host DATA frame with another Ash (same DATA format).
    a_ncp._pending = False
    a_ncp._frm = frm
    a_ncp._ack = ack
    a_ncp.state = ash.CONNECTED
    a_ncp.send(payload, len(payload))
    if retx:
        a_ncp._transmit(True)


def rstack(a, code=2):
    raw = bytearray([0xC1, 2, code, 0, 0])
    c = ash.crc16(raw, 0, 3, ash.CRC_TABLE)
    raw[3] = c >> 8
    raw[4] = c & 0xFF
    out = bytearray(16)
    n = ash.stuff(raw, 5, out)
    a.feed(out, n)


def test_retransmission_timeout_doubles_and_gives_up():
    a, t, out, ev, _ = make()
    rstack(a)
    a.send(b"\x00\x00\x01\x05\x00", 5)
    sends = [t.ms]
    while not ev[1:]:
        t.ms += 10
        n = len(out)
        a.poll()
        if len(out) > n:
            sends.append(t.ms)
    # Sent at 0, again after t_rx_ack = 1.6 s, which then doubles to the
    # 3.2 s cap for every later retransmission.
    gaps = [sends[i + 1] - sends[i] for i in range(len(sends) - 1)]
    assert len(sends) == 1 + ash.ACK_RETRIES, sends
    assert gaps == [1600, 3200, 3200, 3200], gaps
    assert a.retx == ash.ACK_RETRIES
    t.ms += 3200
    a.poll()
    assert ev[-1] == (ash.EV_TX_FAILED, 0) and a.state == ash.FAILED
    assert not a.send(b"\x00\x00\x01\x05\x00", 5)  # nothing more until a reset


def test_ack_shortens_the_timeout_within_bounds():
    a, t, out, ev, _ = make()
    rstack(a)
    ack = bytearray(8)
    for i in range(40):
        a.send(b"\x00\x00\x01\x05\x00", 5)
        t.ms += 20  # a fast NCP: acknowledged after 20 ms
        raw = bytearray([0x80 | ((i + 1) & 7), 0, 0])
        c = ash.crc16(raw, 0, 1, ash.CRC_TABLE)
        raw[1] = c >> 8
        raw[2] = c & 0xFF
        n = ash.stuff(raw, 3, ack)
        a.feed(ack, n)
        assert not a.busy()
    # 7/8 per ACK from 1600 ms towards 10 ms: clamped at the 400 ms minimum.
    assert a._t_ack == ash.T_RX_ACK_MIN


def test_reset_timeout():
    a, t, out, ev, _ = make()
    a.reset()
    t.ms += ash.T_RSTACK_MAX - 1
    a.poll()
    assert ev == []
    t.ms += 1
    a.poll()
    assert ev == [(ash.EV_RESET_TIMEOUT, 0)] and a.state == ash.FAILED
    rstack(a, 11)  # a late RSTACK still brings the link up
    assert a.state == ash.CONNECTED and ev[-1] == (ash.EV_RSTACK, 11)


def test_nak_once_per_reject_condition_and_duplicates():
    a, t, out, ev, got = make()
    rstack(a)
    ncp_out = []
    ncp = ash.Ash(lambda b, n: ncp_out.append(bytes(b[:n])), None, None)
    p = b"\x01\x82\x01\x19\x00\x90"
    # Frame 1 while frame 0 is expected: out of sequence -> one NAK only.
    for _ in range(3):
        frame_from_ncp(ncp, p, 1)
        a.feed(ncp_out[-1], len(ncp_out[-1]))
    naks = [o for o in out if o[0] & 0xE0 == 0xA0]
    assert len(naks) == 1 and a.rx_seq_err == 3 and got == []
    # The right frame clears the condition and is delivered and ACKed.
    frame_from_ncp(ncp, p, 0)
    a.feed(ncp_out[-1], len(ncp_out[-1]))
    assert got == [p] and out[-1][0] == 0x81
    # Its retransmission (reTx set) is ACKed again, not delivered twice.
    frame_from_ncp(ncp, p, 0, retx=True)
    a.feed(ncp_out[-1], len(ncp_out[-1]))
    assert got == [p] and a.rx_dup == 1 and out[-1][0] == 0x81


def test_error_frame_needs_reset():
    a, t, out, ev, _ = make()
    rstack(a)
    raw = bytearray([0xC2, 2, 0x51, 0, 0])
    c = ash.crc16(raw, 0, 3, ash.CRC_TABLE)
    raw[3] = c >> 8
    raw[4] = c & 0xFF
    buf = bytearray(16)
    a.feed(buf, ash.stuff(raw, 5, buf))
    assert ev[-1] == (ash.EV_ERROR, 0x51) and a.state == ash.FAILED
    assert not a.send(b"\x00\x00\x01\x05\x00", 5)
