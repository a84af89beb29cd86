#!/usr/bin/env python3
"""E-ink panel emulator: replays the SPI/pin stream the firmware sent through
the Unix HAL (hal.set_bus_sink) into a model of the controller, and renders
what the glass shows as PBM or PNG.

The models interpret the controllers' command sets the way their datasheets
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

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = ROOT / ".venv" / "bin" / "micropython"
SCENES = ROOT / "host_tests" / "display" / "scenes.py"

RESET = -1  # pseudo-command in Controller.log: a hardware reset pulse
GLASS_TO_GREY = bytes([255, 0] + [0] * 254)  # glass 1 = black
# RAM byte -> 8 glass values (1 = black) for the sources it holds, MSB first,
# for RAM that stores 1 = white.
INK = [bytes(0 if (b >> (7 - i)) & 1 else 1 for i in range(8)) for b in range(256)]
INK_INVERTED = [bytes((b >> (7 - i)) & 1 for i in range(8)) for b in range(256)]  # RAM 1 = black

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


class Controller:
    """Common part: glass (1 = black) and refresh/error bookkeeping."""

    def __init__(self, gates: int, sources: int):
        self.gates = gates
        self.sources = sources
        self.glass = bytearray(gates * sources)  # row-major, rows = gates
        self.errors: list[str] = []
        self.full = 0
        self.partial = 0
        self.asleep = False
        self.log: list[tuple[int, bytes]] = []  # (command, its data), in order

    def error(self, msg: str) -> None:
        self.errors.append(f"{type(self).__name__}: {msg}")

    def image(self) -> Image.Image:
        grey = bytes(self.glass).translate(GLASS_TO_GREY)
        img = Image.frombytes("L", (self.sources, self.gates), grey).convert("1")
        return img.transpose(Image.Transpose.ROTATE_270)


class SSD1680(Controller):
    RAM_X_BYTES = 22  # 176 sources
    RAM_Y = 296

    def __init__(self, gates: int, sources: int):
        super().__init__(gates, sources)
        n = self.RAM_X_BYTES * self.RAM_Y
        self.bw = bytearray(b"\xff" * n)
        self.red = bytearray(b"\xff" * n)
        self.defaults()

    def defaults(self) -> None:
        self.entry = 0x03
        self.xwin = (0, self.RAM_X_BYTES - 1)
        self.ywin = (0, self.RAM_Y - 1)
        self.x = 0
        self.y = 0
        self.mux = 0x127 + 1
        self.tb = False
        self.ctrl1 = (0x00, 0x00)
        self.ctrl2 = 0xFF
        self.target = None

    def hw_reset(self) -> None:
        self.defaults()
        self.asleep = False  # RAM is kept through reset

    def command(self, c: int, data: bytes) -> None:
        if c == 0x12:
            self.defaults()
        elif c == 0x01:
            self.mux = (data[0] | data[1] << 8) + 1
            self.tb = bool(data[2] & 1) if len(data) > 2 else False  # TB: scan G(N-1) first
        elif c == 0x11:
            self.entry = data[0] & 7
        elif c == 0x44:
            self.xwin = (data[0] & 0x3F, data[1] & 0x3F)
        elif c == 0x45:
            self.ywin = (data[0] | (data[1] & 1) << 8, data[2] | (data[3] & 1) << 8)
        elif c == 0x4E:
            self.x = data[0] & 0x3F
        elif c == 0x4F:
            self.y = data[0] | (data[1] & 1) << 8
        elif c == 0x21:
            self.ctrl1 = (data[0], data[1] if len(data) > 1 else 0)
        elif c == 0x22:
            self.ctrl2 = data[0]
        elif c == 0x20:
            self.activate()
        elif c == 0x10:
            if data[:1] in (b"\x01", b"\x03"):
                self.asleep = True
        elif c in (0x24, 0x26):
            self.target = self.bw if c == 0x24 else self.red
            self.ram_data(data)
        elif c in (0x3C, 0x18, 0x03, 0x04, 0x2C, 0x32, 0x37, 0x3F, 0x0C):
            pass  # analog/waveform settings: no effect on the image model
        else:
            self.error(f"unknown command 0x{c:02X}")

    def more_data(self, c: int, data: bytes) -> None:
        if c in (0x24, 0x26):
            self.ram_data(data)

    def ram_data(self, data: bytes) -> None:
        # Runs along the fast axis up to the window edge go in one slice
        # assignment; the counter then wraps and steps the other axis.
        ram, xb = self.target, self.RAM_X_BYTES
        xinc, yinc, yfirst = self.entry & 1, self.entry & 2, self.entry & 4
        i = 0
        while i < len(data):
            if not (0 <= self.x < xb and 0 <= self.y < self.RAM_Y):
                self.error(f"RAM write outside memory at X={self.x} Y={self.y}")
                return
            if yfirst:
                end = self.ywin[1]
                room = (end - self.y + 1) if yinc else (self.y - end + 1)
                step = xb if yinc else -xb
                limit = self.RAM_Y - self.y if yinc else self.y + 1
            else:
                end = self.xwin[1]
                room = (end - self.x + 1) if xinc else (self.x - end + 1)
                step = 1 if xinc else -1
                limit = xb - self.x if xinc else self.x + 1
            n = min(max(room, 1), len(data) - i, limit)
            start = self.y * xb + self.x
            stop = start + step * n
            ram[start : stop if stop >= 0 else None : step] = data[i : i + n]
            i += n
            if room < 1:  # counter already past the window edge: byte by byte
                for _ in range(n):
                    if yfirst:
                        if self.step_y(yinc):
                            self.step_x(xinc)
                    elif self.step_x(xinc):
                        self.step_y(yinc)
            elif n == room:  # reached the edge: wrap, step the other axis
                if yfirst:
                    self.y = self.ywin[0]
                    self.step_x(xinc)
                else:
                    self.x = self.xwin[0]
                    self.step_y(yinc)
            elif yfirst:
                self.y += n if yinc else -n
            else:
                self.x += n if xinc else -n

    def step_x(self, inc) -> bool:
        # Move X one byte; at the window edge wrap and report it.
        self.x += 1 if inc else -1
        if (inc and self.x > self.xwin[1]) or (not inc and self.x < self.xwin[1]):
            self.x = self.xwin[0]
            return True
        return False

    def step_y(self, inc) -> bool:
        self.y += 1 if inc else -1
        if (inc and self.y > self.ywin[1]) or (not inc and self.y < self.ywin[1]):
            self.y = self.ywin[0]
            return True
        return False

    def ink_row(self, ram: bytearray, gate: int) -> bytes:
        # Glass values (1 = black) of one gate line's visible sources. RAM
        # stores 1 = white; display update control 1 A[3:2]: 0 normal,
        # 4 bypass as 0, 8 inverse.
        opt = self.ctrl1[0] & 0x0C
        line = ram[gate * self.RAM_X_BYTES : (gate + 1) * self.RAM_X_BYTES]
        if opt == 4:
            line = bytes(len(line))
        elif opt == 8:
            line = bytes(b ^ 0xFF for b in line)
        return b"".join(INK[b] for b in line)[: self.sources]

    def activate(self) -> None:
        c = self.ctrl2
        if not c & 0x04:
            return  # clock/analog/LUT housekeeping only: nothing displayed
        if (c & 0xC0) != 0xC0:
            self.error(f"display update 0x{c:02X} without clock and analog enabled")
        if self.mux != self.gates:
            self.error(f"driver output control sets {self.mux} gates, glass has {self.gates}")
        if self.ctrl1[1] != 0x80:
            self.error(f"display update control 1 B=0x{self.ctrl1[1]:02X}: glass is wired to S8..S167 (0x80)")
        mode2 = bool(c & 0x08)
        g, n = self.glass, self.sources
        for gate in range(self.gates):
            new = self.ink_row(self.bw, gate)
            row = self.gates - 1 - gate if self.tb else gate
            cur = g[row * n : (row + 1) * n]
            if mode2:
                old = self.ink_row(self.red, gate)
                if new == old:
                    continue  # differential: only changed pixels are driven
                new = bytes(a if a != b else c for a, b, c in zip(new, old, cur, strict=True))
            g[row * n : (row + 1) * n] = new
        if mode2:
            self.partial += 1
        else:
            self.full += 1


class UC8151(Controller):
    def __init__(self, gates: int, sources: int):
        super().__init__(gates, sources)
        self.row = sources // 8
        n = self.row * gates
        self.old = bytearray(n)
        self.new = bytearray(n)
        self.defaults()

    def defaults(self) -> None:
        self.psr = 0x1F
        self.cdi = 0xD7
        self.tres = None
        self.powered = False
        self.partial_mode = False
        self.win = (0, self.sources - 1, 0, self.gates - 1)
        self.luts: dict[int, bytes] = {}
        self.ptr = 0
        self.target = None

    def hw_reset(self) -> None:
        if self.asleep:
            # Deep sleep loses the SRAM: model it as a pattern no image has.
            self.old[:] = b"\x55" * len(self.old)
            self.new[:] = b"\xaa" * len(self.new)
        self.defaults()
        self.asleep = False

    def command(self, c: int, data: bytes) -> None:
        if c == 0x00:
            self.psr = data[0]
        elif c in (0x01, 0x06, 0x30, 0x82, 0x03, 0x60, 0x41):
            pass  # voltages, booster, frame rate, VCOM DC, timing
        elif c == 0x04:
            self.powered = True
        elif c == 0x02:
            self.powered = False
        elif c == 0x07:
            if data[:1] == b"\xa5":
                self.asleep = True
            else:
                self.error("deep sleep 0x07 without check code 0xA5 ignored")
        elif c == 0x61:
            self.tres = (data[0], data[1] << 8 | data[2])
        elif c == 0x50:
            self.cdi = data[0]
        elif c == 0x90:
            hrst, hred = data[0] & 0xF8, data[1] | 0x07
            vrst, vred = data[2] << 8 | data[3], data[4] << 8 | data[5]
            self.win = (hrst, hred, vrst, vred)
        elif c == 0x91:
            self.partial_mode = True
        elif c == 0x92:
            self.partial_mode = False
        elif c in (0x10, 0x13):
            self.target = self.old if c == 0x10 else self.new
            self.ptr = 0
            self.ram_data(data)
        elif c == 0x11:
            pass  # data stop
        elif 0x20 <= c <= 0x24:
            want = 44 if c == 0x20 else 42
            if len(data) != want:
                self.error(f"LUT 0x{c:02X} has {len(data)} bytes, expected {want}")
            self.luts[c] = bytes(data)
        elif c == 0x12:
            self.refresh()
        else:
            self.error(f"unknown command 0x{c:02X}")

    def more_data(self, c: int, data: bytes) -> None:
        if c in (0x10, 0x13):
            self.ram_data(data)
        elif 0x20 <= c <= 0x24:
            self.luts[c] = self.luts.get(c, b"") + bytes(data)

    def window(self):
        if self.partial_mode:
            return self.win
        return (0, self.sources - 1, 0, self.gates - 1)

    def ram_data(self, data: bytes) -> None:
        hrst, hred, vrst, vred = self.window()
        per_row = (hred - hrst + 1) // 8
        for b in data:
            g, k = vrst + self.ptr // per_row, hrst // 8 + self.ptr % per_row
            if g > vred or g >= self.gates or k >= self.row:
                self.error("data beyond the window/resolution")
                return
            self.target[g * self.row + k] = b
            self.ptr += 1

    @staticmethod
    def drives(lut: bytes | None) -> bool:
        # A LUT moves the pixel if some phase has a level and a frame count.
        if not lut:
            return False
        for i in range(0, len(lut) - 5, 6):
            levels, frames = lut[i], lut[i + 1 : i + 5]
            for ph in range(4):
                if (levels >> (6 - 2 * ph)) & 3 and frames[ph]:
                    return True
        return False

    def refresh(self) -> None:
        if not self.powered:
            self.error("display refresh 0x12 while power is off (send 0x04 first)")
            return
        if not self.psr & 0x10:
            self.error("panel setting selects KWR (red) mode; this glass is black/white")
        if self.tres is not None and self.tres != (self.sources, self.gates):
            self.error(f"resolution {self.tres} does not match the glass {(self.sources, self.gates)}")
        white_is_1 = (self.cdi >> 4) & 1  # DDX[0]
        reg = bool(self.psr & 0x20)
        # Transition LUT per (old, new) as white/black: 0x21 WW, 0x22 BW, 0x23 WB, 0x24 BB.
        move = {
            (1, 1): self.drives(self.luts.get(0x21)),
            (0, 1): self.drives(self.luts.get(0x22)),
            (1, 0): self.drives(self.luts.get(0x23)),
            (0, 0): self.drives(self.luts.get(0x24)),
        }
        hrst, hred, vrst, vred = self.window()
        ud, shl = self.psr & 0x08, self.psr & 0x04
        conv = INK if white_is_1 else INK_INVERTED
        n, lo, hi = self.sources, hrst, min(hred, self.sources - 1) + 1
        # move[] keyed by (old, new) as glass values (1 = black).
        drive = {(1 - o, 1 - w): v for (o, w), v in move.items()}
        for g in range(vrst, min(vred, self.gates - 1) + 1):
            new = b"".join(conv[b] for b in self.new[g * self.row : (g + 1) * self.row])[:n]
            row = g if ud else self.gates - 1 - g
            cur = bytearray(self.glass[row * n : (row + 1) * n])
            if not shl:
                cur.reverse()  # work in source order; mirror back below
            if reg:
                old = b"".join(conv[b] for b in self.old[g * self.row : (g + 1) * self.row])[:n]
                for s in range(lo, hi):
                    if drive[(old[s], new[s])]:
                        cur[s] = new[s]
            else:
                cur[lo:hi] = new[lo:hi]
            if not shl:
                cur.reverse()
            self.glass[row * n : (row + 1) * n] = cur
        if reg and not move[(1, 1)] and not move[(0, 0)]:
            self.partial += 1
        else:
            self.full += 1


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
        args = [str(MICROPYTHON), "-X", f"heapsize={heap}", str(SCENES), panel, str(record)]
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
