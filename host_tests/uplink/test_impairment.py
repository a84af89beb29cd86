"""Every stored reading reaches the collector exactly once, whatever the network and the power do.

The device (firmware uplink on the Unix port, accelerated clock) talks to the
real collector (SQLite) through netimpair proxies with 30% loss each way,
duplication and reordering, and a first endpoint that is dead (failover).
It reboots between phases, three times by a power cut at a random moment
(the process is killed), the network is down for six hours across two
reboots, and the final phase drains. The oracle is the device's own
store, dumped at the end: the collector must hold exactly those readings.
"""

from __future__ import annotations

import random

import pytest
from harness import DEV, Net, crash_device, free_udp_port, run_device

SPEED = 600
T0 = 1_700_000_000


@pytest.mark.slow
def test_exactly_once_under_loss_dup_reorder_outage_and_reboots(tmp_path):
    impair = dict(loss=0.3, dup=0.15, reorder=0.2, reorder_delay=20, speed=SPEED, seed=7)
    net = Net(tmp_path / "c.db", n_endpoints=2, impair=impair)
    try:
        dead = free_udp_port()
        eps = f"localhost:{dead}," + net.endpoints()
        state = tmp_path / "dev"
        t = T0
        # (device seconds, network down?, power cut?) per boot; the outage spans
        # boots 2 to 4. A power cut kills the process at a random moment
        # (SIGKILL): whatever was in RAM, in flight or half-written is cut off.
        rng = random.Random(11)
        plan = [(7200, False, False), (5400, True, True), (10800, True, False), (5400, True, True), (5400, False, True)]
        for secs, down, cut in plan:
            net.set_down(down)
            env = {"IHD_CLOCK": f"utc={t},speed={SPEED}", "UPL_RUN_S": secs, "UPL_EPS": eps, "UPL_MAXAGE": 1800}
            if cut:
                crash_device(state, env, after_s=rng.uniform(0.3, 0.9) * secs / SPEED)
            else:
                run_device(state, env)
            t += secs + 5
        net.set_down(False)
        st, stored = run_device(
            state,
            {"IHD_CLOCK": f"utc={t},speed={SPEED}", "UPL_RUN_S": 60, "UPL_EPS": eps, "UPL_DRAIN": 1, "UPL_DUMP": 1},
        )
        got = net.readings()
        assert len(stored) > 8000, len(stored)
        assert [r[0] for r in stored] == list(range(stored[0][0], stored[0][0] + len(stored)))
        missing = sorted(set(stored) - set(got))
        extra = sorted(set(got) - set(stored))
        assert not missing, f"{len(missing)} readings never reached the collector, first {missing[:3]}"
        assert not extra, f"{len(extra)} readings at the collector that the device never stored, first {extra[:3]}"
        assert len(got) == len(stored)  # the primary key makes each one unique: exactly once
        stats = net.call(net.col.stats)
        dev = stats["devices"][DEV]
        # The impairments really happened and were survived.
        counts = [imp.counts for imp in net.imps]
        assert sum(c["lost"] for c in counts) > 20, counts
        assert sum(c["duplicated"] for c in counts) > 5, counts
        assert sum(c["reordered"] for c in counts) > 5, counts
        assert sum(c["outage_drops"] for c in counts) > 50, counts
        assert dev["duplicate_readings"] > 0, dev
        assert st["failovers"] >= 1 or st["endpoint"] != f"localhost:{dead}", st
        # Replayed copies (duplicates by the network) were refused, not double-counted.
        assert stats["rejects"].get("replay", 0) > 0, stats["rejects"]
    finally:
        net.stop()
