"""Display benchmark: render time per screen, refreshes per simulated day
under the refresh policy, framebuffer and font memory. Prints one JSON object.

Runs the firmware on the MicroPython Unix port (accelerated HAL clock so the
panel's reset pulses do not sleep). Times are microseconds on this host, so
each one comes with a baseline measured in the same run: a plain framebuf
fill of the same canvas, and the same number of text lines drawn with
framebuf's built-in 8x8 font.

The simulated day: a meter reading every 10 s from a deterministic household
profile (night base load, morning and evening peaks, noise), the display
updated after every reading, the live screen all day with the diagnostics
screen opened for 2 minutes four times a day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (the MicroPython runtime: IHD_MICROPYTHON, mp32 or the wheel)

SNIPPET = r"""
import gc, sys, time, json
import hal
from display import driver, open_panel, screens, policy
from display import font_big, font_mid
from display.ui import Display

sys.path.insert(0, HERE)
from scenes import FULL

def avg_us(fn, n, rounds=7):
    # Best of several rounds: the host's scheduler and the GC only add time.
    best = None
    for _ in range(rounds):
        gc.collect()
        t = time.ticks_us()
        for _ in range(n):
            fn()
        us = time.ticks_diff(time.ticks_us(), t) / n
        best = us if best is None or us < best else best
    return best

out = {}
N = 20
for name in ("ssd1680_296x128", "ssd1680_250x122", "uc8151_296x128"):
    driver(name)  # import the code first: measure the instance only
    gc.collect()
    before = gc.mem_alloc()
    p = open_panel(name)
    gc.collect()
    key = name
    out[key + "_frame_bytes"] = p.memory()
    out[key + "_heap_bytes"] = gc.mem_alloc() - before
    out[key + "_fill_baseline_us"] = avg_us(lambda: p.fill(0), N)
    lines = p.height // 9
    cols = p.width // 8
    s = "x" * cols
    def text8():
        p.fill(0)
        for i in range(lines):
            p.text(s, 0, i * 9, 1)
    out[key + "_text8x8_baseline_us"] = avg_us(text8, N)
    out[key + "_render_live_us"] = avg_us(lambda: screens.live(p, FULL), N)
    out[key + "_render_diag_us"] = avg_us(lambda: screens.diag(p, FULL), N)
    out[key + "_show_full_us"] = avg_us(lambda: p.show(full=True), 10)
    p.pixel(100, 50, 1)
    def part():
        p.pixel(100, 50, p.pixel(100, 50) ^ 1)
        p.show()
    out[key + "_show_partial_us"] = avg_us(part, 10)
    del p
    gc.collect()

fonts = 0
for f in (font_big, font_mid):
    fonts += len(f.BITMAP) + len(f.WIDTHS) + len(f.OFFSETS)
out["font_bytes"] = fonts
out["font_glyphs"] = len(font_big.CHARS) + len(font_mid.CHARS)

# Simulated day on the primary panel.
d = Display(open_panel("ssd1680_296x128"))
seed = 12345
def rnd():
    global seed
    seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
    return seed
st = dict(FULL)
st["fault"] = None
hours = []
today = 0
t0 = time.ticks_ms()
for step in range(8640):
    t = step * 10
    hr = t // 3600
    base = 250
    if 7 <= hr < 9:
        base = 1400
    elif 17 <= hr < 22:
        base = 2200
    elif 9 <= hr < 17:
        base = 600
    w = base + rnd() % (base // 4 + 1) - base // 8
    if rnd() % 200 == 0:
        w += 2000  # kettle
    today += w * 10 // 3600
    if t % 3600 == 0:
        hours.append(0)
        hours = hours[-24:]
    hours[-1] += w * 10 // 3600
    st["demand_w"] = w
    st["today_wh"] = today
    st["hourly_wh"] = hours
    st["last_reading_age_s"] = 0
    st["uptime_s"] = t
    d.screen = screens.DIAG if (t % 21600) < 120 else screens.LIVE
    d.update(st, t)
out["day_wall_ms"] = time.ticks_diff(time.ticks_ms(), t0)
c = d.counts()
out["day_updates"] = 8640
out["day_full_refreshes"] = c["display_full_refreshes"]
out["day_partial_refreshes"] = c["display_partial_refreshes"]
out["day_skipped_updates"] = c["display_skipped"]
out["day_full_min_allowed"] = 1
out["day_full_max_allowed"] = 86400 // policy.MIN_FULL_S
print(json.dumps(out))
"""


def main() -> int:
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(str(ROOT / p) for p in ("firmware", "boards/unix"))
    env["IHD_CLOCK"] = "speed=1000"  # reset pulses and busy polls do not sleep
    with tempfile.TemporaryDirectory(prefix="bench-display-") as tmp:
        env["IHD_STATE"] = str(Path(tmp) / "state")
        code = "HERE = %r\n" % str(ROOT / "host_tests" / "display") + SNIPPET
        script = Path(tmp) / "bench.py"
        script.write_text(code)
        print("bench/display.py: running on MicroPython (about a minute) ...", file=sys.stderr, flush=True)
        p = subprocess.run(
            [str(mpruntime.binary()), "-X", "heapsize=256k", str(script)],
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    if p.returncode != 0:
        print(p.stdout[-3000:] + p.stderr[-3000:], file=sys.stderr)
        return 1
    r = json.loads(p.stdout.strip().splitlines()[-1])
    out: dict = {"host": "micropython unix port"}
    baselines = {}
    for k, v in r.items():
        out[k] = round(v, 1) if isinstance(v, float) else v
    for panel in ("ssd1680_296x128", "ssd1680_250x122", "uc8151_296x128"):
        fill = r[panel + "_fill_baseline_us"]
        for fig in ("render_live", "render_diag", "show_full", "show_partial"):
            out[f"{panel}_{fig}_vs_fill"] = round(r[f"{panel}_{fig}_us"] / fill, 1)
        for fig in ("render_live", "render_diag"):
            out[f"{panel}_{fig}_vs_text8x8"] = round(r[f"{panel}_{fig}_us"] / r[panel + "_text8x8_baseline_us"], 2)
            baselines[f"{panel}_{fig}_us"] = panel + "_text8x8_baseline_us"
        baselines[panel + "_show_full_us"] = panel + "_fill_baseline_us"
    out["baselines"] = baselines
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
