"""bench/uplink.py runs end to end on a small CSV of another interval and prints one
JSON object with the required figures; on its built-in day the byte target of
issue 5 holds (>= 500x fewer bytes than HTTP). Byte counts do not depend on the
machine's speed (timing figures are for the bench to report, not for a timed
test to judge); real-time latency is asserted by test_realtime.py."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def bench(*args: str) -> dict:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "uplink.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_bench_on_a_csv_of_ten_second_readings(tmp_path):
    f = tmp_path / "r.csv"
    rows = ["utc_s,demand_w"]
    for i in range(900):  # 2.5 h, 10-s interval, with some export (negative demand)
        rows.append(f"{1_767_225_600 + 10 * i},{int(300 + 250 * math.sin(i / 40) - (400 if 300 < i < 360 else 0))}")
    f.write_text("\n".join(rows) + "\n")
    out = bench("--readings", str(f), "--no-realtime", "--speed", "1000")
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


@pytest.mark.slow
def test_built_in_day_is_500_times_smaller_than_http():
    # The day the figures in docs/uplink.md are for: 28,800 readings, the
    # firmware uplink against the collector over loopback at 1000x (about 90 s
    # of wall clock), the HTTP baseline measured with aiohttp. Keep-alives vary
    # by a few a day with scheduling (467-469 seen, 553-554x; 542x with the
    # HEALTH reports, 720 B a day; 514x with the 9-byte keep-alive, 463 a
    # day); the rest is fixed.
    out = bench("--no-realtime", "--no-cpu")
    assert out["readings"] == 28_800 and out["readings_at_collector_exactly_once"]
    kinds = out["wire_bytes_per_day_by_kind"]
    # everything on the wire is counted in the total, both directions, headers included
    assert abs(sum(kinds.values()) - out["wire_bytes_per_day"]) <= len(kinds), (kinds, out["wire_bytes_per_day"])
    # the device's keep-alive count and the collector's agree (one may still be in flight at the end)
    assert abs(kinds["keepalive"] - out["keepalive_bytes_per_day"]) <= 37 and kinds["ack"] > 0
    # HEALTH reports are in the day (at boot, then every 6 h: 4 or 5) and acknowledged, each
    n = out["datagrams_per_day_by_kind"]
    assert 4 <= n.get("health", 0) <= 6 and n["health_ack"] == n["health"], n
    # the baseline is a small request, not an inflated one (measured 701 B with TCP/IP headers)
    assert 600 < out["http_bytes_per_reading"] < 800, out["http_bytes_per_reading"]
    assert out["reduction_factor"] >= 500, out
