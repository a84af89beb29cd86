"""The simulator's command line: ihd sim's options and their checks
(kept apart so ihd sim holds the simulation itself)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ihd.sim.inject import parse as parse_inject
from ihd.sim.proc import parse_size


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a simulation")
    r.add_argument("--protocol", choices=("ezsp", "raven"), default="ezsp")
    r.add_argument("--hours", type=float, default=24.0, help="simulated hours to run")
    r.add_argument("--speed", type=float, default=2000.0, help="simulated seconds per real second")
    r.add_argument(
        "--runtime",
        choices=("mp32", "wheel"),
        default=os.environ.get("IHD_MICROPYTHON") if os.environ.get("IHD_MICROPYTHON") in ("mp32", "wheel") else "mp32",
        help="mp32: our 32-bit single-precision build with the firmware frozen in, as on the ESP32 (default,"
        " or IHD_MICROPYTHON; `make mp32`); wheel: the pip package's 64-bit Unix port, firmware in the heap",
    )
    r.add_argument(
        "--board",
        choices=("unix", "esp32s3_eink29"),
        default="unix",
        help="unix: the emulation HAL (hal/unix.py); esp32s3_eink29: the real hal/esp32.py on emulated"
        " machine/esp32/network modules (mp32 only)",
    )
    r.add_argument("--heap", default="512k", help="MicroPython heap, code included (-X heapsize)")
    r.add_argument(
        "--data-heap",
        help="wheel only: heap for data alone: -X heapsize = the code's own heap (measured) + this;"
        " overrides --heap (on mp32 the code is frozen, so --heap is the whole heap, as on the device)",
    )
    r.add_argument("--loss", type=float, default=0.0, help="datagram loss probability, each way")
    r.add_argument("--dup", type=float, default=0.0, help="datagram duplication probability")
    r.add_argument("--outage", help="network outage START_H:DURATION_H (hours from the start)")
    r.add_argument("--power-cuts", type=int, default=0, help="power cuts at random times")
    r.add_argument("--replay", help="co-processor capture to replay instead of the load profile")
    r.add_argument("--seed", "--profile", type=int, default=1, help="household load profile (and fault) seed")
    r.add_argument("--record", help="append every byte the co-processor sent to FILE (a capture for --replay)")
    r.add_argument("--solar", type=int, default=0, help="rooftop PV peak W in the load profile")
    r.add_argument("--gas", action="store_true", help="EZSP: a mirrored gas meter on the ESI's endpoint 2")
    r.add_argument("--out", default="run/sim", help="output directory (state, logs, summary.json)")
    r.add_argument("--keep-state", action="store_true", help="keep DIR/state from a previous run")
    r.add_argument("--board-defaults", action="store_true", help="no provisioned config: the board's defaults")
    r.add_argument("--record-display", action=argparse.BooleanOptionalAction, default=True, help="record the panel bus")
    r.add_argument("--realtime-at", help="H[:SECONDS]: ask for real-time mode at simulated hour H")
    r.add_argument("--ota-at", type=float, help="H: push a signed OTA update at simulated hour H")
    r.add_argument("--ota-tampered-at", type=float, help="H: push a signed image altered after signing (refused)")
    r.add_argument("--ota-foreign-at", type=float, help="H: push an image signed by an untrusted key (refused)")
    r.add_argument(
        "--inject",
        action="append",
        metavar="H:KIND[:FILE]",
        help="at simulated hour H: wipe-flash, wipe-store, delete:FILE, corrupt:FILE, truncate:FILE, rtc-invalid,"
        " reprovision, collector-restart, collector-kill (tools/ihd/sim/inject.py; repeat for more)",
    )
    r.add_argument("--preview-every", type=float, default=0, help="render DIR/display.png every S real seconds")
    r.add_argument(
        "--cpu-profile",
        choices=("tasks", "calls"),
        help="firmware CPU profile (app/taskprof.py): per task in summary.json cpu_by_task_ms; calls: also"
        " calls per function (summary.json calls_by_function; slows the firmware down)",
    )
    r.add_argument(
        "--romfs",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="run the firmware from a ROMFS image held outside the GC heap, as a device runs frozen code"
        " (default); --no-romfs: .mpy files loaded into the heap",
    )
    r.add_argument(
        "--wrap", help="command prefix for the firmware process, e.g. 'valgrind --tool=callgrind' (%%b: boot no.)"
    )
    r.add_argument("--drain-s", type=float, default=120, help="real seconds to wait for the final upload")
    g = r.add_argument_group(
        "supplier (the emulator's ihd/emulators/supplier.py; prepayment and ambient EZSP only, messages both protocols)"
    )
    g.add_argument("--prepay", type=int, help="a prepayment meter with this credit (raw, the price's 4 digits)")
    g.add_argument("--prepay-low", type=int, help="its low-credit level (raw; the emulator's default 20000)")
    g.add_argument(
        "--message",
        action="append",
        default=[],
        metavar="OFFSET:ID:MINUTES|-:TEXT",
        help="the meter displays a message OFFSET simulated seconds after the run's start (repeat for more)",
    )
    g.add_argument("--cancel-message", action="append", default=[], metavar="OFFSET:ID|all", help="... and cancels it")
    g.add_argument("--ambient", action="store_true", help="the meter has AmbientConsumptionIndicator (EZSP)")
    r.add_argument(
        "--meter-days",
        type=int,
        default=0,
        help="the meter ran this many days before the run (EZSP: its history attributes know them at once)",
    )
    r.add_argument(
        "--expect-history-days",
        type=int,
        help="the verdict fails unless the last status line's history knows this many closed days (make soak: 8)",
    )
    return p


def supplier_args(a: argparse.Namespace, elapsed: int) -> list[str]:
    """The emulator's supplier options for an emulator started `elapsed`
    simulated seconds into the run: message offsets are the run's, so an
    emulator started after a reboot replays the script's past (negative
    offsets: the message on show is the meter's again, as GetLastMessage
    and get_message answer) and sends only what is still to come."""
    out = []
    if a.prepay is not None:
        out += ["--prepay", str(a.prepay)]
        if a.prepay_low is not None:
            out += ["--prepay-low", str(a.prepay_low)]
    for opt, specs in (("--message", a.message), ("--cancel-message", a.cancel_message)):
        for spec in specs:
            t, _, rest = spec.partition(":")
            out += [f"{opt}={int(t) - elapsed}:{rest}"]
    if a.ambient:
        out.append("--ambient")
    return out


def check(p: argparse.ArgumentParser, a: argparse.Namespace) -> None:
    """Refuse bad options with argparse's error (exit 2, one line)."""
    if a.speed < 1:
        p.error("--speed must be at least 1")
    if a.outage:
        try:
            start, dur = (float(x) for x in a.outage.split(":"))
        except ValueError:
            p.error(f"--outage wants START_H:DURATION_H (hours), got {a.outage!r}")
    for spec in a.inject or ():
        try:
            parse_inject(spec)
        except ValueError as e:
            p.error(str(e))
    for name in ("heap", "data_heap"):
        v = getattr(a, name)
        if v is not None:
            try:
                parse_size(v)
            except ValueError:
                p.error(f"--{name.replace('_', '-')} wants a size like 128k or 2m, got {v!r}")
    # Every MicroPython this run starts (config validator, board defaults,
    # flash read-back) is the run's runtime, not the caller's.
    os.environ["IHD_MICROPYTHON"] = a.runtime
    if a.runtime == "mp32" and a.data_heap:
        p.error("--data-heap is for --runtime wheel; on mp32 the code is frozen: give the whole heap with --heap")
    if a.board != "unix" and a.runtime != "mp32":
        p.error(f"--board {a.board} runs the real ESP32 HAL on emulated port modules: it needs --runtime mp32")
    if a.runtime == "mp32":
        from ihd.mp32 import runtime as mpruntime

        try:
            mpruntime.binary("mp32")
        except mpruntime.RuntimeError_ as e:
            p.error(f"{e} (or give --runtime wheel)")
    if a.replay and not Path(a.replay).is_file():
        p.error(f"--replay: no such capture file {a.replay}")
    from ihd.emulators.supplier import parse_cancel, parse_message

    for parse, specs in ((parse_message, a.message), (parse_cancel, a.cancel_message)):
        for spec in specs:
            try:
                parse(spec)
            except argparse.ArgumentTypeError as e:
                p.error(str(e))
    if (a.prepay is not None or a.ambient) and a.protocol != "ezsp":
        p.error("--prepay and --ambient are EZSP only: the RAVEn API has no prepayment or ambient indicator")
