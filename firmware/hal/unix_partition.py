# esp32.Partition for the Unix port: partitions of an emulated NOR flash,
# the block-device protocol, the otadata records and an emulated bootloader.
#
# The same calls as MicroPython's esp32.Partition, so firmware code that uses
# partitions runs unchanged:
#   readblocks(block, buf, offset=0), writeblocks(block, buf, offset=None),
#   ioctl(4/5/6), info(), find(), get_next_update(), set_boot(),
#   Partition.RUNNING / Partition.BOOT, mark_app_valid_cancel_rollback().
# writeblocks without an offset erases the blocks first (as the ESP32 port
# does); with an offset it only programs, and the caller must have erased.
#
# otadata uses ESP-IDF's layout: two sectors, each starting with a 32-byte
# esp_ota_select_entry_t {u32 ota_seq; u8 label[20]; u32 state; u32 crc},
# crc = crc32 of ota_seq as ESP-IDF's otatool computes it. The emulated
# bootloader follows ESP-IDF with app rollback enabled: a NEW image becomes
# PENDING_VERIFY when booted; one found still PENDING_VERIFY at the next boot
# was never confirmed, so it is marked ABORTED and the other slot boots.
import binascii
import struct

from micropython import const

from hal.norflash import SECTOR, FlashError

TYPE_APP = 0
TYPE_DATA = 1
_SUB_OTA0 = const(0x10)
_SUB_OTADATA = const(0x00)

ST_NEW = const(0)
ST_PENDING = const(1)
ST_VALID = const(2)
ST_INVALID = const(3)
ST_ABORTED = const(4)
ST_UNDEFINED = const(0xFFFFFFFF)

_flash = None
_table = ()
_boot = {}  # filled by boot(): {"running": label, "rolled_back": bool}


def attach(flash, table):
    # table: ((label, type, subtype, offset, size), ...) from the board.
    global _flash, _table
    _flash = flash
    _table = tuple(table)
    _boot.clear()


def _entry(label):
    for e in _table:
        if e[0] == label:
            return e
    raise ValueError("no partition %r" % label)


def _ota_slots():
    return [e for e in _table if e[1] == TYPE_APP and e[2] >= _SUB_OTA0]


def _crc(seq):
    return binascii.crc32(struct.pack("<I", seq), 0xFFFFFFFF) & 0xFFFFFFFF


def _read_otadata():
    # -> list of (sector_index, seq, state) for valid entries.
    e = _entry("otadata")
    out = []
    buf = bytearray(32)
    for i in range(2):
        _flash.read(e[3] + i * SECTOR, buf)
        seq = struct.unpack_from("<I", buf, 0)[0]
        state, crc = struct.unpack_from("<II", buf, 24)
        if seq != 0xFFFFFFFF and crc == _crc(seq):
            out.append((i, seq, state))
    return out


def _write_otadata(index, seq, state):
    e = _entry("otadata")
    rec = bytearray(b"\xff" * 32)
    struct.pack_into("<I", rec, 0, seq)
    struct.pack_into("<II", rec, 24, state, _crc(seq))
    _flash.erase((e[3] // SECTOR) + index)
    _flash.program(e[3] + index * SECTOR, rec)


def _current():
    # The active entry, as ESP-IDF's bootloader_common_get_active_otadata:
    # highest sequence among entries that are not ABORTED or INVALID. (An
    # aborted entry must not stay "current": set_boot would then overwrite
    # the entry of the image actually running.)
    ents = [t for t in _read_otadata() if t[2] not in (ST_ABORTED, ST_INVALID)]
    if not ents:
        return None
    return max(ents, key=lambda t: t[1])


def boot():
    # The emulated second-stage bootloader: choose the slot to run.
    slots = _ota_slots()
    cur = _current()
    rolled = False
    if cur is not None and cur[2] == ST_PENDING:
        # Booted before and never confirmed: abort it and roll back to the
        # other entry if it is still good, else ota_0 (as ESP-IDF).
        _write_otadata(cur[0], cur[1], ST_ABORTED)
        rolled = True
        cur = _current()
    if cur is None:
        label = slots[0][0]
    else:
        idx, seq, state = cur
        if state == ST_NEW:
            _write_otadata(idx, seq, ST_PENDING)
        label = slots[(seq - 1) % len(slots)][0]
    _boot["running"] = label
    _boot["rolled_back"] = rolled
    return label


def rolled_back():
    return _boot.get("rolled_back", False)


class Partition:
    BOOT = 0
    RUNNING = 1
    TYPE_APP = 0
    TYPE_DATA = 1

    def __init__(self, id, block_size=SECTOR):
        if id == Partition.RUNNING or id == Partition.BOOT:
            if "running" not in _boot:
                boot()
            if id == Partition.RUNNING:
                id = _boot["running"]
            else:
                cur = _current()
                slots = _ota_slots()
                id = slots[(cur[1] - 1) % len(slots)][0] if cur else slots[0][0]
        e = _entry(id)
        self.label, self.type, self.subtype, self.offset, self.size = e
        self.bs = block_size

    def __repr__(self):
        return "<Partition %s @0x%x +0x%x>" % (self.label, self.offset, self.size)

    def __eq__(self, other):
        return isinstance(other, Partition) and other.label == self.label

    @staticmethod
    def find(type=TYPE_APP, subtype=0xFF, label=None):
        return [
            Partition(e[0])
            for e in _table
            if e[1] == type and (subtype == 0xFF or e[2] == subtype) and (label is None or e[0] == label)
        ]

    def info(self):
        return (self.type, self.subtype, self.offset, self.size, self.label, False)

    def _addr(self, block, offset, n):
        a = block * self.bs + offset
        if a < 0 or a + n > self.size:
            raise FlashError("access beyond partition %s" % self.label)
        return self.offset + a

    def readblocks(self, block, buf, offset=0):
        _flash.read(self._addr(block, offset, len(buf)), buf)

    def writeblocks(self, block, buf, offset=None):
        if offset is None:
            nblk = (len(buf) + self.bs - 1) // self.bs
            for b in range(block, block + nblk):
                self.ioctl(6, b)
            offset = 0
        _flash.program(self._addr(block, offset, len(buf)), buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.size // self.bs
        if op == 5:
            return self.bs
        if op == 6:
            a = self._addr(arg, 0, self.bs)
            for s in range(a // SECTOR, (a + self.bs) // SECTOR):
                _flash.erase(s)
            return 0
        if op in (1, 2, 3):
            return 0
        return None

    # -- OTA -----------------------------------------------------------------
    def get_next_update(self):
        slots = _ota_slots()
        for i, e in enumerate(slots):
            if e[0] == self.label:
                return Partition(slots[(i + 1) % len(slots)][0])
        raise OSError(2)

    def set_boot(self):
        slots = _ota_slots()
        k = [e[0] for e in slots].index(self.label)
        cur = _current()
        seq = cur[1] if cur else 0
        # smallest seq > current whose slot is this partition
        nseq = seq + 1
        while (nseq - 1) % len(slots) != k:
            nseq += 1
        index = (cur[0] + 1) % 2 if cur else 0
        _write_otadata(index, nseq, ST_NEW)

    @staticmethod
    def mark_app_valid_cancel_rollback():
        cur = _current()
        if cur is None or cur[2] == ST_VALID:
            return
        slots = _ota_slots()
        # Only the entry that actually booted may be confirmed (after a
        # rollback the current entry names the aborted image).
        if slots[(cur[1] - 1) % len(slots)][0] == Partition(Partition.RUNNING).label:
            _write_otadata(cur[0], cur[1], ST_VALID)


def ota_state():
    # (seq, state) of the current otadata entry, or None: for diagnostics.
    cur = _current()
    return None if cur is None else (cur[1], cur[2])
