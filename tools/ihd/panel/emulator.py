"""E-ink panel emulator: replays the SPI/pin stream the firmware sent through
the Unix HAL (hal.set_bus_sink) into a model of the controller, and renders
what the glass shows as PBM or PNG.

The models (tools/ihd/panel/models.py) interpret the controllers' command sets the way their datasheets
describe them, independently of the firmware's drivers: SSD1680 (RAM
windows, data entry modes, address counters, B/W and red RAM, display modes
1 = full and 2 = differential, deep sleep) and UC8151/IL0373 (power on/off,
panel setting, resolution, old/new data RAM, partial window, OTP or register
LUTs, deep sleep with check code, SRAM lost in deep sleep). Anything a real
controller would reject or ignore (traffic during deep sleep, a refresh
without power, a bad check code, unknown commands) is recorded in `errors`.

Record file (written by host_tests/display/busrec.py on MicroPython):
    b"P" pin(u8) level(u8)        a pin write
    b"S" len(u32 LE) bytes        an SPI write
    b"M" len(u8) utf-8 name       a marker: snapshot the glass as `name`
The glass is a portrait image (columns = sources, rows = gates); the board
mounts it rotated 90 degrees clockwise, so images are saved landscape.

Sub-commands:
  decode   print the command log of a record
  render   write one image per marker of a record (--last N: the last N)
  scenes   run host_tests/display/scenes.py on MicroPython and render them
  previews PNG previews of every scene on every panel (make previews)
"""

from __future__ import annotations

import argparse
import ast
import os
import struct
import subprocess
import sys
import tempfile
from collections import deque
from pathlib import Path

from PIL import Image

from ihd.panel.models import RESET, SSD1680, UC8151, Controller  # noqa: E402, F401  (RESET, Controller: for the tests)

ROOT = Path(__file__).resolve().parents[3]
from ihd.mp32 import runtime as mpruntime  # noqa: E402  (the MicroPython runtime: IHD_MICROPYTHON, mp32 or the wheel)

SCENES = ROOT / "host_tests" / "display" / "scenes.py"

# name -> (controller, gates, sources)
PANELS = {
    "ssd1680_296x128": ("ssd1680", 296, 128),
    "ssd1680_250x122": ("ssd1680", 250, 122),
    "uc8151_296x128": ("uc8151", 296, 128),
}


def board_pins(board: str = "unix") -> dict:
    """PANEL_PINS from boards/<board>/board.py, read without importing it."""
    tree = ast.parse((ROOT / "boards" / board / "board.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PANEL_PINS" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit(f"panel: PANEL_PINS not found in boards/{board}/board.py")


def read_record(path: Path):
    """Yield ("pin", num, level), ("spi", bytes, None), ("mark", name, None)."""
    data = Path(path).read_bytes()
    i = 0
    while i < len(data):
        tag = data[i : i + 1]
        if tag == b"P":
            yield ("pin", data[i + 1], data[i + 2])
            i += 3
        elif tag == b"S":
            (n,) = struct.unpack_from("<I", data, i + 1)
            yield ("spi", data[i + 5 : i + 5 + n], None)
            i += 5 + n
        elif tag == b"M":
            n = data[i + 1]
            yield ("mark", data[i + 2 : i + 2 + n].decode(), None)
            i += 2 + n
        else:
            raise ValueError(f"{path}: bad record tag {tag!r} at offset {i}")


class Emulator:
    """Feeds one panel model from the bus: CS/DC framing, reset, markers."""

    def __init__(self, panel: str, pins: dict | None = None, keep: int | None = None):
        # keep: remember only the last `keep` snapshots (long simulation records).
        kind, gates, sources = PANELS[panel]
        self.ctl = (SSD1680 if kind == "ssd1680" else UC8151)(gates, sources)
        p = pins or board_pins()
        self.cs_pin, self.dc_pin, self.rst_pin = p["cs"], p["dc"], p["rst"]
        self.levels: dict[int, int] = {}
        self.cmd = None
        self.resets = 0
        self.started = False
        self.args = bytearray()
        self.frames: deque[tuple[str, Image.Image]] = deque(maxlen=keep)
        self.marks = 0

    def feed(self, kind, a, b) -> None:
        ctl = self.ctl
        if kind == "mark":
            self.flush()
            self.marks += 1
            self.frames.append((a, ctl.image()))
        elif kind == "pin":
            prev = self.levels.get(a)
            self.levels[a] = b
            if a == self.rst_pin and prev == 0 and b == 1:
                self.flush()
                self.cmd = None
                self.resets += 1
                ctl.log.append((RESET, b""))
                ctl.hw_reset()
            elif a == self.cs_pin and b == 1:
                self.flush()
        elif kind == "spi":
            if self.levels.get(self.cs_pin, 1) != 0:
                ctl.error("SPI bytes with CS high ignored")
                return
            if self.levels.get(self.rst_pin, 1) == 0:
                ctl.error("SPI bytes while in reset")
                return
            if ctl.asleep:
                ctl.error(f"SPI traffic during deep sleep ({len(a)} bytes)")
                return
            if self.levels.get(self.dc_pin, 0) == 0:
                for c in a:
                    self.flush()
                    self.cmd = c
                    self.started = False
            else:
                if self.cmd is None:
                    ctl.error("data without a command")
                    return
                self.args += a
                if self.started and len(self.args) >= 512:
                    ctl.more_data(self.cmd, bytes(self.args))
                    self.args = bytearray()

    def flush(self) -> None:
        # A command executes when its parameters end (CS high or next command).
        if self.cmd is None:
            return
        if not self.started:
            self.ctl.log.append((self.cmd, bytes(self.args)))
            self.ctl.command(self.cmd, bytes(self.args))
            self.started = True
        elif self.args:
            self.ctl.log[-1] = (self.cmd, self.ctl.log[-1][1] + bytes(self.args))
            self.ctl.more_data(self.cmd, bytes(self.args))
        self.args = bytearray()


def emulate(panel: str, record: Path, keep: int | None = None) -> Emulator:
    emu = Emulator(panel, keep=keep)
    for ev in read_record(record):
        emu.feed(*ev)
    emu.flush()
    return emu


def run_scenes(panel: str, record: Path, heap: str = "256k", only: str | None = None, partial: bool = False) -> None:
    """Render every scene of host_tests/display/scenes.py on MicroPython."""
    env = dict(os.environ)
    env["MICROPYPATH"] = ":".join(
        str(p) for p in (ROOT / "host_tests" / "display", ROOT / "firmware", ROOT / "boards" / "unix")
    )
    with tempfile.TemporaryDirectory(prefix="panel-") as tmp:
        env.setdefault("IHD_STATE", str(Path(tmp) / "state"))
        args = [str(mpruntime.binary()), "-X", f"heapsize={heap}", str(SCENES), panel, str(record)]
        args += [only or "all", "partial" if partial else "full"]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, cwd=tmp)
    if proc.returncode != 0:
        raise RuntimeError(f"scenes.py failed on MicroPython ({panel}):\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def render_scenes(panel: str, only: str | None = None, partial: bool = False) -> Emulator:
    """Scenes -> emulator with one frame per scene. partial=True refreshes
    every scene after the first with a partial (differential) update."""
    with tempfile.TemporaryDirectory(prefix="panel-") as tmp:
        rec = Path(tmp) / "bus.rec"
        run_scenes(panel, rec, only=only, partial=partial)
        return emulate(panel, rec)


def save(img: Image.Image, path: Path, scale: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    img.save(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode", help="print the command log of a record")
    d.add_argument("record", type=Path)
    d.add_argument("--panel", choices=PANELS, default="ssd1680_296x128")
    r = sub.add_parser("render", help="one image per marker of a record")
    r.add_argument("record", type=Path)
    r.add_argument("--panel", choices=PANELS, default="ssd1680_296x128")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--format", choices=("png", "pbm"), default="png")
    r.add_argument("--last", type=int, help="write only the last N snapshots")
    s = sub.add_parser("scenes", help="render the test scenes of one panel")
    s.add_argument("--panel", choices=PANELS, default="ssd1680_296x128")
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--format", choices=("png", "pbm"), default="png")
    s.add_argument("--only", help="render just this scene")
    p = sub.add_parser("previews", help="PNG previews of every scene on every panel")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "screens")
    p.add_argument("--scale", type=int, default=2)
    args = ap.parse_args(argv)

    if args.cmd == "decode":
        emu = emulate(args.panel, args.record)
        for c, data in emu.ctl.log:
            if c == RESET:
                print("reset")
                continue
            shown = data.hex(" ") if len(data) <= 16 else f"{len(data)} bytes"
            print(f"0x{c:02X} {shown}")
    elif args.cmd in ("render", "scenes"):
        if args.cmd == "render":
            if not args.record.exists():
                raise SystemExit(f"panel: {args.record} not found")
            emu = emulate(args.panel, args.record, keep=args.last)
        else:
            emu = render_scenes(args.panel, args.only)
        for name, img in emu.frames:
            save(img, args.out / f"{name}.{args.format}")
        print(f"panel: {len(emu.frames)} images in {args.out} ({emu.marks} snapshots in the record)")
    else:
        total = 0
        for panel in PANELS:
            print(f"panel: rendering scenes on {panel} ...", flush=True)
            emu = render_scenes(panel)
            for name, img in emu.frames:
                save(img, args.out / panel / f"{name}.png", args.scale)
            total += len(emu.frames)
            report_errors(emu)
        print(f"panel: {total} previews in {args.out}")
        return 0
    return report_errors(emu)


def report_errors(emu: Emulator) -> int:
    ctl = emu.ctl
    print(f"panel: {ctl.full} full and {ctl.partial} partial refreshes")
    for e in ctl.errors:
        print(f"panel: ERROR {e}", file=sys.stderr)
    return 1 if ctl.errors else 0


if __name__ == "__main__":
    sys.exit(main())
