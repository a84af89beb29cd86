"""Host side of the uplink datagram layout (docs/wire-format.md).

The collector's view of the bytes that firmware/uplink/datagram.py and
session.py produce: parsing with precise errors, building replies, the
HMAC-SHA256 tags (CPython's hmac, the oracle for the firmware's hand-made
HMAC) and the replay window. No I/O here.
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from hashlib import sha256

VERSION = 2  # docs/wire-format.md, "Versions"
T_DATA = 0x21
T_DATA3 = 0x31  # version 3: DATA whose batch has the gas meter's readings (parsed as T_DATA, version 3)
T_KEEPALIVE = 0x12  # a keep-alive has no type byte; 0x12 only enters its token (unchanged since v1)
T_HELLO = 0x24
T_DONE = 0x25
T_HEALTH = 0x26
T_REPLY = 0x28
T_REFUSE = 0x29
TYPE_NAMES = {
    T_DATA: "DATA",
    T_KEEPALIVE: "KEEPALIVE",
    T_HELLO: "HELLO",
    T_DONE: "DONE",
    T_HEALTH: "HEALTH",
    T_REPLY: "REPLY",
    T_REFUSE: "REFUSE",
}

HDR = 11
TAG = 12
KA_LEN = 9  # a keep-alive: device id u32, seq & 0xFF, token u32; every other datagram is longer
KA_TOKEN = 4  # its 32-bit tag
KA_OLD_LEN = 4  # the keep-alive before: a bare token, looked up fleet-wide (refused: bad_keepalive)
KA_AHEAD = 64  # keep-alive seqs the collector takes per device: top+1 .. top+KA_AHEAD
MAX_DGRAM = 1200
DATA_HEAD = 22
HELLO_BODY = 20
REPLY_HEAD = 21
REFUSE_BODY = 13
HEALTH_MIN = 15  # two empty texts and the 13 fixed bytes (firmware/uplink/health.py)
# HEALTH codes (index = wire code), as in firmware/uplink/health.py
RESET_CAUSES = (
    "unknown",
    "power-on",
    "hard",
    "watchdog",
    "deep-sleep",
    "soft",
    "memory",
    "config",
    "ota",
    "ota-rollback",
)
OTA_STATES = (
    "idle",
    "downloading",
    "verifying",
    "rebooting",
    "confirming",
    "confirmed",
    "rejected",
    "failed",
    "rolled-back",
    "keys-updated",
)
STORE_HEALTH = ("ok", "degraded", "failing")
SEQ_LIMIT = 2**32  # every seq on the wire is a u32; nothing computes one at or above this
IP_UDP_OVERHEAD = 28  # IPv4 (20, no options) + UDP (8) header bytes per datagram

DF_REALTIME = 1
CMD_REALTIME = 1
CMD_OTA = 2
CMD_NAMES = {CMD_REALTIME: "realtime", CMD_OTA: "ota"}
CMDS_PER_REPLY = 4  # the device runs no more than this from one reply

R_STALE = 1  # seq at or below the window: min_seq is the lowest it would take; or answer the challenge
R_CONFLICT = 2  # other values are held under (epoch, seq): number under a new epoch
REASONS = {R_STALE: "stale", R_CONFLICT: "conflict"}
ST_FORGOTTEN = 253  # DONE status: run before, status no longer remembered
ST_INTERRUPTED = 254  # DONE status: a power cut came while it ran; not run again


class WireError(ValueError):
    """A datagram that must be dropped; `reason` is the counter it goes to."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


def tag(key: bytes, data: bytes, n: int = TAG) -> bytes:
    return hmac.new(key, data, sha256).digest()[:n]


@dataclass
class Datagram:
    type: int
    device_id: int
    seq: int  # full 32-bit sequence number (keep-alive: its low byte until resolved)
    key_id: int | None = None  # None: keep-alive (implicit key)
    body: bytes = b""
    # type-specific fields
    first: int = 0
    count: int = 0
    flags: int = 0
    payload: bytes = b""
    cursor: int = 0
    head: int = 0
    epoch: int = 0
    nonce: int = 0
    cmd_mark: int = 0
    reason: int = 0
    version: int = VERSION  # DATA: 3 when its payload has a gas section (T_DATA3)
    min_seq: int = 0
    challenge: int = 0
    cmd_id: int = 0
    status: int = 0
    echo: int = 0
    health: dict = field(default_factory=dict)
    commands: list[tuple[int, int, bytes]] = field(default_factory=list)
    raw: bytes = b""


def parse(data: bytes) -> Datagram:
    """Structure only (no key needed). WireError(reason) for what cannot be one of ours."""
    n = len(data)
    if n > MAX_DGRAM:
        raise WireError("oversized", f"{n} bytes > {MAX_DGRAM}")
    if n < 1:
        raise WireError("truncated", "empty datagram")
    if n == KA_LEN:
        # seq: only its low byte until Window.ka_seq() resolves it; body: the token
        return Datagram(T_KEEPALIVE, int.from_bytes(data[:4], "big"), data[4], body=bytes(data[5:]), raw=bytes(data))
    if n == KA_OLD_LEN:
        raise WireError("bad_keepalive", "4-byte keep-alive of firmware before the device id was in it")
    t = data[0]
    version = 3 if t == T_DATA3 else VERSION
    if t == T_DATA3:
        t = T_DATA  # the same header and body; only the payload has a gas section
    if t >> 4 != VERSION or t not in TYPE_NAMES or t == T_KEEPALIVE:
        raise WireError("bad_type", f"type byte 0x{t:02x} is not a version-{VERSION} datagram")
    minimum = {
        T_DATA: DATA_HEAD + 1,
        T_HELLO: HDR + HELLO_BODY,
        T_DONE: HDR + 5,
        T_HEALTH: HDR + HEALTH_MIN,
        T_REPLY: REPLY_HEAD,
        T_REFUSE: HDR + REFUSE_BODY,
    }[t] + TAG
    if n < minimum:
        raise WireError("truncated", f"{TYPE_NAMES[t]} of {n} bytes, at least {minimum} expected")
    dev, kid, seq = struct.unpack_from(">IHI", data, 1)
    body = bytes(data[HDR : n - TAG])
    d = Datagram(t, dev, seq, kid, body, raw=bytes(data))
    d.version = version
    if t == T_DATA:
        d.epoch, d.first, d.count, d.flags = struct.unpack_from(">IIHB", body)
        d.payload = body[11:]
        if d.count == 0:
            raise WireError("malformed", "DATA with a count of 0")
    elif t == T_HELLO:
        if len(body) != HELLO_BODY:
            raise WireError("malformed", f"HELLO body of {len(body)} bytes, not {HELLO_BODY}")
        d.cursor, d.head, d.epoch, d.nonce, d.cmd_mark = struct.unpack(">IIIII", body)
    elif t == T_DONE:
        if len(body) != 5:
            raise WireError("malformed", f"DONE body of {len(body)} bytes, not 5")
        d.cmd_id, d.status = struct.unpack(">IB", body)
    elif t == T_HEALTH:
        d.health = parse_health(body)
    elif t == T_REFUSE:
        if len(body) != REFUSE_BODY:
            raise WireError("malformed", f"REFUSE body of {len(body)} bytes, not {REFUSE_BODY}")
        d.echo, d.reason, d.min_seq, d.challenge = struct.unpack(">IBII", body)
    elif t == T_REPLY:
        d.echo, d.first, d.count = struct.unpack_from(">IIH", body)
        p = 10
        while p < len(body):
            if p + 7 > len(body):
                raise WireError("malformed", "command header truncated")
            kind, cid, ln = struct.unpack_from(">BIH", body, p)
            if p + 7 + ln > len(body):
                raise WireError("malformed", "command payload truncated")
            d.commands.append((kind, cid, body[p + 7 : p + 7 + ln]))
            p += 7 + ln
    return d


def _code(table: tuple, i: int, unknown: int) -> str | None:
    if i == unknown:
        return None
    return table[i] if i < len(table) else f"code-{i}"


def parse_health(body: bytes) -> dict:
    """A HEALTH body (docs/wire-format.md, "HEALTH") as the fields the health table keeps;
    WireError("malformed") for anything that is not exactly one."""
    p = 0
    texts = []
    for _ in range(2):
        if p >= len(body) or body[p] > 16 or p + 1 + body[p] > len(body):
            raise WireError("malformed", "HEALTH text field out of bounds")
        try:
            texts.append(body[p + 1 : p + 1 + body[p]].decode())
        except UnicodeDecodeError:
            raise WireError("malformed", "HEALTH text is not UTF-8") from None
        p += 1 + body[p]
    if p + 13 > len(body) or p + 13 + body[p + 12] != len(body):
        raise WireError("malformed", "HEALTH body length does not match its fault count")
    cause, boots, lqi, rssi, fill, store, heap, ota, nf = struct.unpack_from(">BIBbBBHBB", body, p)
    return {
        "version": texts[0],
        "build": texts[1],
        "reset_cause": _code(RESET_CAUSES, cause, -1),
        "boot_count": boots,
        "meter_lqi": None if lqi == 255 else lqi,
        "wifi_rssi": None if rssi == -128 else rssi,
        "store_fill_pct": None if fill == 255 else fill,
        "store_health": _code(STORE_HEALTH, store, 255),
        "heap_min": None if heap == 0xFFFF else heap * 256,
        "ota_state": _code(OTA_STATES, ota, 255),
        "fault_numbers": list(body[p + 13 : p + 13 + nf]),
    }


def build_health(key: bytes, dev: int, kid: int, seq: int, h: dict) -> bytes:
    """A HEALTH datagram from parse_health()'s fields (tests, and the doc's example)."""

    def text(s: str) -> bytes:
        b = s.encode()[:16]
        return bytes([len(b)]) + b

    def code(table: tuple, v, unknown: int) -> int:
        return table.index(v) if v in table else unknown

    nums = h.get("fault_numbers", [])
    body = text(h.get("version", "")) + text(h.get("build", ""))
    body += struct.pack(
        ">BIBbBBHBB",
        code(RESET_CAUSES, h.get("reset_cause"), 0),
        h.get("boot_count", 0),
        255 if h.get("meter_lqi") is None else h["meter_lqi"],
        -128 if h.get("wifi_rssi") is None else h["wifi_rssi"],
        255 if h.get("store_fill_pct") is None else h["store_fill_pct"],
        code(STORE_HEALTH, h.get("store_health"), 255),
        0xFFFF if h.get("heap_min") is None else h["heap_min"] >> 8,
        code(OTA_STATES, h.get("ota_state"), 255),
        len(nums),
    ) + bytes(nums)
    return seal(key, header(T_HEALTH, dev, kid, seq) + body)


def verify(d: Datagram, key: bytes, nonce: int | None = None) -> bool:
    """Tag check of a full datagram (not keep-alives: see keepalive_token). Collector ->
    device types (REPLY, REFUSE) are tagged over the device's boot nonce first: pass it."""
    prefix = b"" if nonce is None else struct.pack(">I", nonce)
    return hmac.compare_digest(tag(key, prefix + d.raw[:-TAG]), d.raw[-TAG:])


def keepalive_token(key: bytes, dev: int, seq: int) -> bytes:
    return tag(key, bytes([T_KEEPALIVE]) + struct.pack(">II", dev, seq), KA_TOKEN)


def header(t: int, dev: int, kid: int, seq: int) -> bytes:
    return struct.pack(">BIHI", t, dev, kid, seq)


def seal(key: bytes, msg: bytes, nonce: int | None = None) -> bytes:
    """msg + its tag; with `nonce` (collector -> device) the tag covers the nonce, unsent, first."""
    prefix = b"" if nonce is None else struct.pack(">I", nonce)
    return msg + tag(key, prefix + msg)


def build_reply(
    key: bytes,
    dev: int,
    kid: int,
    seq: int,
    echo: int,
    first: int = 0,
    count: int = 0,
    commands: list[tuple[int, int, bytes]] = (),  # type: ignore[assignment]
    nonce: int = 0,
) -> bytes:
    body = struct.pack(">IIH", echo, first, count)
    for kind, cid, payload in commands:
        body += struct.pack(">BIH", kind, cid, len(payload)) + payload
    out = seal(key, header(T_REPLY, dev, kid, seq) + body, nonce)
    if len(out) > MAX_DGRAM:
        raise ValueError(f"reply of {len(out)} bytes exceeds {MAX_DGRAM}")
    return out


def build_refuse(
    key: bytes, dev: int, kid: int, seq: int, echo: int, reason: int, min_seq: int, challenge: int, nonce: int
) -> bytes:
    return seal(key, header(T_REFUSE, dev, kid, seq) + struct.pack(">IBII", echo, reason, min_seq, challenge), nonce)


def build_data(
    key: bytes,
    dev: int,
    kid: int,
    seq: int,
    first: int,
    count: int,
    flags: int,
    payload: bytes,
    epoch: int = 1,
    version: int = VERSION,
) -> bytes:
    t = T_DATA3 if version == 3 else T_DATA
    return seal(key, header(t, dev, kid, seq) + struct.pack(">IIHB", epoch, first, count, flags) + payload)


def build_hello(
    key: bytes, dev: int, kid: int, seq: int, cursor: int, head: int, epoch: int = 1, nonce: int = 0, cmd_mark: int = 0
) -> bytes:
    body = struct.pack(">IIIII", cursor, head, epoch, nonce, cmd_mark)
    return seal(key, header(T_HELLO, dev, kid, seq) + body)


def build_done(key: bytes, dev: int, kid: int, seq: int, cmd_id: int, status: int) -> bytes:
    return seal(key, header(T_DONE, dev, kid, seq) + struct.pack(">IB", cmd_id, status))


def build_keepalive(key: bytes, dev: int, seq: int) -> bytes:
    return struct.pack(">IB", dev, seq & 0xFF) + keepalive_token(key, dev, seq)


def keepalive_ok(key: bytes, d: Datagram, seq: int) -> bool:
    """The keep-alive's token is the device's for this full seq (one HMAC)."""
    return hmac.compare_digest(keepalive_token(key, d.device_id, seq), d.body)


class Window:
    """Replay window: each seq once, none more than 64 below the highest seen (top,
    bits: bit i = top - i taken). Keep-alives are taken only above it, within
    KA_AHEAD, and never move it: `ka` (bit i = top + 1 + i taken as a keep-alive)
    remembers them, so a keep-alive, forged or not, can neither be replayed nor
    push the window past the device's own next datagrams."""

    def __init__(self, top: int = -1, bits: int = 1, ka: int = 0) -> None:
        # bits: bit i set = top - i accepted (the collector persists both;
        # a window rebuilt from its top alone would take the 63 below again)
        self.top = top
        self.bits = (bits | 1) & (2**64 - 1) if top >= 0 else 0
        self.ka = ka & (2**KA_AHEAD - 1)

    def fresh(self, seq: int) -> bool:
        if seq > self.top:
            d = seq - self.top - 1
            return not (d < KA_AHEAD and (self.ka >> d) & 1)  # not taken as a keep-alive
        d = self.top - seq
        return d < 64 and not (self.bits >> d) & 1

    def seen(self, seq: int) -> bool:
        """seq was accepted (as far as the window remembers)."""
        d = self.top - seq
        return 0 <= d < 64 and bool((self.bits >> d) & 1)

    def accept(self, seq: int) -> None:
        if seq > self.top:
            d = seq - self.top
            self.bits = ((self.bits << d) | 1) & (2**64 - 1) if d < 64 else 1
            self.ka >>= d
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)

    # -- keep-alives ---------------------------------------------------------
    def ka_seq(self, low: int) -> int | None:
        """The one seq above the window a keep-alive's low byte can mean, or None."""
        seq = self.top + 1 + ((low - self.top - 1) & 0xFF)
        return seq if seq <= self.top + KA_AHEAD and seq < SEQ_LIMIT else None

    def ka_accept(self, seq: int) -> bool:
        """Take a keep-alive's seq (from ka_seq); True if it is the newest seq taken."""
        d = seq - self.top - 1
        self.ka |= 1 << d
        return self.ka >> (d + 1) == 0

    def latest(self) -> int:
        """The highest seq taken, keep-alives included (what a push echoes)."""
        return self.top + self.ka.bit_length()
