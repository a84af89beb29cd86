"""tools/ihd/emulators/loadprofile.py and ihd emulator: realistic, deterministic
households; replay of raw captures; the pty transport."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import subprocess
import sys
import time

import pytest
from ravenlib import DAY, ROOT, LoadProfile, Meter, aioraven_elements

from mpy import link_heap

START = 1767225600  # 2026-01-01T00:00:00Z, a midnight


def test_profile_is_deterministic_and_household_like():
    a, b, c = LoadProfile(4), LoadProfile(4), LoadProfile(5)
    day = [a.power_w(START + s) for s in range(DAY)]
    assert day == [b.power_w(START + s) for s in range(DAY)]
    assert day != [c.power_w(START + s) for s in range(DAY)]
    kwh = sum(day) / 3.6e6
    assert 3 < kwh < 25, kwh  # a household day
    assert 70 < min(day) < 200  # standby never off, never large
    night = day[2 * 3600 : 4 * 3600]
    assert max(night) < 700  # no kettles at 2 am, fridge and base only
    # fridge cycles: the compressor's 85 W step switches on tens of times a day
    ons = sum(1 for s in range(1, 4 * 3600) if day[s] - day[s - 1] > 200)
    assert 5 <= ons <= 20
    # the big loads appear over a week
    week = LoadProfile(4)
    peaks = [max(week.power_w(START + d * DAY + s) for s in range(0, DAY, 10)) for d in range(7)]
    assert max(peaks) > 8500  # an electric shower
    assert sum(p > 2500 for p in peaks) >= 5  # kettles most days


def test_solar_exports_at_midday_only():
    p = LoadProfile(2, solar_w=4000)
    noon = [p.power_w(START + 12 * 3600 + s) for s in range(0, 3600, 10)]
    night = [p.power_w(START + 1 * 3600 + s) for s in range(0, 3600, 10)]
    assert min(noon) < -1000 and min(night) > 0


def test_meter_integrates_the_profile():
    p = LoadProfile(3, solar_w=5000)
    m = Meter(p, START + 11 * 3600)
    m.advance_to(START + 12 * 3600)
    want_in = sum(max(p.power_w(START + 11 * 3600 + s), 0) for s in range(3600))
    want_out = sum(max(-p.power_w(START + 11 * 3600 + s), 0) for s in range(3600))
    assert (m.delivered_ws, m.received_ws) == (want_in, want_out) and want_out > 0


def _emulator(*args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ihd.emulators", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, proc.stdout.readline().strip()


def _read_all(port: int) -> bytes:
    s = socket.create_connection(("127.0.0.1", port))
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return data


def test_record_then_replay_gives_the_same_bytes_and_readings(mpy, tmp_path):
    cap = tmp_path / "cap.bin"
    proc, line = _emulator("--port", "0", "--speed", "400", "--duration", "600", "--record", str(cap), "--seed", "9")
    live = _read_all(int(line.rsplit(":", 1)[1]))
    proc.wait(30)
    assert live == cap.read_bytes() and len(live) > 20_000
    elements, _, errors = aioraven_elements(live)
    assert not errors and sum(t == "InstantaneousDemand" for t, _ in elements) > 50
    # replay to the firmware's link: it reads what ihd capture decodes
    proc, line = _emulator("--port", "0", "--speed", "50", "--replay", str(cap))
    out = mpy.run(
        path=ROOT / "host_tests" / "meter_raven" / "run_link.py",
        args=("raven",),
        heap=link_heap(),
        env={"IHD_UART": f"tcp:127.0.0.1:{line.rsplit(':', 1)[1]}", "IHD_CLOCK": f"utc={START}"},
        timeout=60,
    ).stdout
    proc.wait(30)
    demands = [int(ln.split()[2]) for ln in out.splitlines() if ln.startswith("R ") and int(ln.split()[5]) & 2]
    r = subprocess.run(
        [sys.executable, "-m", "ihd.capture", "decode", "--protocol", "raven", str(cap)],
        capture_output=True,
        text=True,
        check=True,
    )
    decoded = [int(x["value"]) for x in csv.DictReader(io.StringIO(r.stdout)) if x["kind"] == "demand"]
    assert demands == decoded and len(decoded) > 50


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pty")
def test_firmware_reads_the_emulator_over_a_pty(mpy, tmp_path):
    log = tmp_path / "emu.jsonl"
    proc, line = _emulator("--pty", "--speed", "100", "--duration", "300", "--log", str(log))
    assert line.startswith("listening on pty:/dev/")
    time.sleep(0.2)
    out = mpy.run(
        path=ROOT / "host_tests" / "meter_raven" / "run_link.py",
        args=("raven",),
        heap=link_heap(),
        env={"IHD_UART": line.split("pty:", 1)[1], "IHD_CLOCK": f"utc={START},speed=100"},
        timeout=60,
    ).stdout
    proc.wait(30)
    got = [int(ln.split()[2]) for ln in out.splitlines() if ln.startswith("R ") and int(ln.split()[5]) & 2]
    want = [e["demand_w"] for e in map(json.loads, log.read_text().splitlines()) if e["kind"] == "demand"]
    assert got == want and len(want) > 25
