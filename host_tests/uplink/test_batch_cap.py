"""A meter so steady that its readings cost ~1 bit each: the firmware ends a batch
at MAX_BATCH readings, the most the collector takes in one DATA (docs/uplink.md,
"Persistence and limits"); before the cap it sent one batch of all 5,000, which
the collector refuses (too_many_readings), and the device never drained."""

from __future__ import annotations

import harness
from harness import Net, run_device

MAX_READINGS = harness.collector_mod.MAX_READINGS

T0 = 1_700_000_000


def test_a_steady_meter_sends_at_most_max_readings_a_batch(tmp_path):
    n = 5000
    feed = tmp_path / "steady.csv"
    rows = "".join(f"{T0 + i},0,100,0,7\n" for i in range(n))
    feed.write_text("utc_s,demand_w,delivered_wh,received_wh,flags\n" + rows)
    net = Net(tmp_path / "c.db")
    try:
        env = {"IHD_CLOCK": f"utc={T0},speed=1000", "UPL_RUN_S": n + 60, "UPL_CSV": feed, "UPL_DRAIN": 1}
        env["UPL_EPS"] = net.endpoints()
        env.update({"UPL_DUMP": 1, "UPL_DRAIN_S": 600})
        st, stored = run_device(tmp_path / "dev", env)
        assert len(stored) == n and net.readings() == stored, st
        s = net.call(net.col.stats)
        assert "too_many_readings" not in s["rejects"], s["rejects"]
        data = s["devices"][next(iter(s["devices"]))]["traffic"]["data"]["datagrams"]
        assert data >= -(-n // MAX_READINGS), data
    finally:
        net.stop()
