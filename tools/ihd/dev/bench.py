"""Run every benchmark in bench/ and write one report, Markdown and JSON.

    ihd bench [--out bench/report] [--only NAME ...] [--timeout S]

Each bench/NAME.py is run with the project's Python and must print one JSON
object (its last stdout line). Figures are put beside their baselines:
  * an explicit map in the object, "baselines": {"figure": "baseline_figure"},
  * or by name: FIGURE with FIGURE_baseline, or a key containing "baseline"
    whose other words match (e.g. wire_bytes_per_day / http_baseline_bytes_per_day),
and the ratio baseline ÷ figure is printed (for a cost, how many times
better than the baseline; for a time, how many times faster). A benchmark that fails is reported as failed with
its error, and the exit status is 1; the others still run.

Two runtimes: each benchmark runs once per MicroPython runtime (IHD_MICROPYTHON
= mp32, our ESP32-like build, and the pip wheel), reported as NAME[mp32] and
NAME[wheel], with a side-by-side table of the figures both printed (mp32 ÷
wheel). A benchmark that compares the runtimes itself says BOTH_RUNTIMES = True
in its source and runs once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PY = str(ROOT / ".venv" / "bin" / "python")
from ihd.mp32 import runtime as mpruntime  # noqa: E402


def pairs(result: dict) -> list[tuple[str, str]]:
    """(figure, baseline) key pairs for one benchmark's JSON object."""
    explicit = result.get("baselines")
    if isinstance(explicit, dict):
        return [(k, v) for k, v in explicit.items() if k in result and v in result]
    out = []
    keys = [k for k in result if isinstance(result[k], (int, float)) and not isinstance(result[k], bool)]
    bases = [k for k in keys if "baseline" in k]
    for b in bases:
        words = set(b.replace("baseline", "").strip("_").split("_")) - {""}
        best = None
        for k in keys:
            if k in bases:
                continue
            if b in (k + "_baseline", "baseline_" + k):
                best = k
                break
            shared = len(words & set(k.split("_")))
            if shared >= max(2, len(words) - 1) and (best is None or shared > len(set(best.split("_")) & words)):
                best = k
        if best:
            out.append((best, b))
    return out


def run_one(path: Path, timeout: float, runtime: str | None = None) -> dict:
    t0 = time.monotonic()
    env = dict(os.environ, IHD_MICROPYTHON=runtime) if runtime else None
    try:
        p = subprocess.run([PY, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s", "seconds": timeout}
    secs = round(time.monotonic() - t0, 1)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    if p.returncode != 0 or not lines:
        return {"ok": False, "error": (p.stderr or p.stdout)[-1500:], "seconds": secs}
    try:
        result = json.loads(lines[-1])
    except ValueError:
        return {"ok": False, "error": "last stdout line is not JSON: " + lines[-1][:200], "seconds": secs}
    return {"ok": True, "result": result, "seconds": secs}


def fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return "`" + json.dumps(v)[:80] + "`"
    return str(v)


def markdown(report: dict) -> str:
    out = ["# Benchmark report", "", f"Generated {report['generated']} by `make bench` (ihd bench).", ""]
    side = side_by_side(report)
    if side:
        out += ["## mp32 beside the wheel", "", "Figures both runtimes printed; mp32 ÷ wheel.", ""]
        out += ["| bench | figure | mp32 | wheel | mp32 ÷ wheel |", "|---|---|---|---|---|"]
        out += [f"| {b} | {k} | {fmt(m)} | {fmt(w)} | {m / w:.3g} |" for b, k, m, w in side] + [""]
    for name, r in report["benches"].items():
        out += [f"## {name}", "", f"`bench/{name.split('[')[0]}.py`, {r['seconds']} s.", ""]
        if not r["ok"]:
            out += ["**FAILED**", "", "```", r["error"].strip(), "```", ""]
            continue
        res = r["result"]
        ps = pairs(res)
        if ps:
            out += ["| figure | value | baseline | value | baseline ÷ figure |", "|---|---|---|---|---|"]
            for k, b in ps:
                ratio = res[b] / res[k] if res[k] else float("inf")
                shown = f"{ratio:,.0f}" if ratio >= 100 else f"{ratio:.3g}"
                out.append(f"| {k} | {fmt(res[k])} | {b} | {fmt(res[b])} | {shown}x |")
            out.append("")
        paired = {x for p in ps for x in p} | {"baselines"}
        rest = [k for k in res if k not in paired]
        if rest:
            out += ["| other figures | value |", "|---|---|"] + [f"| {k} | {fmt(res[k])} |" for k in rest] + [""]
    return "\n".join(out)


def side_by_side(report: dict) -> list[tuple[str, str, float, float]]:
    """(bench, figure, mp32 value, wheel value) for figures both runs printed."""
    rows = []
    benches = report["benches"]
    for name in benches:
        if not name.endswith("[mp32]"):
            continue
        base = name[: -len("[mp32]")]
        m, w = benches[name], benches.get(base + "[wheel]")
        if not (w and m["ok"] and w["ok"]):
            continue
        for k, v in m["result"].items():
            wv = w["result"].get(k)
            num = (int, float)
            if isinstance(v, num) and isinstance(wv, num) and not isinstance(v, bool) and wv:
                rows.append((base, k, v, wv))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="bench/report", help="report path without extension")
    ap.add_argument("--only", nargs="*", help="bench names to run (default: all)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--dir", default=str(ROOT / "bench"), help="directory of the benchmarks")
    ap.add_argument(
        "--runtimes", default=None, help="comma-separated MicroPython runtimes (default: every one built: mp32,wheel)"
    )
    a = ap.parse_args(argv)
    runtimes = a.runtimes.split(",") if a.runtimes else [n for n, p in mpruntime.RUNTIMES.items() if p.exists()]
    bad = [r for r in runtimes if r not in mpruntime.RUNTIMES]
    if bad or not runtimes:
        names = ", ".join(mpruntime.RUNTIMES)
        print(f"bench: --runtimes: choose from {names} (run `make mp32` first)", file=sys.stderr)
        return 2
    benches = sorted(p for p in Path(a.dir).glob("*.py") if not p.name.startswith("_"))
    if a.only:
        benches = [p for p in benches if p.stem in a.only]
    if not benches:
        print(f"bench: no benchmarks found in {a.dir}", file=sys.stderr)
        return 1
    report = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "benches": {}}
    for p in benches:
        both = "BOTH_RUNTIMES = True" in p.read_text()
        for rt in [None] if both else runtimes:
            name = p.stem if rt is None else f"{p.stem}[{rt}]"
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            r = run_one(p, a.timeout, rt)
            report["benches"][name] = r
            print(f"bench: {name} {'ok' if r['ok'] else 'FAILED'} in {r['seconds']} s", file=sys.stderr, flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(report) + "\n")
    print(f"bench: wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}", file=sys.stderr)
    return 0 if all(r["ok"] for r in report["benches"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
