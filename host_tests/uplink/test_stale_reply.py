"""A reply from an earlier boot is refused even when the device's datagram
sequence numbers repeat (a sequence file lost or restored from an old copy):
replies are bound to the boot that asked (docs/uplink.md, "Identity")."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
from ihd.collector import ingest as colmod  # noqa: E402

KEY = bytes(range(32))
DEV = 4097

BOOT = """
import sys, binascii, hal
from store import Store
from uplink.uplink import Uplink
d = hal.state_dir()
with open(d + "/useq", "w") as f:
    f.write("4096")  # the same sequence file content at every boot
st = Store(hal.partition("store"), clock=hal.clock)
up = Uplink(st, DEV, 0, KEY, [("127.0.0.1", 9)], seq_file=d + "/useq")
n, seq = up.session.hello(up.ctl, 0, 0)
print("hello", seq, binascii.hexlify(bytes(up.ctl[:n])).decode())
for line in sys.stdin:
    up.on_datagram(bytearray(binascii.unhexlify(line.strip())))
s = up.status
print("verdict", s.last_ack_ticks is not None, s.realtime, s.commands, s.rejected())
"""


def _boot(mpy, state, replies=()):
    code = BOOT.replace("DEV", str(DEV)).replace("KEY", repr(KEY))
    out = mpy.run(code, heap="256k", state_dir=state, input="".join(r.hex() + "\n" for r in replies).encode())
    lines = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    return lines


def test_reply_from_an_earlier_boot_is_rejected(mpy, tmp_path):
    col = colmod.Collector(tmp_path / "c.db")
    col.add_device(DEV, KEY)
    col.request_realtime(DEV, 600)
    state = tmp_path / "dev"
    b1 = _boot(mpy, state)
    seq1, hello1 = b1["hello"].split()
    replies = col.handle(bytes.fromhex(hello1), ("127.0.0.1", 5000))
    assert replies, "the collector did not answer the first boot"
    # the next boot reuses the sequence numbers; someone replays the old reply
    b2 = _boot(mpy, state, replies)
    # the same numbers again: the same file, and the clock floor under them
    # (seconds since an epoch) moved only by the time between the two boots
    assert 0 <= int(b2["hello"].split()[0]) - int(seq1) <= 5, (seq1, b2["hello"])
    acked, realtime, commands, rejected = b2["verdict"].split()
    assert (acked, realtime, commands) == ("False", "False", "0"), (
        f"a reply to boot 1 was accepted in boot 2: heard={acked} realtime={realtime} commands={commands}"
    )
    assert int(rejected) == len(replies)
