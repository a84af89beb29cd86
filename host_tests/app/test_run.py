"""`make run` on a fresh state: board defaults, no configuration, the whole device working."""

import json
import re
import signal
import subprocess
import time

from PIL import Image

import mpy as mpymod

ROOT = mpymod.ROOT


def test_sim_on_board_defaults_needs_no_configuration(tmp_path):
    out = tmp_path / "run"
    cmd = [*mpymod.sim_command(), "--board-defaults"]
    cmd += ["--hours", "1", "--speed", "300", "--realtime-at", "0.5:1500", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    log = (out / "firmware.log").read_text()
    assert r.returncode == 0, r.stderr[-2000:] + log[-2000:]
    assert not (out / "state" / "config.json").exists()
    assert "config: board defaults" in log
    s = json.loads((out / "summary.json").read_text())
    assert s["protocol"] == "ezsp"  # the board's co-processor
    # meter -> store -> uplink -> collector
    assert s["readings_committed"] > 300 and s["readings_lost"] == 0
    # everything committed before the final drain is at the collector, same values
    c = s["committed_vs_stored"]
    assert c["missing_at_collector"] == 0 and c["differ"] == 0 and c["compared"] > 300, c
    # the simulator's own shutdown raises no fault (it stopped the meter
    # before the drain: faults [10], M01, on the last screen of every clean run)
    assert s["faults"] == [], s["faults_raised"]
    assert r.stderr.rstrip().splitlines()[-1].startswith("sim: PASS: ended;"), r.stderr[-500:]
    assert s["live_readings"] > 0  # real-time mode on request
    # the status line shows it, and the heap against its budget
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("sim ")]
    assert any(re.search(r"\| REAL-TIME \d+ s left \|", ln) for ln in lines), lines[-3:]
    m = re.search(r"\| heap (\d+)k = code (\d+)k \+ data (\d+)k of (\d+)k \|", lines[-1])
    assert m and abs(int(m[1]) - int(m[2]) - int(m[3])) <= 1 and int(m[1]) < int(m[4]), lines[-1]
    # -> display: the last refresh rendered from the recorded SPI stream
    img = Image.open(out / "display.png")
    assert img.size in ((296, 128), (128, 296))
    assert img.convert("1").getextrema() == (0, 255)  # something is drawn
    assert s["display_partial_refreshes"] + s["display_full_refreshes"] >= 10


def test_ctrl_c_drains_in_order_and_reports_unsent_not_lost(tmp_path):
    # `make run` says Ctrl-C stops it: that must exit 0 with nothing lost
    # (before: exit 1, "readings_lost": 365 that were on flash, unsent).
    out = tmp_path / "run"
    cmd = [*mpymod.sim_command(), "--board-defaults", "--hours", "24", "--speed", "300", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        deadline = time.monotonic() + 300
        for line in p.stderr:
            m = re.search(r"committed (\d+)", line)
            if m and int(m.group(1)) > 200 or time.monotonic() > deadline:
                break
        p.send_signal(signal.SIGINT)  # what Ctrl-C does to the sim (its children have their own session)
        stdout, rest = p.communicate(timeout=180)
    finally:
        p.kill()
    s = json.loads((out / "summary.json").read_text())
    assert p.returncode == 0, rest[-2000:]
    assert s["interrupted"] is True and s["readings_committed"] > 200
    assert s["readings_lost"] == 0 and s["committed_vs_stored"]["differ"] == 0
    # the batch that was not due yet is on flash: unsent, and counted so
    assert s["readings_unsent"] > 0
    assert s["readings_stored"] + s["readings_unsent"] == s["readings_committed"]
    last = rest.rstrip().splitlines()[-1]
    assert last.startswith("sim: PASS: stopped by Ctrl-C;") and f"{s['readings_unsent']} unsent" in last, last
