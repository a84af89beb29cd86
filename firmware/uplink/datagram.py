# Uplink datagrams: layout, authentication and the replay window.
#
# Owns the byte layout of every datagram between a device and the collector
# (docs/wire-format.md is the specification; tools/ihd/uplink/wire.py is the
# collector's side of the same layout). Every datagram is authenticated with
# HMAC-SHA256 under the device's key, truncated to 96 bits, except the
# keep-alive: it is sent every three minutes, so its size is most of the
# uplink's daily bytes, and it is 9 bytes: the device id, the low byte of
# its sequence number and a 32-bit token (HMAC of the device id and the
# full sequence number). The collector finds the device by its id and the
# one seq the low byte can mean, so a guess costs it one HMAC and no memory,
# and fits one device only (see docs/uplink.md, "Keep-alive and routing").
# Collector -> device datagrams are
# tagged over the device's boot nonce as well (sent in HELLO), so a reply can
# never be accepted by another boot, whatever its sequence numbers.
# MicroPython has no hmac module, so HMAC (RFC 2104) is built on
# hashlib.sha256 here; a host test checks it against CPython's hmac.
import hashlib

from micropython import const

VERSION = const(2)  # high nibble of the type byte (docs/wire-format.md, "Versions")
T_DATA = const(0x21)  # device -> collector: a batch (or one real-time reading)
T_DATA3 = const(0x31)  # version 3: a batch with the gas meter's readings (docs/wire-format.md)
T_KEEPALIVE = const(0x12)  # device -> collector: 9 bytes, known by their length (only the token's input has the type)
T_HELLO = const(0x24)  # device -> collector: first contact after boot/failover
T_DONE = const(0x25)  # device -> collector: command executed
T_HEALTH = const(0x26)  # device -> collector: health report (uplink/health.py)
T_REPLY = const(0x28)  # collector -> device: ACK and/or commands
T_REFUSE = const(0x29)  # collector -> device: why it will not take our datagram

HDR = const(11)  # type, device id u32, key id u16, seq u32
TAG = const(12)  # HMAC-SHA256 truncated to 96 bits
KA_LEN = const(9)  # the whole keep-alive: device id u32, seq & 0xFF, token u32
MAX_DGRAM = const(1200)  # UDP payload bound: no IP fragmentation anywhere
DATA_HEAD = const(22)  # HDR + epoch u32, first reading seq u32, count u16, flags u8
DATA_CAP = const(1166)  # MAX_DGRAM - DATA_HEAD - TAG: codec payload budget
HELLO_BODY = const(20)  # uploaded u32, newest u32, epoch u32, nonce u32, cmd_mark u32
REPLY_HEAD = const(21)  # HDR + echo u32, ack first u32, ack count u16
REFUSE_LEN = const(36)  # HDR + echo u32, reason u8, min_seq u32, challenge u32 + TAG

DF_REALTIME = const(1)  # DATA flag: streamed reading, no ACK wanted

CMD_REALTIME = const(1)  # payload: u16 seconds of real-time streaming
CMD_OTA = const(2)  # payload: defined by docs/ota.md
CMDS_PER_REPLY = const(4)  # the collector sends at most this many; the device runs no more

# REFUSE reasons
R_STALE = const(1)  # our seq is at or below the collector's window: use min_seq (or its challenge)
R_CONFLICT = const(2)  # the collector holds other values under these (epoch, seq): new epoch

# DONE statuses the uplink itself gives (handlers: 0 done, 1 unsupported, 255 failed)
ST_FORGOTTEN = const(253)  # run before; its status is no longer remembered
ST_INTERRUPTED = const(254)  # a power cut came while it ran: not run again


def get32(b, i):
    return (b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]


def put32(b, i, v):
    b[i] = (v >> 24) & 0xFF
    b[i + 1] = (v >> 16) & 0xFF
    b[i + 2] = (v >> 8) & 0xFF
    b[i + 3] = v & 0xFF


def get16(b, i):
    return (b[i] << 8) | b[i + 1]


def put16(b, i, v):
    b[i] = (v >> 8) & 0xFF
    b[i + 1] = v & 0xFF


class Hmac:
    # HMAC-SHA256 with the key's inner and outer pads computed once.
    def __init__(self, key):
        if len(key) > 64:
            key = hashlib.sha256(key).digest()
        k = bytearray(64)
        k[: len(key)] = key
        self.ipad = bytes(b ^ 0x36 for b in k)
        self.opad = bytes(b ^ 0x5C for b in k)

    def digest(self, buf, n, prefix=None):
        # HMAC over prefix + buf[:n] (buf may be a bytearray shared with the
        # socket). The prefix is the boot nonce that collector -> device
        # datagrams are bound to; it is not sent.
        h = hashlib.sha256(self.ipad)
        if prefix is not None:
            h.update(prefix)
        h.update(memoryview(buf)[:n])
        o = hashlib.sha256(self.opad)
        o.update(h.digest())
        return o.digest()


def equal(a, b, n):
    # Constant-time comparison of the first n bytes.
    d = 0
    for i in range(n):
        d |= a[i] ^ b[i]
    return d == 0


def header(buf, typ, dev, kid, seq):
    buf[0] = typ
    put32(buf, 1, dev)
    put16(buf, 5, kid)
    put32(buf, 7, seq)
    return HDR


def seal(buf, n, mac):
    # Append the 96-bit tag over buf[:n]; returns the datagram length.
    buf[n : n + TAG] = mac.digest(buf, n)[:TAG]
    return n + TAG


def check(buf, n, mac, prefix=None):
    # Tag of a full datagram of n bytes is right (over prefix + datagram).
    return n > TAG and equal(mac.digest(buf, n - TAG, prefix), memoryview(buf)[n - TAG : n], TAG)


def keepalive(buf, dev, seq, mac):
    # Token = HMAC(key, 0x12 | device id | seq)[:4]; the keep-alive is
    # device id | seq & 0xFF | token.
    buf[0] = T_KEEPALIVE
    put32(buf, 1, dev)
    put32(buf, 5, seq)
    t = mac.digest(buf, 9)
    put32(buf, 0, dev)
    buf[4] = seq & 0xFF
    buf[5:KA_LEN] = t[:4]
    return KA_LEN


class Window:
    # Sliding replay window (RFC 4303 style): accepts each sequence number
    # once, and only if it is no more than 64 below the highest seen.
    def __init__(self):
        self.top = -1
        self.bits = 0  # bit i: top - i seen

    def fresh(self, seq):
        if seq > self.top:
            return True
        d = self.top - seq
        return d < 64 and not (self.bits >> d) & 1

    def accept(self, seq):
        if seq > self.top:
            d = seq - self.top
            self.bits = ((self.bits << d) | 1) & 0xFFFFFFFFFFFFFFFF if d < 64 else 1
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)
