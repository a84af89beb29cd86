"""The uplink's memory: a fixed footprint, and no growth over a simulated half day
of batches, ACKs, keep-alives and a lossy network (heap capped for the device)."""

from __future__ import annotations

import pytest
from harness import Net, run_device

SPEED = 1000


@pytest.mark.slow
def test_uplink_footprint_and_no_heap_growth(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(loss=0.2, dup=0.1, speed=SPEED, seed=2))
    try:
        env = {"IHD_CLOCK": f"utc=1700000000,speed={SPEED}", "UPL_RUN_S": 12 * 3600, "UPL_EPS": net.endpoints()}
        # 256k on the 64-bit Unix port, which also holds every module's bytecode in
        # the heap (on the ESP32 it stays in flash).
        st, _, out = run_device(tmp_path / "dev", env, heap="256k", raw=True)
    finally:
        net.stop()
    footprint = int(next(line.split()[1] for line in out.splitlines() if line.startswith("uplink_heap")))
    heap = [int(line.split()[1]) for line in out.splitlines() if line.startswith("heap ")]
    assert st["batches_acked"] >= 6, st
    # buffers: one datagram, the encoder's five streams, small state (64-bit objects)
    assert footprint < 16 * 1024, footprint
    assert len(heap) >= 10, heap
    first, last = max(heap[2:6]), max(heap[-4:])
    assert last - first < 4096, heap  # steady state: no growth from hour to hour
