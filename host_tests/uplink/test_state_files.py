"""The uplink's own state files (uplink_seq, uplink_epoch, uplink_cmds) may hold
any bytes after a power cut or flash damage: reading them never raises, and
whatever they say stays within bounds (a damaged file is treated as lost)."""

from __future__ import annotations

import random

SNIPPET = """
import sys, binascii, hal
from uplink.session import SeqSource, SEQ_MAX
from uplink.state import Epoch, CmdLog
d = hal.state_dir()
n = 0
for line in sys.stdin:
    data = binascii.unhexlify(line.strip())
    for name in ("s", "e", "c"):
        with open(d + "/" + name, "wb") as f:
            f.write(data)
    s = SeqSource(d + "/s", None)
    assert 0 <= s.seq < SEQ_MAX, s.seq
    e = Epoch(d + "/e", 1000)
    assert e.value() and 0 <= e.hw <= 1000, (e.value(), e.hw)
    c = CmdLog(d + "/c")
    assert 0 <= c.mark < (1 << 30), c.mark
    c.begin(c.mark + 1)
    c.end(c.mark, 0)
    assert CmdLog(d + "/c").done_before(c.mark) == 0
    n += 1
print("ok", n)
"""


def _cases(rng: random.Random) -> list[bytes]:
    good = [b"4096", b"12 34 500\n", b"7 0 5 0 6 1\n", b"4294967200", b"1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"]
    out = [b"", b"\xff" * 40, b"-5", b"9" * 400, b"1e9", b"0x10", b"\xc3\x28", b"1 2", b"65536 1 3", b"0 0 0"]
    for _ in range(400):
        k = rng.randrange(4)
        if k == 0:
            out.append(rng.randbytes(rng.randrange(0, 64)))
        elif k == 1:
            b = bytearray(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            out.append(bytes(b))
        elif k == 2:
            out.append(rng.choice(good)[: rng.randrange(12)])
        else:
            out.append(
                " ".join(
                    str(rng.choice((-1, 0, 1, 2**30, 2**31, 2**32, rng.randrange(10**6))))
                    for _ in range(rng.randrange(1, 8))
                ).encode()
            )
    return out


def test_uplink_state_files_never_crash(mpy):
    cases = _cases(random.Random(13))
    r = mpy.run(SNIPPET, heap="256k", input="".join(c.hex() + "\n" for c in cases).encode(), timeout=600)
    assert r.stdout.split() == ["ok", str(len(cases))], r.stdout[-2000:]
