# NOR flash emulation for the Unix port: the whole SPI flash chip as a file.
#
# Behaves like the real part, because the store and OTA code must be proven
# against real NOR semantics:
#   * erase sets one 4096-byte sector to 0xFF and is counted per sector;
#   * program can only clear bits; asking for a 0->1 transition raises;
#   * contents and erase counts persist in files, so an emulated reboot
#     (a new process, or a new NorFlash on the same files) sees them;
#   * a power cut can be injected after the Nth program/erase operation.
#     The interrupted operation may be torn: a program writes only a prefix
#     of its bytes, an erase erases only a prefix of its sector. After the
#     cut every further operation raises PowerCut until the flash is reopened.
#
# Contents are never held in RAM (the heap cap of the tests includes this
# emulation): reads and programs go through the file in small chunks.
import micropython
from micropython import const

SECTOR = const(4096)
_CHUNK = const(256)


@micropython.viper
def _sets_bits(old, data, off: int, k: int) -> int:
    # Index of the first byte where data[off + i] would set a bit old[i]
    # does not have (NOR programs only clear bits), or -1.
    o = ptr8(old)  # noqa: F821 (viper built-in)
    d = ptr8(data)  # noqa: F821
    for i in range(k):
        if (o[i] | d[off + i]) != o[i]:
            return i
    return -1


@micropython.viper
def _and_into(new, old, data, off: int, k: int):
    # new[i] = old[i] & data[off + i]: what the cells hold after a program.
    n = ptr8(new)  # noqa: F821
    o = ptr8(old)  # noqa: F821
    d = ptr8(data)  # noqa: F821
    for i in range(k):
        n[i] = o[i] & d[off + i]


class PowerCut(BaseException):
    # BaseException so that firmware's `except Exception` cannot swallow it:
    # a real power cut is not an error the firmware gets to handle.
    pass


class FlashError(Exception):
    pass


class NorFlash:
    def __init__(self, path, size, cut_after=None, torn=None):
        if size % SECTOR:
            raise ValueError("size not a multiple of the sector size")
        self.path = path
        self.size = size
        self.sectors = size // SECTOR
        self.ops = 0  # program + erase operations since open
        self.programs = 0
        self.erases = 0
        self.cut_after = cut_after  # None: no power cut
        self.torn = torn  # bytes of the interrupted op that land (None: none)
        self.dead = False
        self._buf = bytearray(_CHUNK)
        self._new = bytearray(_CHUNK)
        self._f = self._open(path, size, b"\xff")
        self._w = self._open(path + ".wear", self.sectors * 4, b"\x00")

    @staticmethod
    def _open(path, size, fill):
        try:
            f = open(path, "r+b")
        except OSError:
            f = open(path, "w+b")
        f.seek(0, 2)
        have = f.tell()
        if have < size:
            pad = fill * _CHUNK
            while have < size:
                n = min(_CHUNK, size - have)
                f.write(pad if n == _CHUNK else pad[:n])
                have += n
            f.flush()
        return f

    def close(self):
        self._f.close()
        self._w.close()

    # -- reads ---------------------------------------------------------------
    def read(self, addr, buf):
        if addr < 0 or addr + len(buf) > self.size:
            raise FlashError("read out of range")
        self._f.seek(addr)
        self._f.readinto(buf)

    def erase_count(self, sector):
        self._w.seek(sector * 4)
        return int.from_bytes(self._w.read(4), "little")

    def erase_counts(self):
        return [self.erase_count(s) for s in range(self.sectors)]

    # -- power-cut bookkeeping -----------------------------------------------
    def _begin(self):
        # Returns None if the op runs whole, or the byte count that lands if
        # this is the interrupted op.
        if self.dead:
            raise PowerCut("flash is without power")
        if self.cut_after is not None and self.ops >= self.cut_after:
            self.dead = True
            return self.torn or 0
        self.ops += 1
        return None

    # -- writes --------------------------------------------------------------
    def erase(self, sector):
        if not 0 <= sector < self.sectors:
            raise FlashError("erase out of range")
        land = self._begin()
        n = SECTOR if land is None else min(land, SECTOR)
        f = self._f
        f.seek(sector * SECTOR)
        ff = b"\xff" * _CHUNK
        while n > 0:
            k = min(n, _CHUNK)
            f.write(ff if k == _CHUNK else ff[:k])
            n -= k
        f.flush()
        if land is not None:
            raise PowerCut("power cut during erase")
        self.erases += 1
        c = self.erase_count(sector) + 1
        self._w.seek(sector * 4)
        self._w.write(c.to_bytes(4, "little"))
        self._w.flush()

    def program(self, addr, data):
        n = len(data)
        if addr < 0 or addr + n > self.size:
            raise FlashError("program out of range")
        mv = memoryview(data)
        # Check the whole range first: a rejected program changes nothing.
        # (Up to one chunk, the check's read serves the write too: most
        # programs are a record of a few dozen bytes.)
        one = n <= _CHUNK
        self._scan(addr, mv, n, False)
        land = self._begin()
        self._scan(addr, mv, n if land is None else min(land, n), True, one)
        if land is not None:
            raise PowerCut("power cut during program")
        self.programs += 1

    def _scan(self, addr, mv, n, write, have=False):
        # Chunk by chunk: check (write=False) or program (write=True); no
        # allocation per chunk (this runs on every flush of the store).
        # have: self._buf already holds the one chunk at addr.
        f = self._f
        old = self._buf
        new = self._new
        pos = 0
        while pos < n:
            k = min(_CHUNK, n - pos)
            if not have:
                f.seek(addr + pos)
                f.readinto(old)
            if not write:
                i = _sets_bits(old, mv, pos, k)
                if i >= 0:
                    raise FlashError("program would set bits 0->1 at 0x%x" % (addr + pos + i))
            else:
                _and_into(new, old, mv, pos, k)
                f.seek(addr + pos)
                f.write(memoryview(new)[:k] if k < _CHUNK else new)
            pos += k
        if write:
            f.flush()
