"""Decode a raw co-processor capture with the firmware's own parsers.

For support engineers: given the bytes a ZigBee co-processor sent to the
display (a RAVEn/EMU-2 stick's XML, or an EmberZNet NCP's ASH/EZSP stream),
print what the firmware reads from them, one CSV line per value:

  ihd capture decode --protocol raven capture.bin > readings.csv

Header `utc_s,kind,value,unit`; kind is `demand` (W), `summation_delivered`
(Wh), `summation_received` (Wh) or `time` (value = UTC seconds, unit s).
Rejected frames go to stderr, one line each with the reason, and a summary
line ends stderr. The parsers run on the MicroPython Unix port
(.venv/bin/micropython, tools/ihd/capture/capture_mpy.py) exactly as on the device.
Exit status: 0 decoded, 1 the capture could not be read, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (the MicroPython runtime: IHD_MICROPYTHON, mp32 or the wheel)

F_TIME_VALID, F_DEMAND, F_SUMMATION, F_RECEIVED, F_GAS = 1, 2, 4, 8, 32


def mpy_env() -> dict:
    env = dict(os.environ)
    env["MICROPYPATH"] = mpruntime.module_path([ROOT / "firmware", ROOT / "boards" / "unix"])
    return env


def rows(protocol: str, path: Path, bad_out):
    """Yield (utc_s, kind, value, unit) from the firmware's decode of `path`."""
    proc = subprocess.Popen(
        [
            str(mpruntime.binary()),
            "-X",
            "heapsize=512k",
            str(Path(__file__).resolve().parent / "capture_mpy.py"),
            protocol,
            str(path),
            "256",
        ],
        env=mpy_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counters = None
    for line in proc.stdout:
        kind, _, rest = line.rstrip("\n").partition(" ")
        if kind == "R":
            utc, demand, deliv, recv, flags = (int(x) for x in rest.split())
            utc_s = str(utc) if flags & F_TIME_VALID else ""
            gas = flags & F_GAS
            if flags & F_DEMAND:
                yield utc_s, "demand", demand, "l/h" if gas else "W"
            # a summation is flagged only on the reading whose report
            # carried it (firmware/meter/reading.py): one line per report
            if flags & F_SUMMATION:
                yield utc_s, "summation_delivered", deliv, "l" if gas else "Wh"
                if flags & F_RECEIVED:
                    yield utc_s, "summation_received", recv, "l" if gas else "Wh"
        elif kind == "T":
            if rest != "-":
                yield rest, "time", int(rest), "s"
            else:
                print("capture: meter time invalid (0xFFFFFFFF)", file=bad_out)
        elif kind == "B":
            reason, _, frame = rest.rpartition("|")
            print(f"capture: bad frame ({frame}): {reason}", file=bad_out)
        elif kind == "C":
            counters = rest.split()
        elif kind == "E":
            pass  # status, device info, meter list, price, warning: not readings
        else:
            print(f"capture: firmware said: {line.rstrip()}", file=bad_out)
    err = proc.stderr.read()
    if proc.wait() != 0 or counters is None:
        raise RuntimeError(f"the firmware's decoder failed (status {proc.returncode}): {err.strip()}")
    good, bad = counters[0], counters[1]
    print(f"capture: {good} frames used, {bad} rejected", file=bad_out)
    if good == "0":
        other = "raven" if protocol == "ezsp" else "ezsp"
        raise RuntimeError(
            f"no {protocol} frame decoded from {path} ({path.stat().st_size} bytes): is it a capture of what"
            f" the co-processor sent (--record of ihd sim or the emulator)? try --protocol {other}"
        )


def decode(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"capture: no such file: {path}", file=sys.stderr)
        return 1
    try:
        mpruntime.binary()
    except mpruntime.RuntimeError_ as e:
        print(f"capture: {e}", file=sys.stderr)
        return 1
    out = sys.stdout
    out.write("utc_s,kind,value,unit\n")
    try:
        for utc_s, kind, value, unit in rows(args.protocol, path, sys.stderr):
            out.write(f"{utc_s},{kind},{value},{unit}\n")
    except RuntimeError as e:
        print(f"capture: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. piped into head
        sys.stderr.close()
        return 0
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="print the readings in a raw capture as CSV")
    d.add_argument("--protocol", choices=("raven", "ezsp"), required=True)
    d.add_argument("file", help="raw bytes received from the co-processor")
    args = p.parse_args(argv)
    return decode(args)


if __name__ == "__main__":
    sys.exit(main())
