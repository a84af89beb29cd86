# UC8151 / IL0373 e-ink controller (UltraChip / Good Display): 2.9"
# 296x128 glass. Owns the command sequence; drawing is framebuf's.
#
# Sequence (UC8151C/IL0373 datasheets, "reference program flow"):
#   wake:   hardware reset, wait busy (BUSY_N low while busy); power setting
#           0x01; booster soft start 0x06; power on 0x04, wait; panel
#           setting 0x00 (128x296, KW = black/white mode, gate scan and
#           source shift on, no soft reset); PLL 0x30; resolution 0x61
#           (HRES 128 sources, VRES 296 gates); VCOM and data interval 0x50
#           (white border, default data polarity 1 = white); VCOM DC 0x82.
#   full:   panel setting with LUTs from OTP; old data 0x10, new data 0x13,
#           display refresh 0x12, wait.
#   partial: panel setting with LUTs from registers, LUT 0x20..0x24 where
#           white->white and black->black do not drive (only changed pixels
#           move, no flashing); partial in 0x91, window 0x90 (the gates
#           whose pixels changed), old data 0x10 and new data 0x13 for the
#           window, refresh 0x12, wait, partial out 0x92.
#   sleep:  power off 0x02, wait; deep sleep 0x07 with check code 0xA5.
#
# The controller loses its SRAM in deep sleep, and a differential update
# needs the old image, so this driver keeps a copy of the frame on the glass
# (`_shown`, one more frame of RAM). It also gives the exact changed window.
# RAM rows are gate lines of 16 source bytes: gate G holds screen column
# x = 295 - G, byte k is our page k through epd.TO_PANEL.
from display.epd import TO_PANEL, Epd

_POWER = b"\x03\x00\x2b\x2b\x09"  # VDS/VDG internal, VDH/VDL +-11 V, VDHR
_BOOSTER = b"\x17\x17\x17"  # soft start 10 ms, strength 3, off time 6.58 us
PSR_OTP = 0x9F  # RES=128x296, LUT from OTP, KW mode, UD, SHL, SHD_N, RST_N
PSR_REG = 0xBF  # as PSR_OTP, LUT from registers
_PLL = b"\x29"  # 50 Hz frame rate
_RES = b"\x80\x01\x28"  # HRES 128, VRES 296
_CDI = b"\x97"  # border white (VBD=10), DDX=01 (1 = white), interval 10
_VCOM_DC = b"\x12"  # -1.0 V
_SLEEP_CHECK = b"\xa5"


def _lut(level, n):
    # One drive phase of 10 frames at `level` (2 bits per phase), padded.
    b = bytearray(n)
    b[0] = level
    b[1] = 10
    b[5] = 1
    return bytes(b)


# Differential waveform: VCOM at DC, only transitions between colours drive.
LUT_VCOM = _lut(0x00, 44)
LUT_WW = bytes(42)
LUT_BW = _lut(0x80, 42)  # black -> white: VDL phase
LUT_WB = _lut(0x40, 42)  # white -> black: VDH phase
LUT_BB = bytes(42)


class UC8151(Epd):
    BUSY_LEVEL = 0  # BUSY_N low while the controller works

    def __init__(self, spi, cs, dc, rst, busy, name="uc8151_296x128"):
        super().__init__(spi, cs, dc, rst, busy, 296, 128, 296, 128)
        self.name = name
        self._shown = bytearray(len(self.buf))  # what the glass shows
        self._row = bytearray(self.pages)
        self._psr = bytearray(1)
        self._ptl = bytearray(7)

    def _wake(self):
        self._reset()
        yield
        self._cmd(0x01, _POWER)
        self._cmd(0x06, _BOOSTER)
        self._cmd(0x04)
        yield
        self._psr[0] = PSR_OTP
        self._cmd(0x00, self._psr)
        self._cmd(0x30, _PLL)
        self._cmd(0x61, _RES)
        self._cmd(0x50, _CDI)
        self._cmd(0x82, _VCOM_DC)
        self.asleep = False

    def _changed_columns(self):
        # First and last screen column that differ from the glass, or None.
        buf, shown, w = self.buf, self._shown, self.width
        lo, hi = w, -1
        for p in range(self.pages):
            base = p * w
            for x in range(w):
                if buf[base + x] != shown[base + x]:
                    if x < lo:
                        lo = x
                    if x > hi:
                        hi = x
        return None if hi < 0 else (lo, hi)

    def _send(self, cmd, frame, x0, x1):
        # Gate lines for columns x1..x0 (gate order ascending), one row each.
        self._cmd(cmd)
        row, w, pages = self._row, self.width, self.pages
        for x in range(x1, x0 - 1, -1):
            for k in range(pages):
                row[k] = TO_PANEL[frame[k * w + x]]
            self._data(row)

    def _update(self, full):
        if not self._known:
            full = True  # no old image: only a full refresh is defined
            self._known = False  # (None: lent before this update, epd.lend())
        span = (0, self.width - 1) if full else self._changed_columns()
        if span is None:
            return  # nothing differs from the glass
        if self.asleep:
            yield from self._wake()
        x0, x1 = span
        if full:
            self._psr[0] = PSR_OTP
            self._cmd(0x00, self._psr)
            self._send(0x10, self._shown, x0, x1)
            self._send(0x13, self.buf, x0, x1)
            self._cmd(0x12)
            yield
            self.full_refreshes += 1
        else:
            self._psr[0] = PSR_REG
            self._cmd(0x00, self._psr)
            self._cmd(0x20, LUT_VCOM)
            self._cmd(0x21, LUT_WW)
            self._cmd(0x22, LUT_BW)
            self._cmd(0x23, LUT_WB)
            self._cmd(0x24, LUT_BB)
            g0, g1 = self.gates - 1 - x1, self.gates - 1 - x0
            p = self._ptl
            p[0] = 0
            p[1] = self.sources - 1
            p[2] = g0 >> 8
            p[3] = g0 & 0xFF
            p[4] = g1 >> 8
            p[5] = g1 & 0xFF
            p[6] = 0x01  # PT_SCAN: scan only inside the window
            self._cmd(0x91)
            self._cmd(0x90, p)
            self._send(0x10, self._shown, x0, x1)
            self._send(0x13, self.buf, x0, x1)
            self._cmd(0x12)
            yield
            self._cmd(0x92)
            self.partial_refreshes += 1
        self._shown[:] = self.buf
        self._known = self._known is not None  # None: the frame was lent meanwhile
        self._cmd(0x02)
        yield
        self.sleep()

    def sleep(self):
        self._cmd(0x07, _SLEEP_CHECK)
        self.asleep = True

    def memory(self):
        return len(self.buf) + len(self._shown) + len(self._row)
