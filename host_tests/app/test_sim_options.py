"""ihd sim --record / --replay FILE and --dup P, each a short whole-device run.

Replay: a RAVEn run records every byte the emulator sent (--record), a second
run replays that capture to the firmware instead of simulating a meter; what
the collector stores must be the readings the first run's emulator logged
sending (its own log, not the firmware's decode). Dup: netimpair duplicates
and loses datagrams both ways; the collector refuses the copies and ignores
readings sent again, and every committed reading is stored once with the
values the firmware committed (read back from its flash).
"""

import json
import re
import sqlite3
import subprocess

import mpy as mpymod

ROOT = mpymod.ROOT


def SIM():
    return [*mpymod.sim_command(), "--no-record-display"]


def sim(out, *args, timeout=300):
    r = subprocess.run([*SIM(), "--out", str(out), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    log = (out / "firmware.log").read_text() if (out / "firmware.log").exists() else ""
    assert r.returncode == 0, r.stderr[-2000:] + log[-2000:]
    return json.loads((out / "summary.json").read_text())


def stored(out):
    # (kind, value) of each row at the collector, in seq order
    con = sqlite3.connect(out / "collector.sqlite")
    rows = con.execute("SELECT demand_w, delivered_wh, flags FROM readings ORDER BY seq").fetchall()
    con.close()
    return [("demand", d) if f & 6 == 2 else ("summation", w) if f & 6 == 4 else ("other", f) for d, w, f in rows]


def sent(out):
    # (kind, value) of each report the emulator logged sending
    res = []
    for line in (out / "emulator.jsonl").read_text().splitlines():
        n = json.loads(line)
        if n.get("kind") == "demand":
            res.append(("demand", n["demand_w"]))
        elif n.get("kind") == "summation":
            res.append(("summation", n["delivered_wh"]))
    return res


def test_replay_of_a_recorded_capture_stores_what_was_recorded(tmp_path):
    cap = tmp_path / "raven.cap"
    args = ["--protocol", "raven", "--hours", "1", "--speed", "300"]
    rec = sim(tmp_path / "rec", *args, "--record", str(cap))
    recorded = sent(tmp_path / "rec")
    assert rec["readings_stored"] > 300 and cap.stat().st_size > 50_000
    rep = sim(tmp_path / "rep", *args, "--replay", str(cap))
    assert rep["readings_generated"] is None  # a capture is not a simulated meter
    assert "replayed" in (tmp_path / "rep" / "emulator.log").read_text()
    got = stored(tmp_path / "rep")
    # Every report in the capture became a reading, in order, with its value;
    # at most the reports sent before the firmware's link was up are missed.
    assert len(got) >= len(recorded) - 5, (len(got), len(recorded))
    assert got == recorded[len(recorded) - len(got) :]
    assert rep["readings_lost"] == 0 and rep["committed_vs_stored"]["differ"] == 0


def test_duplicated_and_lost_datagrams_readings_stored_once(tmp_path):
    # Duplicates of a datagram are refused by the collector's replay window
    # (same datagram seq: "replay"); readings sent again in a new datagram (its ACK was
    # lost) are ignored per reading (readings_duplicated). Either way each
    # committed reading is one row, with the committed values.
    out = tmp_path / "dup"
    args = ["--protocol", "raven", "--hours", "8", "--speed", "1000"]
    s = sim(out, *args, "--dup", "0.5", "--loss", "0.2")
    counts = re.findall(r"duplicated=(\d+)", (out / "netimpair.log").read_text())
    assert counts and int(counts[-1]) > 20  # the proxy did duplicate
    rej = s["collector_rejects"]
    assert rej.get("replay", 0) >= 1, rej  # a data (or hello) datagram came twice
    assert s["readings_duplicated"] > 0  # readings retransmitted after a lost ACK, ignored
    c = s["committed_vs_stored"]
    assert s["readings_lost"] == 0 and s["readings_never_sent"] == 0
    assert c["differ"] == 0 and c["missing_at_collector"] == 0 and c["compared"] == s["readings_stored"] > 2000, c
