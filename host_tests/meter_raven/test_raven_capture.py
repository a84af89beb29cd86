"""ihd capture decode: the firmware's parsers over raw captures, as CSV."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from ravenlib import ROOT, Stick

START = 1767225600


def decode(protocol: str, path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ihd.capture", "decode", "--protocol", protocol, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_raven_capture_to_csv(tmp_path):
    st = Stick("emu2", "\r\n", 1, 1000, 1, 1000)
    data = (
        b"\x00\xffnoise"
        + st.time(START)
        + st.demand(START + 5, 1234)
        + st.demand(START + 9, -560)  # exporting: 24-bit two's complement
        + st.summation(START + 10, 4321, 12)
        + st.demand(START + 12, 1)[:60]  # cut short by a stick reset
        + st.connection_status("Initializing")
        + st.demand(START + 15, 7).replace(b"0x000007", b"0x00g007")  # damaged value
        + st.demand(None, 80)  # meter without time
        + st.time(None)
    )
    f = tmp_path / "raven.bin"
    f.write_bytes(data)
    r = decode("raven", f)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows == [
        ["utc_s", "kind", "value", "unit"],
        [str(START), "time", str(START), "s"],
        [str(START + 5), "demand", "1234", "W"],
        [str(START + 9), "demand", "-560", "W"],
        [str(START + 10), "summation_delivered", "4321", "Wh"],
        [str(START + 10), "summation_received", "12", "Wh"],
        ["", "demand", "80", "W"],
    ]
    err = r.stderr.splitlines()
    # the cut fragment ends inside "<MeterMacId": the next '<' shows it
    assert "capture: bad frame (InstantaneousDemand): '<' inside tag" in err
    assert "capture: bad frame (InstantaneousDemand): bad number" in err
    assert "capture: meter time invalid (0xFFFFFFFF)" in err
    assert err[-1] == "capture: 7 frames used, 2 rejected"


def test_missing_file_is_a_clear_error(tmp_path):
    r = decode("raven", tmp_path / "nope.bin")
    assert r.returncode == 1 and "no such file" in r.stderr and r.stdout == ""


@pytest.mark.slow
def test_ezsp_capture_from_the_emulator(mpy, tmp_path):
    # Record what the EZSP emulator sends while the firmware's link runs,
    # then decode the capture: every demand the meter reported appears.
    cap, log = tmp_path / "ezsp.bin", tmp_path / "emu.jsonl"
    emu = subprocess.Popen(
        [sys.executable, "-m", "ihd.emulators", "serve", "--protocol", "ezsp", "--port", "0",
         "--speed", "60", "--duration", "300", "--start", str(START), "--record", str(cap), "--log", str(log)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        port = int(emu.stdout.readline().strip().rsplit(":", 1)[1])
        mpy.run(
            path=ROOT / "host_tests" / "meter_raven" / "run_link.py",
            args=("ezsp",),
            heap="256k",
            env={"IHD_UART": f"tcp:127.0.0.1:{port}", "IHD_CLOCK": f"utc={START},speed=60"},
            timeout=120,
        )
    finally:
        emu.wait(60)
    r = decode("ezsp", cap)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    got = [int(x["value"]) for x in rows if x["kind"] == "demand"]
    want = [e["demand_w"] for e in map(json.loads, log.read_text().splitlines()) if e["kind"] == "demand"]
    assert len(want) > 20
    i = 0
    for w in want:  # in order; polled values may come in between
        while i < len(got) and got[i] != w:
            i += 1
        assert i < len(got), f"reported demand {w} not in the decoded capture"
        i += 1
    assert any(x["kind"] == "time" for x in rows)
    assert r.stderr.splitlines()[-1].endswith(" 0 rejected")
