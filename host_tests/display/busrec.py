# MicroPython side of the panel emulator: records the Unix HAL's bus stream
# (hal.set_bus_sink) into the record format ihd panel reads:
#   b"P" pin level | b"S" len(u32 LE) bytes | b"M" len name (snapshot marker)
import struct

import hal


class Recorder:
    def __init__(self, path):
        self.f = open(path, "wb")
        self.hdr = bytearray(5)
        self.pin = bytearray(3)
        self.pin[0] = 0x50  # "P"
        self.hdr[0] = 0x53  # "S"
        hal.set_bus_sink(self)

    def __call__(self, kind, a, b):
        if kind == "pin":
            self.pin[1] = a
            self.pin[2] = b
            self.f.write(self.pin)
        else:
            struct.pack_into("<I", self.hdr, 1, len(a))
            self.f.write(self.hdr)
            self.f.write(a)

    def mark(self, name):
        n = name.encode()
        self.f.write(b"M" + bytes((len(n),)) + n)

    def close(self):
        hal.set_bus_sink(None)
        self.f.close()
