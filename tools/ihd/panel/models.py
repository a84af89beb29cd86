"""Controller models for ihd panel: SSD1680 and UC8151/IL0373 as their datasheets describe them.

Each model takes the command/data stream (Controller.command, more_data,
ram_data, hw_reset) and keeps what the glass shows (`glass`, rendered by
image()), refresh counts, the command log and `errors`: anything a real
controller would reject or ignore. ihd panel frames the recorded bus
into these calls.
"""

from __future__ import annotations

from PIL import Image

RESET = -1  # pseudo-command in Controller.log: a hardware reset pulse
GLASS_TO_GREY = bytes([255, 0] + [0] * 254)  # glass 1 = black
# RAM byte -> 8 glass values (1 = black) for the sources it holds, MSB first,
# for RAM that stores 1 = white.
INK = [bytes(0 if (b >> (7 - i)) & 1 else 1 for i in range(8)) for b in range(256)]
INK_INVERTED = [bytes((b >> (7 - i)) & 1 for i in range(8)) for b in range(256)]  # RAM 1 = black


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
