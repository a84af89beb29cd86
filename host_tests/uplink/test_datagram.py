"""Datagrams: the firmware's hand-made HMAC against CPython's hmac, the layout
against the host parser, and the device's rejection of everything that is not
an authentic, fresh reply (each reason counted, nothing raised)."""

from __future__ import annotations

import hmac
import random
import sys
from hashlib import sha256
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
from ihd.uplink import codec as uc  # noqa: E402
from ihd.uplink import wire  # noqa: E402

KEY = bytes(range(100, 132))
DEV = 0x01020304

HMAC_SNIPPET = """
import sys, binascii
from uplink.datagram import Hmac
for line in sys.stdin:
    k, m = line.split()
    k = binascii.unhexlify(k) if k != "-" else b""
    m = binascii.unhexlify(m) if m != "-" else b""
    print(Hmac(k).digest(m, len(m)).hex())
"""


def test_hmac_matches_cpython(mpy):
    rng = random.Random(3)
    cases = []
    for klen in (0, 1, 31, 32, 63, 64, 65, 100):
        for mlen in (0, 1, 55, 56, 64, 119, 1200):
            cases.append((rng.randbytes(klen), rng.randbytes(mlen)))
    text = "".join(f"{k.hex() or '-'} {m.hex() or '-'}\n" for k, m in cases)
    out = mpy.run(HMAC_SNIPPET, input=text.encode(), heap="64k").stdout.split()
    assert out == [hmac.new(k, m, sha256).hexdigest() for k, m in cases]


# The device side: sends one datagram of each kind (seqs 0..4), then judges
# each reply given on stdin and prints the verdict and its counters.
DEVICE_SNIPPET = """
import sys, binascii, os
from uplink.session import Session, SeqSource
from uplink.codec import Encoder
from meter import reading
from uplink import datagram as dg
path = os.getenv("IHD_STATE") + "/seq"
try:
    os.mkdir(os.getenv("IHD_STATE"))
except OSError:
    pass
ses = Session(DEV, 7, KEY, SeqSource(path, None), epoch=bytearray(b"\\0\\0\\0\\x09"), nonce=b"\\0\\0\\0\\x05")
buf = bytearray(dg.MAX_DGRAM)
enc = Encoder(dg.DATA_CAP)
for r in ((1700000000, 420, 5000, 0, 7), (1700000003, 433, 5000, 0, 7), (1700000006, 410, 5001, 0, 7)):
    enc.add(r[0] + reading.NO_TIME, r[1], r[2], r[3], r[4])  # device seconds (NO_TIME: -epoch) in, Unix out
n, s = ses.data(buf, 41, 3, 0, enc)
print("out", bytes(buf[:n]).hex())
n, s = ses.hello(buf, 40, 43)
print("out", bytes(buf[:n]).hex())
n, s = ses.done(buf, 99, 0)
print("out", bytes(buf[:n]).hex())
n, s = ses.keepalive(buf)
print("out", bytes(buf[:n]).hex())
n, s = ses.reseal(bytearray(buf), n)  # seq 4 consumed
for line in sys.stdin:
    d = binascii.unhexlify(line.strip()) if line.strip() else b""
    t = ses.accept(d, len(d))
    ok = t == dg.T_REPLY
    cmds = [(k, c, bytes(d[o:o + l])) for k, c, o, l in ses.commands(d, len(d))] if ok else []
    print("in", ok, ses.ack_range(d) if ok else (ses.refusal(d)[:2] if t else None), cmds)
st = ses.status
print("counts", st.rej_short, st.rej_long, st.rej_type, st.rej_device, st.rej_tag, st.rej_echo,
      st.rej_replay, st.rej_body)
"""


def _device(mpy, replies: list[bytes]):
    code = DEVICE_SNIPPET.replace("DEV", str(DEV)).replace("KEY", repr(KEY))
    r = mpy.run(code, input="".join(x.hex() + "\n" for x in replies).encode(), heap="96k")
    lines = r.stdout.splitlines()
    outs = [bytes.fromhex(x[4:]) for x in lines if x.startswith("out ")]
    ins = [x[3:] for x in lines if x.startswith("in ")]
    counts = [int(x) for x in lines[-1].split()[1:]]
    return outs, ins, counts


def test_firmware_datagrams_parse_and_verify_on_the_host(mpy):
    outs, _, _ = _device(mpy, [])
    data, hello, done, ka = (wire.parse(x) for x in outs)
    assert (data.type, data.device_id, data.key_id, data.seq) == (wire.T_DATA, DEV, 7, 0)
    assert (data.epoch, data.first, data.count, data.flags) == (9, 41, 3, 0)
    assert uc.decode(data.payload) == [
        (1700000000, 420, 5000, 0, 7),
        (1700000003, 433, 5000, 0, 7),
        (1700000006, 410, 5001, 0, 7),
    ]
    assert all(wire.verify(x, KEY) for x in (data, hello, done))
    assert not wire.verify(data, bytes(32))
    assert (hello.seq, hello.cursor, hello.head, hello.epoch, hello.nonce, hello.cmd_mark) == (1, 40, 43, 9, 5, 0)
    assert (done.seq, done.cmd_id, done.status) == (2, 99, 0)
    assert ka.type == wire.T_KEEPALIVE and len(outs[3]) == wire.KA_LEN == 9
    assert (ka.device_id, ka.seq) == (DEV, 3)  # the device id, the seq's low byte
    # then the token: HMAC-SHA256(key, 0x12 | device id | seq)[:4], as CPython computes it
    token = hmac.new(KEY, b"\x12" + DEV.to_bytes(4, "big") + (3).to_bytes(4, "big"), sha256).digest()[:4]
    assert outs[3] == DEV.to_bytes(4, "big") + b"\x03" + token
    assert wire.build_keepalive(KEY, DEV, 3) == outs[3]
    assert wire.build_data(KEY, DEV, 7, 0, 41, 3, 0, data.payload, epoch=9) == outs[0]


def test_device_rejects_and_counts_everything_but_fresh_authentic_replies(mpy):
    rt = (wire.CMD_REALTIME, 5, (600).to_bytes(2, "big"))
    good = wire.build_reply(KEY, DEV, 7, 1000, echo=0, first=41, count=3, commands=[rt], nonce=5)
    good2 = wire.build_reply(KEY, DEV, 7, 1001, echo=3, nonce=5)
    refuse = wire.build_refuse(KEY, DEV, 7, 1008, 1, wire.R_STALE, 7777, 99, nonce=5)
    forged = bytearray(good)
    forged[-1] ^= 1
    rng = random.Random(1)
    replies = [
        good,  # accepted
        good,  # replay
        bytes(forged),  # tag
        wire.build_reply(bytes(32), DEV, 7, 1002, echo=1, nonce=5),  # wrong key: tag
        wire.build_reply(KEY, DEV + 1, 7, 1003, echo=1, nonce=5),  # other device
        wire.build_reply(KEY, DEV, 8, 1004, echo=1, nonce=5),  # other key id
        wire.build_reply(KEY, DEV, 7, 1005, echo=777, nonce=5),  # answers nothing we sent
        good[:20],  # truncated
        good[:-1],  # truncated tag: tag
        good + bytes(wire.MAX_DGRAM),  # oversized
        b"",  # empty
        wire.build_data(KEY, DEV, 7, 1006, 1, 1, 0, b"\x01" + bytes(8)),  # reflected device type
        wire.seal(KEY, wire.header(wire.T_REPLY, DEV, 7, 1007) + (1).to_bytes(4, "big") + bytes(6) + b"\x01\x00", 5),
        good2,  # accepted (echo of the keep-alive)
        wire.build_reply(KEY, DEV, 7, 1009, echo=2, nonce=6),  # for another boot (nonce): tag
        refuse,  # accepted: a refusal, (reason, min_seq)
        *(rng.randbytes(rng.randrange(1, 1300)) for _ in range(200)),  # random
    ]
    _, ins, counts = _device(mpy, replies)
    assert ins[0] == "True (41, 3) [(1, 5, b'\\x02X')]"
    assert ins[13] == "True (0, 0) []"  # no ACK, nothing to do: a liveness answer
    assert ins[15] == "False (1, 7777) []"
    accepted = [i for i, x in enumerate(ins) if x.startswith("True")]
    assert accepted == [0, 13], accepted
    short, long_, typ, device, tag, echo, replay, body = counts
    # (a random datagram starting 0x18 counts as "device" or "tag")
    assert replay == 1 and echo == 1 and body == 1 and device >= 2
    assert long_ >= 1 and short >= 2 and tag >= 4 and typ >= 1
    assert sum(counts) == len(replies) - 3


def test_replay_window():
    w = wire.Window()
    for s in (5, 3, 9, 70, 8):
        assert w.fresh(s)
        w.accept(s)
    assert not w.fresh(9) and not w.fresh(70) and not w.fresh(5)  # 5 is 65 below 70: too old
    assert w.fresh(69) and w.fresh(71)
