"""Identity across state loss (issue 13, item 1): a reading's number means the same
thing to the device and the collector whatever state the device loses, and the
device is never mute.

Each scenario boots the real firmware uplink (host_tests/uplink/device.py)
against the real collector, takes some of the device's state away between two
boots, and then checks by VALUE that every reading the device committed after
the loss is at the collector under the device's current epoch, that what the
collector held from before is untouched, and that the device was heard again
(first authentic reply) within one minute of its boot.
"""

from __future__ import annotations

import shutil

from harness import DEV, KEY, Net, run_device

SPEED = 500
T0 = 1_767_225_600  # 2026: the clock floor of the datagram seq is ~67 million
KEY_B = bytes(range(100, 132))


def _boot(net, state, t, secs=1800, invalid=False, key=KEY, extra=None):
    clock = f"utc={t},speed={SPEED}" + (",invalid" if invalid else "")
    env = {"IHD_CLOCK": clock, "UPL_RUN_S": secs, "UPL_EPS": net.endpoints(), "UPL_MAXAGE": 600}
    env.update({"UPL_DRAIN": 1, "UPL_DRAIN_S": 600, "UPL_DUMP": 1, **(extra or {})})
    st, rows, out = run_device(state, env, key=key, raw=True)
    heard = [int(x.split()[1]) for x in out.splitlines() if x.startswith("heard_s ")]
    st["n03"] = [x.split()[1] for x in out.splitlines() if x.startswith("fault ") and x.endswith(" 22")]
    return st, rows, (heard[0] if heard else None)


def _check(net, st, rows, heard, before=None):
    """Every committed reading is at the collector, same value, under the device's epoch;
    `before` (epoch, rows) of an earlier boot is still there too."""
    held = net.readings_by_epoch()
    mine = held.get(st.get("epoch", 0), {})
    lost = [r for r in rows if mine.get(r[0]) != r[1:]]
    altered = [(r, mine[r[0]]) for r in lost if r[0] in mine]
    assert rows, "the device committed nothing"
    assert not lost, (
        f"{len(lost)} of {len(rows)} committed readings not at the collector with their value "
        f"({len(altered)} held with another value, first {altered[:2]}); first lost {lost[:2]}"
    )
    if before is not None:
        ep, old = before
        kept = held.get(ep, {})
        gone = [r for r in old if kept.get(r[0]) != r[1:]]
        assert not gone, f"{len(gone)} readings of the earlier boot changed or vanished, first {gone[:2]}"
    assert heard is not None and heard <= 60, f"device heard after {heard} s (None: never in this boot)"
    errs = net.call(net.col.stats)["rejects"].get("internal_error", 0)
    assert errs == 0, f"{errs} internal errors at the collector"


def test_wiped_store(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=1))
    try:
        state = tmp_path / "dev"
        st1, rows1, h1 = _boot(net, state, T0)
        _check(net, st1, rows1, h1)
        (state / "flash.bin").unlink()  # a new board, a factory reset, an erased store
        st2, rows2, h2 = _boot(net, state, T0 + 4 * 3600)
        assert rows2[0][0] <= rows1[-1][0], "the wiped store did not number from the start again"
        _check(net, st2, rows2, h2, before=(st1.get("epoch", 0), rows1))
    finally:
        net.stop()


def test_lost_seq_file_at_power_on_with_invalid_clock(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=2))
    try:
        state = tmp_path / "dev"
        st1, rows1, h1 = _boot(net, state, T0)
        _check(net, st1, rows1, h1)
        (state / "uplink_seq").unlink()
        st2, rows2, h2 = _boot(net, state, T0 + 4 * 3600, invalid=True)
        _check(net, st2, rows2, h2, before=(st1.get("epoch", 0), rows1))
        # refused (authenticated), said so (N03), recovered by itself and cleared it
        assert st2["refusals"] >= 1 and st2["n03"][:2] == ["set", "clear"] and st2["n03"][-1] == "clear", st2
        assert st1["n03"] == [], st1
    finally:
        net.stop()


def test_reprovisioned_key_after_factory_reset(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=3))
    try:
        state = tmp_path / "dev"
        st1, rows1, h1 = _boot(net, state, T0)
        _check(net, st1, rows1, h1)
        shutil.rmtree(state)  # factory reset: flash and every state file gone
        net.call(net.col.add_device, DEV, KEY_B)  # the back office registers the new key
        st2, rows2, h2 = _boot(net, state, T0 + 4 * 3600, invalid=True, key=KEY_B)
        _check(net, st2, rows2, h2, before=(st1.get("epoch", 0), rows1))
    finally:
        net.stop()


def test_seq_file_near_2_32(tmp_path):
    # A damaged sequence file says 2^32 - 96: the device must neither wrap nor
    # cost the collector an internal error, and must be heard.
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=4))
    try:
        state = tmp_path / "dev"
        state.mkdir()
        (state / "uplink_seq").write_text(str(2**32 - 96))
        st1, rows1, h1 = _boot(net, state, T0, invalid=True)
        _check(net, st1, rows1, h1)
        st2, rows2, h2 = _boot(net, state, T0 + 4 * 3600)
        _check(net, st2, rows2, h2)
    finally:
        net.stop()


def test_collector_window_near_2_32(tmp_path):
    # The collector's window for this device is at 2^32 - 50 (an earlier
    # damaged boot got there): no seq the device can use is above it, so the
    # device must get the window reset, by an authenticated exchange.
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=5))
    try:
        state = tmp_path / "dev"

        def high():
            net.col.db.execute("UPDATE devices SET seq_top=? WHERE device_id=?", (2**32 - 50, DEV))

        net.call(high)
        st1, rows1, h1 = _boot(net, state, T0)
        _check(net, st1, rows1, h1)
        assert st1["refusals"] >= 1 and st1["n03"][-1:] == ["clear"], st1
        assert net.call(lambda: net.col.window(DEV).top) < 2**30
    finally:
        net.stop()


def test_conflict_refusal_catches_what_the_epoch_file_missed(tmp_path):
    # The store is wiped AND the epoch file was damaged into saying nothing was
    # sent (hw 0): the device keeps its epoch and numbers readings again from 1.
    # The collector must refuse the clash (never ACK readings it did not
    # store), and the device must take a new epoch by itself and lose nothing.
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=6))
    try:
        state = tmp_path / "dev"
        st1, rows1, h1 = _boot(net, state, T0)
        _check(net, st1, rows1, h1)
        (state / "flash.bin").unlink()
        ep = (state / "uplink_epoch").read_text().split()
        (state / "uplink_epoch").write_text(f"{ep[0]} {ep[1]} 0\n")
        st2, rows2, h2 = _boot(net, state, T0 + 4 * 3600)
        _check(net, st2, rows2, h2, before=(st1["epoch"], rows1))
        assert st2["epoch"] != st1["epoch"] and st2["refusals"] >= 1, st2
        assert st2["n03"][:1] == ["set"] and st2["n03"][-1] == "clear", st2
        assert net.call(net.col.stats)["rejects"]["conflict"] >= 1
    finally:
        net.stop()
