# SSD1680 e-ink controller (Solomon Systech): 2.9" 296x128 and 2.13"
# 250x122 glass. Owns the command sequence; drawing is framebuf's.
#
# Sequence (SSD1680 datasheet, "typical operating sequence"):
#   wake:   hardware reset; SW reset 0x12; wait busy; driver output 0x01
#           (gates-1, GD/SM/TB = 0); data entry 0x11; RAM X 0x44, RAM Y 0x45
#           windows; border 0x3C; display update control 0x21 (RAM normal,
#           sources S8..S167); internal temperature sensor 0x18 = 0x80.
#   frame:  RAM counters 0x4E/0x4F; write RAM 0x24 (new, B/W).
#   update: display update control 2 0x22 = 0xF7 (clock + analog on, load
#           temperature and LUT, display mode 1 = full) or 0xFF (display
#           mode 2 = differential partial), master activation 0x20, wait busy.
#   after:  counters again, write RAM 0x26 with the same frame: mode 2
#           drives only pixels whose 0x24 bit differs from 0x26, so 0x26
#           must hold what the glass shows now.
#   sleep:  deep sleep 0x10 = 0x01 (mode 1 keeps both RAMs, so the next
#           partial update still has the old image after the wake reset).
#
# Address mapping: data entry 0x05 = X (source bytes) increment, Y (gates)
# decrement, Y first (AM=1). Our MONO_VLSB page p, column x lands at RAM X
# byte p, gate gates-1-x: the frame goes out page after page in memory
# order, each byte through epd.TO_PANEL, through one page-sized buffer.
from display.epd import Epd

_DATA_ENTRY = b"\x05"
_BORDER = b"\x05"  # VBD: follow LUT1 (white border)
_UPDATE_CTRL1 = b"\x00\x80"  # B/W and red RAM normal; source output S8..S167
_TEMP_INTERNAL = b"\x80"
UPDATE_FULL = 0xF7
UPDATE_PARTIAL = 0xFF
_DEEP_SLEEP_KEEP_RAM = b"\x01"

# name -> (width, height) on screen; gates = width, sources = height.
GEOMETRY = {"ssd1680_296x128": (296, 128), "ssd1680_250x122": (250, 122)}


class SSD1680(Epd):
    BUSY_LEVEL = 1  # BUSY pin high while the controller works

    def __init__(self, spi, cs, dc, rst, busy, name="ssd1680_296x128"):
        w, h = GEOMETRY[name]
        super().__init__(spi, cs, dc, rst, busy, w, h, w, h)
        self.name = name
        self._page = bytearray(w)
        last = w - 1
        self._ywin = bytes((last & 0xFF, last >> 8, 0, 0))
        self._ystart = bytes((last & 0xFF, last >> 8))
        self._xwin = bytes((0, self.pages - 1))
        self._mux = bytes((last & 0xFF, last >> 8, 0))
        self._ctl2 = bytearray(1)

    def _wake(self):
        self._reset()
        yield
        self._cmd(0x12)  # SW reset: registers to defaults, RAM kept
        yield
        self._cmd(0x01, self._mux)
        self._cmd(0x11, _DATA_ENTRY)
        self._cmd(0x44, self._xwin)
        self._cmd(0x45, self._ywin)
        self._cmd(0x3C, _BORDER)
        self._cmd(0x21, _UPDATE_CTRL1)
        self._cmd(0x18, _TEMP_INTERNAL)
        self.asleep = False

    def _write_ram(self, cmd):
        self._cmd(0x4E, b"\x00")
        self._cmd(0x4F, self._ystart)
        self._cmd(cmd)
        page = self._page
        for p in range(self.pages):
            self._panel_bytes_page(p, page)
            self._data(page)

    def _update(self, full):
        if not self._known:
            full = True  # old image unknown: only a full refresh is defined
            self._known = False  # (None: lent before this update, epd.lend())
        if self.asleep:
            yield from self._wake()
        self._write_ram(0x24)
        self._ctl2[0] = UPDATE_FULL if full else UPDATE_PARTIAL
        self._cmd(0x22, self._ctl2)
        self._cmd(0x20)
        yield
        if full:
            self.full_refreshes += 1
        else:
            self.partial_refreshes += 1
        self._write_ram(0x26)
        self._known = self._known is not None  # None: the frame was lent meanwhile
        self.sleep()

    def sleep(self):
        self._cmd(0x10, _DEEP_SLEEP_KEEP_RAM)
        self.asleep = True

    def memory(self):
        return len(self.buf) + len(self._page)
