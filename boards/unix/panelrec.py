# Unix board only: record the display bus for ihd panel, so simulations
# can show what the e-ink glass shows.
#
# Record format (ihd panel reads it):
#   b"P" pin(u8) level(u8) | b"S" len(u32 LE) bytes | b"M" len(u8) name
# A marker after each refresh names the snapshot. Without a path nothing is
# recorded and no sink is installed: the HAL then skips the copy of every
# SPI write and the call per pin change (long soaks, CPU figures).
import struct

import hal


class PanelRecorder:
    def __init__(self, path=None):
        self.f = open(path, "wb") if path else None
        self.spi_bytes = 0
        self._hdr = bytearray(5)
        self._hdr[0] = 0x53  # "S"
        self._pin = bytearray(3)
        self._pin[0] = 0x50  # "P"
        hal.set_bus_sink(self if self.f else None)

    def __call__(self, kind, a, b):
        f = self.f
        if kind == "pin":
            if f:
                self._pin[1] = a
                self._pin[2] = b
                f.write(self._pin)
            return
        self.spi_bytes += len(a)
        if f:
            struct.pack_into("<I", self._hdr, 1, len(a))
            f.write(self._hdr)
            f.write(a)

    def mark(self, name):
        if self.f:
            n = name.encode()
            self.f.write(b"M" + bytes((len(n),)) + n)
            self.f.flush()
