# Streaming verification of a signed OTA image: ESP-IDF app image + padding
# + ESP Secure Boot V2 signature sector, against an update policy.
#
# Stream layout (espsecure sign-data --version 2):
#   [0, image.end)          the app image (ota/image.py), appended SHA-256
#   [image.end, sig_start)  0xFF padding up to the next 4 KB boundary
#   [sig_start, +4096)      signature sector: 1 to 3 blocks of 1216 bytes
#                           (ota/sbv2.py) back to back, the rest 0xFF; any
#                           other byte there is refused (sig-sector-garbage):
#                           the signature does not cover them
# The signed digest is SHA-256 of [0, sig_start). Memory is constant: two
# running SHA-256s, a 256-byte app description and one 1216-byte block.
#
# feed() raises Reject as soon as something is wrong (a wrong chip, project
# or secure_version is refused from the first segment, before the download
# goes on); finish() decides once the stream has ended.
import hashlib

from micropython import const

from ota import sbv2
from ota.image import AppImage, ImageError, all_ff

SECTOR = const(4096)

# ESP-IDF esp_chip_id_t, by board.CHIP; the Unix board emulates the
# ESP32-S3 board (boards/unix/board.py mirrors boards/esp32s3_eink29).
CHIP_IDS = {"esp32": 0, "esp32s2": 2, "esp32c3": 5, "esp32s3": 9, "esp32c2": 12, "esp32c6": 13, "unix": 9}


class Reject(Exception):
    # args[0]: "<code>: <detail>"; code() is the stable first word.
    def code(self):
        return self.args[0].split(":")[0]


class Policy:
    # What this device accepts: key digests (32-byte SHA-256 each, as
    # `espsecure digest-sbv2-public-key`), its chip id, its project name,
    # the lowest secure_version it may run (anti-rollback) and its board
    # (the image's board tag must name it; None: not checked).
    def __init__(self, trusted, chip_id, project, min_secure_version=0, board=None):
        for d in trusted:
            if len(d) != 32:
                raise ValueError("trusted key digest must be 32 bytes")
        self.trusted = [bytes(d) for d in trusted]
        self.chip_id = chip_id
        self.project = project
        self.min_secure_version = min_secure_version
        self.board = board


class Verifier:
    def __init__(self, policy, limit, blk=None):
        self.policy = policy
        self.limit = limit  # partition size: nothing larger can be installed
        self.image = AppImage(limit)
        self.pos = 0
        self.sig_start = None
        self._sha = hashlib.sha256()
        self._checked_header = False
        self._checked_desc = False
        # blk: sbv2.BUF_SIZE bytes (block + RSA workspace) to use: the OTA
        # arena's, or a finished verifier's for the read-back
        self._blk = bytearray(sbv2.BUF_SIZE) if blk is None else blk
        self._blk_have = 0
        self._nblk = 0
        self._blocks_end = False  # a slot that is not a block was seen
        self._garbage = False  # non-0xFF bytes where only erased flash may be
        self._best = None  # (stage, reason) of the block that got furthest
        self._digest = None
        self.accepted_block = None
        self.key_digest = None

    def feed(self, mv):
        try:
            self._feed(mv)
        except ImageError as e:
            raise Reject(e.args[0])

    def _feed(self, mv):
        n = len(mv)
        i = 0
        img = self.image
        if not img.done():
            i = img.feed(mv)
            self._sha.update(mv[:i])
            self._policy_checks()
            if img.done():
                self.sig_start = (img.end + SECTOR - 1) // SECTOR * SECTOR
                if self.sig_start + SECTOR > self.limit:
                    raise Reject("too-large: image and signature exceed the %d-byte partition" % self.limit)
        self.pos += i
        if i == n:
            return
        if self.pos + n - i > self.sig_start + SECTOR:
            raise Reject("trailing-data: bytes after the signature sector")
        if self.pos < self.sig_start:
            k = min(n - i, self.sig_start - self.pos)
            pad = mv[i : i + k]
            if not all_ff(pad, k):
                raise Reject("padding: bytes between image and signature are not 0xFF")
            self._sha.update(pad)
            self.pos += k
            i += k
        if self.pos == self.sig_start and self._digest is None:
            self._digest = self._sha.digest()
        while i < n:
            if self._nblk < sbv2.MAX_BLOCKS:
                k = min(n - i, sbv2.BLOCK_SIZE - self._blk_have)
                self._blk[self._blk_have : self._blk_have + k] = mv[i : i + k]
                self._blk_have += k
                if self._blk_have == sbv2.BLOCK_SIZE:
                    self._block()
            else:
                # Past the last block slot: erased flash only.
                k = n - i
                if not all_ff(mv[i:n], k):
                    self._garbage = True
            i += k
            self.pos += k

    def _policy_checks(self):
        img = self.image
        p = self.policy
        if not self._checked_header and img.chip_id is not None:
            self._checked_header = True
            if img.chip_id != p.chip_id:
                raise Reject("chip-mismatch: image for chip id %d, this is %d" % (img.chip_id, p.chip_id))
        if not self._checked_desc and img.desc_ready():
            self._checked_desc = True
            if img.project != p.project:
                raise Reject("project-mismatch: image is %r, this device runs %r" % (img.project, p.project))
            if p.board is not None and img.board != p.board:
                raise Reject("board-mismatch: image is for board %r, this is %r" % (img.board, p.board))
            if img.secure_version < p.min_secure_version:
                raise Reject(
                    "secure-version: image secure_version %d below minimum %d"
                    % (img.secure_version, p.min_secure_version)
                )

    def _block(self):
        # One 1216-byte slot of the signature sector. The blocks come first,
        # back to back; the first slot that is not a well-formed block ends
        # them, and from there on every byte must be 0xFF (erased). A block's
        # 16 trailing bytes must be zero, as espsecure writes them.
        blk = self._blk
        self._blk_have = 0
        self._nblk += 1
        if self._blocks_end:
            if not all_ff(blk, sbv2.BLOCK_SIZE):
                self._garbage = True
            return
        if not sbv2.block_ok(blk):
            self._blocks_end = True
            if self._nblk > 1 and not all_ff(blk, sbv2.BLOCK_SIZE):
                self._garbage = True
            # slot 0 malformed: no block at all, reported as such by finish()
        elif not sbv2.zero_pad(blk):
            self._garbage = True
        if self._blocks_end or self.accepted_block is not None:
            return
        stage, reason = sbv2.check_block(blk, self._digest, self.policy.trusted)
        if stage == sbv2.ST_OK:
            self.accepted_block = self._nblk - 1
            self.key_digest = sbv2.key_digest(self._blk)
        elif self._best is None or stage > self._best[0]:
            self._best = (stage, reason)

    def finish(self):
        # Call at the end of the stream; returns None or raises Reject.
        img = self.image
        if not img.done():
            raise Reject("truncated: stream ended inside the app image")
        if self.pos == img.end or self.pos == self.sig_start:
            raise Reject("unsigned: no signature sector after the image")
        if self.pos < self.sig_start + SECTOR:
            raise Reject("truncated: stream ended inside the signature")
        if self._best is None or self._best[0] == sbv2.ST_FORMAT:
            if self.accepted_block is None:
                raise Reject("no-signature-block: no block with valid magic, version and CRC")
        if self._garbage:
            raise Reject("sig-sector-garbage: signature sector holds bytes that are neither a block nor 0xFF")
        if self.accepted_block is not None:
            return None
        if self._best is None or self._best[0] == sbv2.ST_FORMAT:
            raise Reject("no-signature-block: no block with valid magic, version and CRC")
        raise Reject(self._best[1])

    def digest(self):
        # SHA-256 of the signed part, once the signature sector is reached.
        return self._digest


def verify_stream(read, policy, limit, buf=None, blk=None):
    # read(buf) -> n (0 at end). Returns the Verifier; raises Reject.
    buf = buf or bytearray(SECTOR)
    mv = memoryview(buf)
    v = Verifier(policy, limit, blk)
    while True:
        n = read(buf)
        if not n:
            break
        v.feed(mv[:n])
    v.finish()
    return v


def verify_file(path, policy, limit=0x1F0000):
    with open(path, "rb") as f:
        return verify_stream(f.readinto, policy, limit)


def verify_partition(part, length, policy, buf=None, blk=None):
    # Re-verify what is actually in flash (what the bootloader will load),
    # read in len(buf) pieces (a divisor of the flash block size).
    buf = buf or bytearray(SECTOR)
    bs = part.ioctl(5, 0)
    step = len(buf)
    state = [0]

    def read(b):
        off = state[0]
        if off >= length:
            return 0
        part.readblocks(off // bs, b, off % bs)
        n = min(step, length - off)
        state[0] = off + n
        return n

    return verify_stream(read, policy, part.ioctl(4, 0) * part.ioctl(5, 0), buf, blk)
