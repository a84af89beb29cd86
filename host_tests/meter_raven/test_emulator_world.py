"""The co-processor emulator keeps its meter across firmware reconnects.

A real meter's summation never restarts, and its clock runs on while the
in-home display reboots. The firmware's link (host_tests/meter_raven/
run_link.py on the Unix port) connects, is killed (a reboot), and connects
again to the same emulator run; then a second emulator run carries on from
--meter-state. Oracle: ihd.emulators.loadprofile.Meter integrated from the start of
the first run to each report's time gives the register the report must
carry (1 Wh floors).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host_tests"))
sys.path.insert(0, str(ROOT / "tools"))
import mpy as mpylib  # noqa: E402
from ihd.emulators.loadprofile import LoadProfile, Meter  # noqa: E402

START = 1767225600
SPEED = 200


def emulator(protocol: str, log: Path, start: int, duration: int, *extra: str):
    p = subprocess.Popen(
        [sys.executable, "-m", "ihd.emulators", "serve", "--protocol", protocol,
         "--port", "0", "--speed", str(SPEED), "--start", str(start), "--duration", str(duration),
         "--log", str(log), "--seed", "5", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    port = int(p.stdout.readline().strip().rsplit(":", 1)[1])
    return p, port


def firmware(protocol: str, port: int, tmp_path: Path, real_s: float | None):
    # run_link.py until the emulator ends, or killed after real_s (a reboot)
    env = mpylib.env_for(
        tmp_path / "state", {"IHD_UART": f"tcp:127.0.0.1:{port}", "IHD_CLOCK": f"utc={START},speed={SPEED}"}
    )
    cmd = mpylib.command(ROOT / "host_tests" / "meter_raven" / "run_link.py", "512k", (protocol,))
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if real_s is not None:
        time.sleep(real_s)
        p.kill()
    out, _ = p.communicate(timeout=120)
    return [tuple(int(x) for x in ln.split()[1:]) for ln in out.splitlines() if ln.startswith("R ")]


def registers(events, start: int) -> list[tuple[int, int, int]]:
    """(t, logged delivered_wh, oracle delivered_wh) for each summation report."""
    m = Meter(LoadProfile(5, 0), start)
    out = []
    for e in events:
        if e["kind"] == "summation":
            m.advance_to(e["t"])
            out.append((e["t"], e["delivered_wh"], m.delivered_ws // 3600))
    return out


@pytest.mark.parametrize("protocol", ["raven", "ezsp"])
def test_meter_carries_on_across_reconnects_and_runs(tmp_path, protocol):
    log = tmp_path / "emu.jsonl"
    state = tmp_path / "meter.json"
    emu, port = emulator(protocol, log, START, 1800, "--meter-state", str(state))
    try:
        first = firmware(protocol, port, tmp_path, 3.0)  # 600 simulated s, then a "reboot"
        second = firmware(protocol, port, tmp_path, None)  # until the run ends
    finally:
        emu.wait(60)
    events = [json.loads(x) for x in log.read_text().splitlines()]
    kinds = [e["kind"] for e in events]
    assert "reconnect" in kinds and kinds[-1] == "end" and events[-1]["connections"] == 2
    regs = registers(events, START)
    assert len(regs) > 20
    assert all(got == want for _, got, want in regs), [r for r in regs if r[1] != r[2]][:3]
    # both firmware runs read summations, the second never below the first
    s1 = [r[2] for r in first if r[4] & 4]
    s2 = [r[2] for r in second if r[4] & 4]
    assert s1 and s2 and min(s2) >= max(s1) > 0
    # a second emulator run starts where the first one's meter stood
    log2 = tmp_path / "emu2.jsonl"
    end1 = json.loads(state.read_text())["t"]
    emu, port = emulator(protocol, log2, end1 + 60, 300, "--meter-state", str(state))
    try:
        firmware(protocol, port, tmp_path, None)
    finally:
        emu.wait(60)
    events2 = [json.loads(x) for x in log2.read_text().splitlines()]
    regs2 = registers(events + events2, START)
    assert len(regs2) > len(regs) and all(got == want for _, got, want in regs2)


def test_a_restart_across_midnight_keeps_the_meters_days(tmp_path):
    # The simulator restarts the emulator at every power cut, carrying the
    # meter over in --meter-state. A restart after a local midnight must note
    # that midnight's register, or the meter's history attributes lose the
    # day before it and the day after (a soak showed both as "—").
    import argparse

    from ihd.emulators.coproc import World
    from ihd.emulators.meter_history import MeterHistory

    state = tmp_path / "meter.json"

    def world(start):
        a = argparse.Namespace(
            start=start, speed=SPEED, duration=600, log=None, record=None, reset_at=[], silence_at=[],
            seed=5, solar=0, meter_days=1, meter_state=str(state),
        )  # fmt: skip
        w = World(a)
        w.start()
        return w

    w = world(START + 23 * 3600 + 50 * 60)  # 23:50 on 1 January
    w.save_meter()
    w = world(START + 86400 + 40 * 60)  # back at 00:40 on the 2nd
    h = MeterHistory(w.meter)
    got = h.periods(START + 86400 + 40 * 60)
    # yesterday (0x0403) known, and equal to an emulator that never stopped
    ref = Meter(LoadProfile(5, 0), START - 86400)
    rh = MeterHistory(ref)
    rh.advance_to(START + 86400 + 40 * 60)
    ref.advance_to(START + 86400 + 40 * 60)
    want = rh.periods(START + 86400 + 40 * 60)
    assert got[0x0403] is not None and got[0x0403] == want[0x0403], (got[0x0403], want[0x0403])
    assert got[0x0401] == want[0x0401]
