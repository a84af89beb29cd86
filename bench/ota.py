#!/usr/bin/env python3
"""OTA verification benchmark on the MicroPython Unix port.

Signs a 1.5 MB test app image with espsecure, then on MicroPython measures
  * the firmware's full verification (firmware/ota/verify.py: image parse,
    checksum, appended SHA-256, Secure Boot V2 digest, RSA-3072 PSS), and
  * the baseline: plain SHA-256 of the same bytes read the same way,
both best of N runs in one process, and the smallest heap (-X heapsize)
each needs, found by bisection, with the modules compiled at import and
precompiled to .mpy as on the device (the Unix port is 64-bit: an ESP32
needs about half). Prints one JSON object whose `baselines` maps each
figure to the baseline beside it (ihd bench).

    .venv/bin/python bench/ota.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from ihd.ota import tool  # noqa: E402

TIMED = """
import sys, time, hashlib, binascii
from ota.verify import Policy, verify_file
path, digest, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
pol = Policy([binascii.unhexlify(digest)], 9, "micropython", 0)
buf = bytearray(4096)

def plain():
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            h.update(memoryview(buf)[:n])
    return h.digest()

best_v = best_b = 1 << 60
for _ in range(runs):
    t = time.ticks_us(); plain(); best_b = min(best_b, time.ticks_diff(time.ticks_us(), t))
    t = time.ticks_us(); verify_file(path, pol); best_v = min(best_v, time.ticks_diff(time.ticks_us(), t))
print(best_v, best_b)
"""

ONLY = {
    "verify": "import sys, binascii\nfrom ota.verify import Policy, verify_file\n"
    "verify_file(sys.argv[1], Policy([binascii.unhexlify(sys.argv[2])], 9, 'micropython', 0))\n",
    "sha256": "import sys, hashlib\nh = hashlib.sha256()\nbuf = bytearray(4096)\nf = open(sys.argv[1], 'rb')\n"
    "while True:\n    n = f.readinto(buf)\n    if not n:\n        break\n    h.update(memoryview(buf)[:n])\n",
}


def mpy(code: str, args: list[str], heap: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, MICROPYPATH=path or f"{ROOT / 'firmware'}:{ROOT / 'boards' / 'unix'}")
    return subprocess.run(
        [str(tool.mpruntime.binary()), "-X", f"heapsize={heap}", "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
    )


def min_heap_kb(code: str, args: list[str], path: str | None = None) -> int:
    lo, hi = 2, 512  # KB: lo fails, hi works
    if mpy(code, args, f"{hi}k", path).returncode != 0:
        raise SystemExit("does not run even with 512 KB of heap")
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if mpy(code, args, f"{mid}k", path).returncode == 0:
            hi = mid
        else:
            lo = mid
    return hi


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--size", type=int, default=1_536 * 1024)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="otabench-") as tmp:
        d = Path(tmp)
        key = d / "key.pem"
        tool.keygen(key)
        digest = tool.key_digest(key).hex()
        (d / "app.bin").write_bytes(tool.make_image(size=a.size, version="bench", seed=3))
        tool.sign([key], d / "app.bin", d / "signed.bin")
        img = d / "signed.bin"
        args = [str(img), digest]
        p = mpy(TIMED, [*args, str(a.runs)], "256k")
        if p.returncode != 0:
            raise SystemExit(p.stdout + p.stderr)
        v_us, b_us = map(int, p.stdout.split())
        signed_size = img.stat().st_size
        heap_v = min_heap_kb(ONLY["verify"], args)
        # As on the device: modules precompiled (.mpy), not compiled at import.
        mpy_dir = d / "mpy" / "ota"
        mpy_dir.mkdir(parents=True)
        for src in (ROOT / "firmware" / "ota").glob("*.py"):
            cross = tool.BIN / "mpy-cross"
            arch = "x86" if tool.mpruntime.is_frozen() else "x64"  # mp32 is -m32
            out = str(mpy_dir / (src.stem + ".mpy"))
            subprocess.run([str(cross), f"-march={arch}", "-o", out, str(src)], check=True)
        mpath = f"{d / 'mpy'}:{ROOT / 'boards' / 'unix'}"
        heap_vm = min_heap_kb(ONLY["verify"], args, mpath)
        # Loading the modules only: the difference is verification's own
        # working set (buffers, hash states, 3072-bit arithmetic).
        heap_im = min_heap_kb("import sys, binascii\nfrom ota.verify import Policy, verify_file\n", args, mpath)
        heap_b = min_heap_kb(ONLY["sha256"], args)
        # The interpreter alone (compiling nothing): what both figures include.
        heap_0 = min_heap_kb("pass\n", [])
    print(
        json.dumps(
            {
                "bench": "ota-verify",
                "port": "mp32 (unix, 32-bit)" if tool.mpruntime.is_frozen() else "wheel (unix, 64-bit)",
                "image_bytes": a.size,
                "signed_bytes": signed_size,
                "runs": a.runs,
                "verify_ms": round(v_us / 1000, 2),
                "baseline_sha256_ms": round(b_us / 1000, 2),
                "verify_vs_sha256": round(v_us / b_us, 2),
                "verify_MB_per_s": round(a.size / v_us, 1),
                "min_heap_kb_verify": heap_v,
                "min_heap_kb_verify_precompiled": heap_vm,
                "min_heap_kb_sha256": heap_b,
                "min_heap_kb_interpreter": heap_0,
                "min_heap_kb_import_precompiled": heap_im,
                "verify_working_set_kb": heap_vm - heap_im,
                "sha256_working_set_kb": heap_b - heap_0,
                # Each figure beside a baseline measured in this run (ihd bench):
                # time and heap against a plain SHA-256 of the same image read
                # the same way; the precompiled verify against importing its
                # modules alone; the working set against the hash's own.
                "baselines": {
                    "verify_ms": "baseline_sha256_ms",
                    "min_heap_kb_verify": "min_heap_kb_sha256",
                    "min_heap_kb_verify_precompiled": "min_heap_kb_import_precompiled",
                    "verify_working_set_kb": "sha256_working_set_kb",
                },
            }
        )
    )


if __name__ == "__main__":
    main()
