# The ESP32 port's `esp32` module: esp32.Partition (ports/esp32/esp32_partition.c
# over ESP-IDF's esp_partition_* and esp_ota_* calls) on the NOR flash
# emulation (firmware/hal/norflash.py: $IHD_STATE/flash.bin, wear counts,
# IHD_FLASH_CUT / IHD_FLASH_TORN power cuts) with the partition table of the
# board module (board.PARTITIONS) and the emulated ESP-IDF bootloader and
# otadata of firmware/hal/unix_partition.py (OTA, app rollback).
# Rules kept from the C source and ESP-IDF: 4096-byte blocks (ioctl(5));
# writeblocks() without an offset erases the range first (which must then be
# whole sectors), with an offset only programs; ioctl(6) erases one block,
# ioctl(4) counts them; out-of-range access raises OSError(-0x102
# ESP_ERR_INVALID_ARG) when the start is past the end, OSError(-0x104
# ESP_ERR_INVALID_SIZE) when the length is; set_boot() refuses a slot whose
# first byte is not the app image magic 0xE9 (ESP_ERR_OTA_VALIDATE_FAILED);
# Partition objects compare by identity. The bootloader runs when this
# module is imported (the device's power-on), not at the first Partition call.
# Deviations: programming a 0 bit back to 1 raises hal.norflash.FlashError
# (the chip silently ANDs; the emulation refuses, to catch firmware bugs);
# set_boot() checks only the magic byte of the image, not its checksums;
# block_size other than 4096 is refused with ValueError; no encryption.
import board
from _esp32emu import state_dir
from hal import norflash, unix_partition

_SECTOR = 4096


def _env_int(name):
    import os

    v = os.getenv(name)
    return None if v is None or v == "" else int(v)


_flash = norflash.NorFlash(
    state_dir() + "/flash.bin",
    board.FLASH_SIZE,
    cut_after=_env_int("IHD_FLASH_CUT"),
    torn=_env_int("IHD_FLASH_TORN"),
)
unix_partition.attach(_flash, board.PARTITIONS)
unix_partition.boot()


def _err(code, name):
    # check_esp_err(): OSError(-code, name) (NORMAL error reporting)
    raise OSError(-code, name)


def _range(size, offset, n):
    # esp_partition_read/write argument checks
    if offset < 0 or offset > size:
        _err(0x102, "ESP_ERR_INVALID_ARG")
    if n > size - offset:
        _err(0x104, "ESP_ERR_INVALID_SIZE")


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=_SECTOR):
        if isinstance(id, int):
            if id == Partition.RUNNING:
                id = unix_partition.Partition(unix_partition.Partition.RUNNING).label
            elif id == Partition.BOOT:
                id = unix_partition.Partition(unix_partition.Partition.BOOT).label
            else:
                raise ValueError()
        e = None
        for t in (0, 1):  # esp_partition_find_first: APP first, then DATA
            for r in unix_partition._table:
                if r[0] == id and r[1] == t and e is None:
                    e = r
        if e is None:
            raise OSError(2)  # ENOENT
        if block_size != _SECTOR:
            raise ValueError("block_size %d not emulated" % block_size)
        self._e = e
        self._bs = block_size

    @staticmethod
    def find(type=0, subtype=0xFF, label=None, block_size=_SECTOR):
        return [
            Partition(r[0], block_size)
            for r in unix_partition._table
            if r[1] == type and subtype in (0xFF, r[2]) and (label is None or r[0] == label)
        ]

    def info(self):
        e = self._e
        return (e[1], e[2], e[3], e[4], e[0], False)

    def __repr__(self):
        e = self._e
        return "<Partition type=%u, subtype=%u, address=%u, size=%u, label=%s, encrypted=0>" % (
            e[1],
            e[2],
            e[3],
            e[4],
            e[0],
        )

    def _erase_range(self, offset, n):
        # esp_partition_erase_range
        size = self._e[4]
        if offset < 0 or offset > size:
            _err(0x102, "ESP_ERR_INVALID_ARG")
        if n > size - offset or n % _SECTOR:
            _err(0x104, "ESP_ERR_INVALID_SIZE")
        if offset % _SECTOR:
            _err(0x102, "ESP_ERR_INVALID_ARG")
        a = self._e[3] + offset
        for s in range(a // _SECTOR, (a + n) // _SECTOR):
            _flash.erase(s)

    def readblocks(self, block, buf, offset=0):
        off = block * self._bs + offset
        _range(self._e[4], off, len(buf))
        _flash.read(self._e[3] + off, buf)

    def writeblocks(self, block, buf, offset=None):
        off = block * self._bs
        if offset is None:
            self._erase_range(off, len(buf))
        else:
            off += offset
        _range(self._e[4], off, len(buf))
        _flash.program(self._e[3] + off, buf)

    def ioctl(self, cmd, arg):
        if cmd in (1, 2, 3):  # INIT, DEINIT, SYNC
            return 0
        if cmd == 4:  # BLOCK_COUNT
            return self._e[4] // self._bs
        if cmd == 5:  # BLOCK_SIZE
            return self._bs
        if cmd == 6:  # BLOCK_ERASE
            self._erase_range(arg * _SECTOR, _SECTOR)
            return 0
        return None

    # -- OTA (esp_ota_ops.c) ------------------------------------------------------
    def set_boot(self):
        e = self._e
        if e[1] != 0 or e[2] < 0x10:
            _err(0x102, "ESP_ERR_INVALID_ARG")
        magic = bytearray(1)
        _flash.read(e[3], magic)
        if magic[0] != 0xE9:
            _err(0x1503, "ESP_ERR_OTA_VALIDATE_FAILED")
        unix_partition.Partition(e[0]).set_boot()

    def get_next_update(self):
        # esp_ota_get_next_update_partition: the OTA slot after this one,
        # cyclically; the first slot when this is not an OTA slot
        slots = unix_partition._ota_slots()
        if not slots:
            raise OSError(2)
        for i, r in enumerate(slots):
            if r[0] == self._e[0]:
                return Partition(slots[(i + 1) % len(slots)][0])
        return Partition(slots[0][0])

    @classmethod
    def mark_app_valid_cancel_rollback(cls):
        unix_partition.Partition.mark_app_valid_cancel_rollback()


def flash():
    # The emulated chip (tests: erase counts, power-cut state).
    return _flash
