"""Endpoint failover: host names and addresses, switched on repeated failure.

The first endpoint does not resolve, the second resolves (a host name) but
nothing answers there, the third is the collector. The device must end up
on the third and deliver everything; then, with the collector's address
blackholed, it must move on (wrapping round to the others) and come back.
"""

from __future__ import annotations

import pytest
from harness import Net, free_udp_port, run_device

SPEED = 500
T0 = 1_700_000_000


@pytest.mark.slow
def test_failover_across_names_and_addresses(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=1))
    try:
        dead = free_udp_port()
        eps = f"no-such-host.invalid:4700,localhost:{dead}," + net.endpoints()
        state = tmp_path / "dev"
        env = {"IHD_CLOCK": f"utc={T0},speed={SPEED}", "UPL_RUN_S": 3 * 3600, "UPL_EPS": eps, "UPL_MAXAGE": 1800}
        st, _ = run_device(state, env)
        assert st["endpoint"] == net.endpoints(), st
        assert st["failovers"] >= 1 and st["batches_acked"] >= 4, st
        # the working endpoint goes dark for a while: the device tries the others, then returns
        net.set_down(True)
        env.update({"IHD_CLOCK": f"utc={T0 + 4 * 3600},speed={SPEED}", "UPL_RUN_S": 2 * 3600})
        st2, _ = run_device(state, env)
        assert st2["failovers"] >= 2, st2
        net.set_down(False)
        env.update({"IHD_CLOCK": f"utc={T0 + 7 * 3600},speed={SPEED}", "UPL_RUN_S": 600, "UPL_DRAIN": 1, "UPL_DUMP": 1})
        st3, stored = run_device(state, env)
        assert st3["endpoint"] == net.endpoints(), st3
        assert net.readings() == stored
    finally:
        net.stop()
