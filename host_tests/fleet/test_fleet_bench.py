"""bench/fleet.py in miniature: a few simulated devices against a real collector
process; every acknowledged reading is in the database, none twice."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_smoke_sqlite():
    cmd = [sys.executable, str(ROOT / "bench" / "fleet.py"), "--devices", "40", "--backend", "sqlite"]
    cmd += ["--rate", "3000", "--seconds", "2", "--drain", "5", "--loss", "0.02", "--dup", "0.05"]
    cmd += ["--households", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["backend"] == "sqlite" and res["devices"] == 40 and res["collectors"] == 1
    assert res["readings_acked"] > 1000 and res["readings_lost"] == 0 and res["readings_duplicated"] == 0
    assert res["keepalives"] > 0 and res["bad_replies"] == 0 and res["refused"] == 0
    for k in ("readings_per_s", "datagrams_per_s", "p99_ack_ms", "cpu_s_per_million_readings"):
        assert res[k] > 0, k


def test_fleet_bad_arguments_say_what_is_wrong():
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fleet.py"), "--devices", "0"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "must be positive" in r.stderr and "Traceback" not in r.stderr
