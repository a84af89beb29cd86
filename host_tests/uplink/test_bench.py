"""bench/uplink.py runs end to end on a small CSV of another interval and prints one
JSON object with the required figures (the figures themselves are for the bench to
report, not for a timed test to judge)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_on_a_csv_of_ten_second_readings(tmp_path):
    f = tmp_path / "r.csv"
    rows = ["utc_s,demand_w"]
    for i in range(900):  # 2.5 h, 10-s interval, with some export (negative demand)
        rows.append(f"{1_767_225_600 + 10 * i},{int(300 + 250 * math.sin(i / 40) - (400 if 300 < i < 360 else 0))}")
    f.write_text("\n".join(rows) + "\n")
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "uplink.py"), "--readings", str(f), "--no-realtime", "--speed", "1000"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout)
    for k in (
        "readings",
        "codec_bits_per_reading",
        "zlib9_bits_per_reading",
        "zstd19_bits_per_reading",
        "wire_bytes_per_day",
        "http_baseline_bytes_per_day",
        "reduction_factor",
        "keepalive_bytes_per_day",
    ):
        assert k in out, k
    assert out["readings"] == 900 and out["readings_at_collector_exactly_once"]
    assert out["codec_bits_per_reading"] < min(out["zlib9_bits_per_reading"], out["zstd19_bits_per_reading"])
