"""Commands run exactly once (issue 13, item 4): with more pending than one
reply carries or than the device used to remember, and across a reboot in the
middle of a command. The device logs each command it runs ("cmd KIND HEX");
the oracle counts those lines across every boot."""

from __future__ import annotations

from collections import Counter

from harness import DEV, Net, boot_until_exit

SPEED = 500
T0 = 1_767_225_600
KIND = 7


def _env(net, t, secs=900, **extra):
    env = {"IHD_CLOCK": f"utc={t},speed={SPEED}", "UPL_RUN_S": secs, "UPL_EPS": net.endpoints(), "UPL_KA": 60}
    env.update(extra)
    return env


def _runs(*outs):
    return Counter(line.split()[2] for out in outs for line in out.splitlines() if line.startswith(f"cmd {KIND} "))


def _queue(net, n):
    return [net.call(net.col.queue_command, DEV, KIND, bytes([i])) for i in range(n)]


def _done(net):
    return net.call(lambda: net.col.db.execute("SELECT cmd_id, done IS NOT NULL, status FROM commands").fetchall())


def test_many_pending_commands_run_once(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=1))
    try:
        _queue(net, 20)
        out = boot_until_exit(tmp_path / "dev", _env(net, T0))
        runs = _runs(out)
        assert sorted(runs) == [bytes([i]).hex() for i in range(20)], runs
        twice = {k: v for k, v in runs.items() if v != 1}
        assert not twice, f"commands run more than once: {twice}"
        assert all(d for _, d, _ in _done(net)), _done(net)
    finally:
        net.stop()


def test_commands_run_once_across_a_reboot(tmp_path):
    net = Net(tmp_path / "c.db", impair=dict(speed=SPEED, seed=2))
    try:
        ids = _queue(net, 12)
        state = tmp_path / "dev"
        # power cut inside the handler of the 6th command: its DONE never leaves
        out1 = boot_until_exit(state, _env(net, T0, UPL_CMD_EXIT="05"))
        assert "cmd 7 05" in out1, out1[-2000:]
        out2 = boot_until_exit(state, _env(net, T0 + 3600))
        runs = _runs(out1, out2)
        twice = {k: v for k, v in runs.items() if v != 1}
        assert not twice, f"commands run more than once across the reboot: {twice}"
        assert sorted(runs) == [bytes([i]).hex() for i in range(12)], runs
        done = {c: (d, s) for c, d, s in _done(net)}
        assert all(done[c][0] for c in ids), done
        # the interrupted one is reported as such, not as done
        assert done[ids[5]][1] != 0, done[ids[5]]
    finally:
        net.stop()
