# Streaming installer: verifies and writes an OTA image into the inactive
# slot, then re-verifies what the flash actually holds.
#
# Bytes are verified (ota/verify.py) before they are written, so a refused
# image stops the download at the first bad field; each 4 KB flash block is
# erased when the image reaches it and programmed 1 KB at a time through
# hal.Partition's block-device protocol (writeblocks with an offset, as
# esp32.Partition allows). RAM: one 1 KB chunk buffer plus the verifier's
# constant state: in a ~96 KB heap after a week's use, a 4 KB buffer in one
# piece was not always to be had (MemoryError with 19.5 KB free). finish()
# reads the slot back through a fresh verifier: set_boot is only ever called
# for an image verified as it sits in flash, not as it passed through RAM.
import gc
import hashlib
import struct

from micropython import const

from ota.image import DESC_MAGIC
from ota.verify import CHIP_IDS, Policy, Reject, Verifier, verify_partition

BLOCK = const(4096)  # flash erase block (esp32.Partition ioctl 5)
CHUNK = const(1024)  # what RAM holds of it at a time
DEFAULT_PROJECT = "micropython"  # ESP-IDF project name of a MicroPython build


class FlashMismatch(Exception):
    # Read-back disagrees with what was streamed: a flash fault, not a forgery.
    pass


class Installer:
    def __init__(self, part, policy, status=None, sha256=None, chunk=None, blk=None):
        # chunk (CHUNK bytes), blk (the verifier's signature block): slices
        # of the updater's boot-time arena (ota/updater.py carve()); None:
        # allocated here.
        self.part = part
        self.policy = policy
        self.status = status
        self.total = None  # set by the caller when known (for progress)
        self.want_sha = sha256  # optional whole-file SHA-256 from the command
        self._buf = bytearray(CHUNK) if chunk is None else chunk
        self._blk = blk
        self.restart()

    def release(self):
        # After a failed or refused attempt: the block buffers (about 8 KB of
        # a ~100 KB heap) go at once, the verifier's findings stay for
        # diagnostics until the next update.
        self._buf = self._blk = None
        self._sha = None
        if self.v is not None:
            self.v._blk = None

    def restart(self):
        self.v = None
        gc.collect()  # the old verifier's buffers, before the new ones
        self.v = Verifier(self.policy, self.part.ioctl(4, 0) * self.part.ioctl(5, 0), self._blk)
        self.pos = 0
        self.block = 0
        self._fill = 0
        self._sha = hashlib.sha256() if self.want_sha else None

    def write(self, mv):
        # Raises Reject (bad image) or passes flash errors through.
        self.v.feed(mv)
        if self._sha:
            self._sha.update(mv)
        n = len(mv)
        i = 0
        buf = self._buf
        while i < n:
            k = min(n - i, CHUNK - self._fill)
            buf[self._fill : self._fill + k] = mv[i : i + k]
            self._fill += k
            i += k
            if self._fill == CHUNK:
                self._program()
        self.pos += n
        if self.status is not None and self.total:
            self.status.progress(self.pos, self.total)

    def _program(self):
        # The full chunk at self.block (byte position self.block * CHUNK):
        # erase its flash block first when the chunk opens one.
        off = self.block * CHUNK
        blk, within = off // BLOCK, off % BLOCK
        if within == 0:
            self.part.ioctl(6, blk)
        self.part.writeblocks(blk, self._buf, within)
        self.block += 1
        self._fill = 0

    def finish(self):
        # -> the stream's Verifier once the slot holds a verified image.
        self.v.finish()  # whole stream seen and valid; it ends on a block boundary
        if self._sha and self._sha.digest() != self.want_sha:
            raise Reject("file-hash: download does not match the command's sha256")
        gc.collect()
        try:
            # The chunk and the stream verifier's signature block are free
            # now (its digest and findings are kept): the read-back reuses them.
            again = verify_partition(self.part, self.pos, self.policy, self._buf, self.v._blk)
        except Reject as e:
            raise FlashMismatch("flash-readback: " + e.args[0])
        if again.digest() != self.v.digest():
            raise FlashMismatch("flash-readback: digest differs from the stream")
        return self.v


def running_identity(part):
    # (chip_id, project, secure_version) of the image in `part`, or None
    # when it holds none (a fresh emulated flash).
    b = bytearray(256)  # image header and app description: the first 112 bytes
    part.readblocks(0, b)
    if b[0] != 0xE9 or struct.unpack_from("<I", b, 32)[0] != DESC_MAGIC:
        return None
    name = bytes(b[32 + 48 : 32 + 80])
    i = name.find(b"\x00")
    return (
        struct.unpack_from("<H", b, 12)[0],
        str(name if i < 0 else name[:i], "utf-8"),
        struct.unpack_from("<I", b, 36)[0],
    )


def device_policy(trusted, record):
    # What this device accepts: the running image's chip and project (board
    # defaults when none can be read), images tagged for this board
    # (board.OTA_BOARD, else board.NAME) and never a secure_version below
    # both the recorded floor and the running image's own.
    import board
    import hal

    ident = running_identity(hal.running_partition())
    if ident is None:
        ident = (CHIP_IDS[board.CHIP], DEFAULT_PROJECT, 0)
    name = getattr(board, "OTA_BOARD", None) or board.NAME
    return Policy(trusted, ident[0], ident[1], max(record.min_sv, ident[2]), name)
