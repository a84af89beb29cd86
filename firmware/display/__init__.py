# Display package: e-ink panel drivers (ssd1680, uc8151), fonts and text,
# the live and diagnostics screens, the refresh policy (policy.py) and the
# Display that ties them together (ui.py). See docs/display.md.
#
# open_panel() builds the board's panel from board.PANEL, PANEL_SPI and
# PANEL_PINS; the GUI only ever sees the FrameBuffer it returns.


def driver(name):
    # Panel name ("ssd1680_296x128", "ssd1680_250x122", "uc8151_296x128")
    # -> driver class.
    if name.startswith("ssd1680_"):
        from display.ssd1680 import SSD1680

        return SSD1680
    if name.startswith("uc8151_"):
        from display.uc8151 import UC8151

        return UC8151
    raise ValueError("unknown panel %r" % name)


def open_panel(name=None, busy_source=None):
    import board
    import hal

    name = name or board.PANEL
    cls = driver(name)
    pins = board.PANEL_PINS
    kw = {}
    if busy_source is not None:
        kw["source"] = busy_source
    elif hal.PORT == "unix":
        # Unix HAL: the bus is recorded, no glass answers; the emulated
        # panel is always ready. (Not by sys.platform: the ESP32 HAL also
        # runs on the Unix port, over the ESP32 port emulation.)
        idle = cls.BUSY_LEVEL ^ 1
        kw["source"] = lambda: idle
    busy = hal.Pin(pins["busy"], hal.Pin.IN, **kw)
    cs = hal.Pin(pins["cs"], hal.Pin.OUT, value=1)
    dc = hal.Pin(pins["dc"], hal.Pin.OUT, value=0)
    rst = hal.Pin(pins["rst"], hal.Pin.OUT, value=1)
    return cls(hal.Spi(board.PANEL_SPI), cs, dc, rst, busy, name)
