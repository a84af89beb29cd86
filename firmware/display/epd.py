# E-ink panel base: a framebuf.FrameBuffer the screens draw on, plus the
# SPI/pin plumbing shared by the controller drivers (ssd1680.py, uc8151.py).
#
# The screens see a landscape width x height canvas in MONO_VLSB (1 = ink).
# Every supported panel is a portrait glass (sources across the short side,
# gates along the long one) mounted rotated 90 degrees clockwise, so screen
# pixel (x, y) is gate G = gates-1-x, source S = y. In MONO_VLSB one byte is
# 8 vertical pixels, i.e. 8 consecutive sources: the byte a controller wants
# is our byte with its bits reversed (controllers put the first source in
# the MSB) and inverted (controllers store 1 = white). One 256-byte table
# does both, so no panel needs a rotated copy of the frame.
#
# An update is a generator (`_update`) that yields whenever the panel is
# busy; show() drives it blocking, ashow() with asyncio, so both share one
# command sequence. Counters: full_refreshes, partial_refreshes.
import time

import framebuf
import micropython

import hal


def _to_panel(b):
    r = 0
    for i in range(8):
        if b & (1 << i):
            r |= 0x80 >> i
    return ~r & 0xFF


# Screen byte -> controller byte: bit-reversed, inverted.
TO_PANEL = bytes(_to_panel(b) for b in range(256))


@micropython.viper
def _convert(src, base: int, n: int, table, out):
    # out[x] = table[src[base + x]] for x < n: native code, because every
    # update converts the whole frame twice (0.6 ms a pass when interpreted).
    s = ptr8(src)  # noqa: F821 (viper built-in)
    t = ptr8(table)  # noqa: F821
    o = ptr8(out)  # noqa: F821
    for x in range(n):
        o[x] = t[s[base + x]]


class PanelTimeout(OSError):
    pass


class Epd(framebuf.FrameBuffer):
    BUSY_LEVEL = 1  # level of the busy pin while the controller works
    BUSY_TIMEOUT_MS = 10_000  # longest datasheet refresh is a few seconds

    def __init__(self, spi, cs, dc, rst, busy, width, height, gates, sources):
        self.width = width
        self.height = height
        self.gates = gates
        self.sources = sources
        self.pages = (height + 7) // 8
        self.buf = bytearray(width * self.pages)
        super().__init__(self.buf, width, height, framebuf.MONO_VLSB)
        self._spi = spi
        self._cs = cs
        self._dc = dc
        self._rst = rst
        self._busy = busy
        self._one = bytearray(1)
        self.asleep = True  # state unknown at boot: wake with a reset
        # controller holds the glass image as "old"; None: the frame was lent
        # (lend()) during the update under way, which then leaves it False
        self._known = False
        self.full_refreshes = 0
        self.partial_refreshes = 0
        cs(1)
        rst(1)

    # -- bus -------------------------------------------------------------------
    def _cmd(self, c, data=None):
        self._one[0] = c
        self._cs(0)
        self._dc(0)
        self._spi.write(self._one)
        if data is not None:
            self._dc(1)
            self._spi.write(data)
        self._cs(1)

    def _data(self, buf):
        # More data for the command just sent (RAM writes come in chunks).
        self._cs(0)
        self._dc(1)
        self._spi.write(buf)
        self._cs(1)

    def busy(self):
        return self._busy.value() == self.BUSY_LEVEL

    def _reset(self):
        # Hardware reset (active low); also the only way out of deep sleep.
        self._rst(0)
        hal_sleep_ms(10)
        self._rst(1)
        hal_sleep_ms(10)

    # -- the frame as an OTA arena ---------------------------------------------
    def lend(self):
        # The frame buffer is idle while an OTA update runs (the app draws
        # nothing then): the updater uses it as its arena (app/otalazy.py),
        # which saves a 4 KB buffer held for the device's life. Called as
        # each update starts. The controller's old image is then unknown
        # (an update under way may send the updater's bytes as the old
        # frame): the next update is a full refresh; an update this call
        # overlapped does not mark the image known when it ends.
        self._known = None
        return self.buf

    # -- updates ---------------------------------------------------------------
    def _update(self, full):
        # Each driver's generator: the command sequence of one update,
        # yielding whenever the controller must be waited for.
        raise NotImplementedError
        yield

    def show(self, full=False):
        # Send the frame and refresh; returns when the panel sleeps again.
        try:
            for _ in self._update(full):
                t0 = hal.clock.ticks_ms()
                while self.busy():
                    self._check_timeout(t0)
                    hal_sleep_ms(5)
        except BaseException:
            self._lost()
            raise

    async def ashow(self, full=False):
        # As show(), yielding to other tasks while the panel is busy.
        import asyncio

        try:
            for _ in self._update(full):
                t0 = hal.clock.ticks_ms()
                while self.busy():
                    self._check_timeout(t0)
                    await asyncio.sleep_ms(20)
        except BaseException:  # also CancelledError: the update is incomplete
            self._lost()
            raise

    def _check_timeout(self, t0):
        if time.ticks_diff(hal.clock.ticks_ms(), t0) > self.BUSY_TIMEOUT_MS:
            raise PanelTimeout("panel busy for more than %d ms" % self.BUSY_TIMEOUT_MS)

    def _lost(self):
        # An update stopped half way: the controller state and its old image
        # are unknown, so the next update starts with a reset and a full.
        self.asleep = True
        self._known = False

    def _panel_bytes_page(self, p, out):
        # Page p (8 rows) as controller bytes along the gates, gate-1-x order.
        _convert(self.buf, p * self.width, self.width, TO_PANEL, out)

    def memory(self):
        # Bytes this driver holds for frames (benchmarks, heap budget tests).
        return len(self.buf)


def hal_sleep_ms(ms):
    time.sleep_ms(hal.clock.real_ms(ms))
