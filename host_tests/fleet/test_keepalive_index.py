"""The collector's keep-alive index (tools/uplink_wire.py KeepaliveIndex), refreshed
incrementally, always holds exactly the tokens of a fresh build: seqs top+1 ..
top+KA_AHEAD of each device under its current key."""

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import uplink_wire as wire  # noqa: E402


def test_incremental_refresh_equals_a_fresh_build():
    rng = random.Random(3)
    keys = {d: bytes([d]) * 32 for d in (1, 2, 3)}
    tops = dict.fromkeys(keys, -1)
    idx = wire.KeepaliveIndex()
    for step in range(600):
        d = rng.choice(list(keys))
        r = rng.random()
        if r < 0.6:
            tops[d] += rng.choice((0, 1, 1, 2, 5, 63, 64, 65, 200))  # accepted datagrams
        elif r < 0.7:
            tops[d] = rng.choice((-1, 5, max(-1, tops[d] - 3)))  # a restarted window, a lower top
        elif r < 0.75:
            keys[d] = rng.randbytes(32)  # re-provisioned
        elif r < 0.8:
            tops[d] = wire.SEQ_LIMIT - rng.randrange(1, 80)  # near the end of seqs
        tops[d] = min(tops[d], wire.SEQ_LIMIT - 1)  # the window never holds more (u32 seqs)
        idx.refresh(d, keys[d], tops[d])
        fresh = wire.KeepaliveIndex()
        for e in keys:
            if e in idx._tokens:
                fresh.refresh(e, idx._tokens[e][0], idx._tokens[e][1] - 1)
        assert idx._index == fresh._index, step
        lo = tops[d] + 1
        if lo < wire.SEQ_LIMIT:
            assert idx.lookup(wire.keepalive_token(keys[d], d, lo)) == (d, lo)
        if lo + wire.KA_AHEAD < wire.SEQ_LIMIT:
            assert idx.lookup(wire.keepalive_token(keys[d], d, lo + wire.KA_AHEAD)) is None
