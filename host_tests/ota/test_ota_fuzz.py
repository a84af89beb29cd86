"""Fuzz the streaming verifier on the Unix port: random corruptions of a
signed image, fed in random chunk sizes, must end in OK or a Reject with a
known reason code; never another exception (which would kill the update
task), never OK when a signed byte changed."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_ota_verify import EXPECTED  # noqa: E402

FUZZ = """
import sys, random, binascii
from ota.verify import Policy, Reject, Verifier
data = open(sys.argv[1], "rb").read()
signed_len = len(data) - 4096          # bytes covered by the signature
pol = Policy([binascii.unhexlify(sys.argv[2])], 9, "micropython", 3)
random.seed(int(sys.argv[3]))
buf = bytearray(len(data) + 64)

def run(b, n):
    mv = memoryview(b)[:n]
    v = Verifier(pol, 0x1F0000)
    i = 0
    try:
        while i < n:
            k = random.choice((1, 7, 64, 1000, 4096, 9000))
            v.feed(mv[i : i + k])
            i += k
        v.finish()
        return "OK"
    except Reject as e:
        return e.code()

for it in range(int(sys.argv[4])):
    buf[: len(data)] = data
    n = len(data)
    kind = it % 5
    where = -1
    if kind == 0:   # flip bits anywhere in the signed part or block 0
        where = random.randrange(signed_len + 1216)
        buf[where] ^= 1 << random.randrange(8)
    elif kind == 1:  # a header or segment-header field
        where = random.choice((0, 1, 12, 23, 24 + random.randrange(8), 40 + random.randrange(256)))
        buf[where] = random.randrange(256)
    elif kind == 2:  # truncation
        n = random.randrange(len(data))
    elif kind == 3:  # garbage run
        where = random.randrange(len(data) - 64)
        for j in range(where, where + 64):
            buf[j] = random.randrange(256)
    else:            # extension
        n = len(data) + random.randrange(1, 64)
    changed = bytes(buf[:n]) != data
    r = run(buf, n)
    print(kind, where, r, int(changed))
"""


def test_random_corruptions_are_rejected_with_known_reasons(mpy, tmp_path, keys, signed):
    p = tmp_path / "s.bin"
    p.write_bytes(signed)
    out = mpy.run(FUZZ, args=(p, keys.digest[keys.trusted], 12345, 400), heap="1m", timeout=600).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 400
    known = set(EXPECTED.values()) | {"bad-segment", "bad-segments", "no-image-hash", "no-app-desc", "bad-modulus"}
    seen = set()
    for line in lines:
        kind, where, result, changed = line.split()
        if result == "OK":
            # Only bytes no one signs may change: none here, as the mutations
            # above stay within the signed part and block 0.
            assert changed == "0", line
        else:
            assert re.fullmatch(r"[a-z0-9-]+", result) and result in known, line
            seen.add(result)
    assert {"checksum", "truncated", "trailing-data"} <= seen, seen
