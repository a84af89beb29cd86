"""bench/fleet.py in miniature: a few simulated devices against a real collector
process; every acknowledged reading is in the database, none twice."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_smoke_both_backends_and_a_kill():
    """40 devices on SQLite then PostgreSQL, 2 collectors, collector 0 killed with SIGKILL
    0.5 s into the load and restarted 2 s later: nothing acknowledged lost, nothing twice."""
    cmd = [sys.executable, str(ROOT / "bench" / "fleet.py"), "--devices", "40", "--backend", "both"]
    cmd += ["--collectors", "2", "--kill-at", "0.5"]
    # drain: up to 20 s for the batches in flight, over as soon as all are acknowledged (a loaded
    # host with 2 workers left one batch of a restarted collector unacknowledged after 5 s)
    cmd += ["--rate", "3000", "--seconds", "3", "--drain", "20", "--loss", "0.02", "--dup", "0.05"]
    cmd += ["--households", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    both = json.loads(r.stdout.strip().splitlines()[-1])
    assert both["backend"] == "both" and both["devices"] == 40 and both["collectors"] == 2
    for b in ("sqlite", "postgresql"):
        res = {k[len(b) + 1 :]: v for k, v in both.items() if k.startswith(b + "_")}
        assert res["kills"] == 1 and res["batches_unacked_at_end"] == 0, (b, res)
        assert res["readings_acked"] > 1000 and res["readings_lost"] == 0 and res["readings_duplicated"] == 0, b
        assert res["keepalives"] > 0 and res["bad_replies"] == 0 and res["refused"] == 0, b
        for k in ("readings_per_s", "datagrams_per_s", "p99_ack_ms", "cpu_s_per_million_readings"):
            assert res[k] > 0, (b, k)


def test_fleet_bad_arguments_say_what_is_wrong():
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), "--devices", "0"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "must be positive" in r.stderr and "Traceback" not in r.stderr
