"""Firmware CPU per simulated day on the Unix port, for each co-processor protocol.

Runs tools/sim.py for 24 simulated hours per protocol (1000x, 128 KB data
heap) and prints one JSON object: firmware CPU seconds per simulated day
beside the baseline of real time (86,400 s per day); their ratio is how many
times faster than real time the firmware runs (target: at least 10,000).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(protocol: str, out: Path) -> dict:
    cmd = [sys.executable, str(ROOT / "tools" / "sim.py"), "run", "--protocol", protocol, "--hours", "24"]
    cmd += ["--speed", "1000", "--data-heap", "128k", "--no-record-display", "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"sim {protocol} failed:\n{r.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def main() -> None:
    res = {"real_time_s_per_day": 86400}
    pairs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for proto in ("ezsp", "raven"):
            s = run(proto, Path(tmp) / proto)
            k = f"firmware_cpu_s_per_day_{proto}"
            res[k] = s["firmware_cpu_s_per_day"]
            res[f"realtime_factor_{proto}"] = s["realtime_factor"]
            res[f"readings_per_day_{proto}"] = s["readings_committed"]
            res[f"cpu_ms_per_reading_{proto}"] = round(1000 * s["firmware_cpu_s"] / max(1, s["readings_committed"]), 3)
            res[f"data_heap_peak_{proto}"] = s["data_heap_peak"]
            res[f"heap_code_{proto}"] = s["heap_code"]
            pairs[k] = "real_time_s_per_day"
    res["baselines"] = pairs
    print(json.dumps(res))


if __name__ == "__main__":
    main()
