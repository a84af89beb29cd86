"""A lost boot HELLO must not leave the device unreachable.

The collector learns a device's keep-alive tokens from its first authentic
datagram (a keep-alive is only a 4-byte token). If the HELLO a device sends
at boot is lost, its keep-alives are noise to the collector
(`bad_keepalive`) until a batch or a later HELLO gets through: no command,
no real-time request, can reach it meanwhile. The device must say HELLO
again, instead of a keep-alive, until one is answered.
"""

from __future__ import annotations

import threading
import time

from harness import DEV, Net, run_device

SPEED = 500
T0 = 1_767_225_600  # 2026: the seq floor (seconds since 2023-11-14) is far above 64


def test_lost_boot_hello_is_repeated_until_answered(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=1))
    try:
        net.set_down(True)  # the boot HELLO goes into the void
        # One reading a minute and batches only after 10 h: nothing but
        # HELLOs and keep-alives in this hour.
        env = {"IHD_CLOCK": f"utc={T0},speed={SPEED}", "UPL_EPS": net.endpoints(), "UPL_RUN_S": 3600}
        env.update({"UPL_INTERVAL": 60, "UPL_MAXAGE": 36000})
        result: list = []
        dev = threading.Thread(target=lambda: result.append(run_device(tmp_path / "dev", env)))
        dev.start()
        imp = net.imps[0]
        deadline = time.monotonic() + 60
        while imp.counts["outage_drops"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert imp.counts["outage_drops"] >= 1, "the device sent nothing"
        net.set_down(False)
        dev.join(120)
        st, _ = result[0]
        s = net.call(net.col.stats)
        traffic = s["devices"][DEV]["traffic"]
        assert s["rejects"].get("bad_keepalive", 0) == 0, (s["rejects"], traffic, st)
        assert traffic.get("hello", {}).get("datagrams", 0) >= 1, (s["rejects"], traffic, st)
        # after the answered HELLO, plain keep-alives again, all recognised
        assert traffic["keepalive"]["datagrams"] >= 10, traffic
        assert st["keepalives"] >= traffic["keepalive"]["datagrams"], st
    finally:
        net.stop()
