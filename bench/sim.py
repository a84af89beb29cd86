"""Firmware CPU per simulated day on the Unix port: the whole device, for each co-processor protocol.

Runs ihd sim for 24 clean simulated hours at 2000x (no network
impairment) on both runtimes, side by side, and prints one JSON object:
  * firmware CPU seconds per simulated day beside real time (86,400 s):
    their ratio is how many times faster than real time the firmware runs
    (target: at least 10,000 on mp32);
  * mp32 (our 32-bit single-precision build, firmware frozen, whole heap
    capped at MP32_HEAP) beside the wheel (64-bit, firmware from a ROMFS
    image, 128 KB data heap), and the wheel with the code loaded into the
    heap (--no-romfs, the old layout);
  * heap: mp32's whole-heap peak beside the wheel's data peak;
  * a reference workload (a fixed MicroPython loop) measured in the same
    run, before and after: `cpu_per_day_in_reference_units` = firmware CPU
    per day / reference CPU is a machine-independent figure (the ratio
    survives a busier or slower machine, real-time factors do not), and
    load averages say what else ran.
CPU is the processes' own (wait4 rusage), never wall time; on a shared
machine it still moves with the load (caches, hyper-threads: 30-40% seen).
`--instructions` adds the repeatable figure: instructions per simulated day
counted by valgrind's callgrind over 2 simulated hours at 100x (under
valgrind the firmware runs ~50x slower, so that is about the pace of 2000x
natively), for the ROMFS layout beside code-in-heap (takes ~4 minutes).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from ihd.mp32 import runtime as mpruntime  # noqa: E402

MP32_HEAP = "128k"
BOTH_RUNTIMES = True  # ihd bench: this bench runs mp32 and the wheel itself

# A fixed mix of what the firmware does: calls with several arguments,
# small tuples, attribute and dict lookups, bytearray indexing.
REFERENCE = """
class R:
    def __init__(self):
        self.d = {}
        self.b = bytearray(256)
    def put(self, a, b, c, d, e):
        self.d[a & 63] = (a, b, c, d, e)
        self.b[a & 255] = e & 255
        return a + b
r = R()
s = 0
for i in range(100000):
    s += r.put(i, i + 1, i * 3, -i, i & 7)
print(s)
"""


def cpu_of(cmd: list[str], **kw) -> float:
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode:
        raise SystemExit(f"bench/sim: {cmd[0]} failed ({p.returncode})")
    return ru.ru_utime + ru.ru_stime


def reference_cpu_s(runtime: str = "wheel") -> float:
    # median of 3, minus an empty start-up
    mpy = str(mpruntime.binary(runtime))
    empty = sorted(cpu_of([mpy, "-c", "pass"]) for _ in range(3))[1]
    return sorted(cpu_of([mpy, "-X", "heapsize=256k", "-c", REFERENCE]) for _ in range(3))[1] - empty


def heap_args(runtime: str) -> list[str]:
    return (
        ["--runtime", "mp32", "--heap", MP32_HEAP]
        if runtime == "mp32"
        else ["--runtime", "wheel", "--data-heap", "128k"]
    )


def run(protocol: str, out: Path, romfs: bool, runtime: str = "wheel") -> dict:
    cmd = [sys.executable, "-m", "ihd.sim", "run", "--protocol", protocol, "--hours", "24"]
    cmd += ["--speed", "2000", *heap_args(runtime), "--no-record-display", "--out", str(out)]
    if runtime == "wheel":
        cmd += ["--romfs" if romfs else "--no-romfs"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"sim {protocol} failed:\n{r.stderr[-2000:]}")
    return json.loads((out / "summary.json").read_text())


def instructions(out: Path, romfs: bool) -> dict:
    # 2 simulated hours of EZSP under callgrind: instructions per simulated day
    cg = out / "cg"
    cg.mkdir(parents=True, exist_ok=True)
    wrap = f"valgrind --tool=callgrind --callgrind-out-file={cg}/cg.%b.out"
    cmd = [sys.executable, "-m", "ihd.sim", "run", "--protocol", "ezsp", "--hours", "2"]
    cmd += ["--speed", "100", *heap_args("wheel"), "--no-record-display", "--drain-s", "60", "--wrap", wrap]
    cmd += ["--out", str(out / "run"), "--romfs" if romfs else "--no-romfs"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"sim under callgrind failed:\n{r.stderr[-2000:]}")
    total = 0
    for f in cg.glob("cg.*.out"):
        m = re.search(rb"^summary: (\d+)", f.read_bytes(), re.M)
        if m:
            total += int(m.group(1))
    s = json.loads((out / "run" / "summary.json").read_text())
    return {"instructions_per_day": total * 12, "readings": s["readings_committed"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", action="store_true", help="also count instructions with callgrind (~4 min)")
    args = ap.parse_args()
    res: dict = {"real_time_s_per_day": 86400, "load_avg_before": os.getloadavg()[0]}
    ref = [reference_cpu_s()]
    ref32 = [reference_cpu_s("mp32")]
    pairs = {}
    runs = [("ezsp", True, "mp32"), ("raven", True, "mp32"), ("ezsp", True, "wheel"), ("ezsp", False, "wheel")]
    runs.append(("raven", True, "wheel"))
    with tempfile.TemporaryDirectory() as tmp:
        for proto, romfs, rt in runs:
            s = run(proto, Path(tmp) / f"{proto}{romfs}{rt}", romfs, rt)
            tag = (proto if romfs else proto + "_code_in_heap") + ("_mp32" if rt == "mp32" else "")
            k = f"firmware_cpu_s_per_day_{tag}"
            res[k] = s["firmware_cpu_s_per_day"]
            res[f"realtime_factor_{tag}"] = s["realtime_factor"]
            res[f"readings_per_day_{tag}"] = s["readings_committed"]
            res[f"cpu_ms_per_reading_{tag}"] = round(1000 * s["firmware_cpu_s"] / max(1, s["readings_committed"]), 3)
            res[f"heap_code_{tag}"] = s["heap_code"]
            res[f"data_heap_peak_{tag}"] = s["data_heap_peak"]
            res[f"heap_peak_{tag}"] = s["heap_peak"]
            pairs[k] = "real_time_s_per_day"
    ref.append(reference_cpu_s())
    ref32.append(reference_cpu_s("mp32"))
    res["reference_cpu_s_mp32"] = round(sum(ref32) / len(ref32), 3)
    for proto in ("ezsp", "raven"):
        # the same firmware day on the device-like build against the wheel
        res[f"mp32_cpu_vs_wheel_{proto}"] = round(
            res[f"firmware_cpu_s_per_day_{proto}_mp32"] / res[f"firmware_cpu_s_per_day_{proto}"], 3
        )
        res[f"cpu_per_day_in_reference_units_{proto}_mp32"] = round(
            res[f"firmware_cpu_s_per_day_{proto}_mp32"] / res["reference_cpu_s_mp32"], 2
        )
        pairs[f"firmware_cpu_s_per_day_{proto}_mp32"] = f"firmware_cpu_s_per_day_{proto}"
    res["load_avg_after"] = os.getloadavg()[0]
    res["reference_cpu_s"] = round(sum(ref) / len(ref), 3)
    res["reference_cpu_spread"] = round(max(ref) / min(ref), 3)  # > 1.1: the machine's speed changed during the run
    for tag in ("ezsp", "ezsp_code_in_heap", "raven"):
        res[f"cpu_per_day_in_reference_units_{tag}"] = round(
            res[f"firmware_cpu_s_per_day_{tag}"] / res["reference_cpu_s"], 2
        )
    # the ROMFS layout (code outside the heap, as frozen on the device) against code in the heap
    res["code_in_heap_cpu_vs_romfs"] = round(
        res["firmware_cpu_s_per_day_ezsp_code_in_heap"] / res["firmware_cpu_s_per_day_ezsp"], 3
    )
    if args.instructions:
        with tempfile.TemporaryDirectory() as tmp:
            for romfs in (True, False):
                tag = "ezsp" if romfs else "ezsp_code_in_heap"
                i = instructions(Path(tmp) / tag, romfs)
                res[f"instructions_per_day_{tag}"] = i["instructions_per_day"]
        pairs["instructions_per_day_ezsp"] = "instructions_per_day_ezsp_code_in_heap"
    res["baselines"] = pairs
    print(json.dumps(res))


if __name__ == "__main__":
    main()
